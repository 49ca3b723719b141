"""A fault stays in its building: malformed ExternalInterface packets, engines that raise, outputs that
are no finite number (issue 13, defect 2), and the EURange of outputs."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import math
import sqlite3
import sys
from pathlib import Path

import pytest
from asyncua import Client, ua
from conftest import SIMS, TAGMAPS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.campus import Campus, make_engine
from bridge.config import load_config
from bridge.engines.base import Engine, EngineFault, Sample
from bridge.engines.external_interface import ExternalInterfaceEngine, decode_packet
from bridge.historian import load_history
from bridge.protocol import NAMESPACE
from bridge.server import TagServer
from bridge.tagmap import UNBOUNDED, TagMapError, load_tagmap
from devtools.fuzz import examples
from devtools.launcher import free_port

# Packets the issue found raising ValueError / IndexError / OverflowError, and their kin.
MALFORMED = [b"2 0\n", b"2 -inf 0 0 0 0\n", b"2 0 1 0 0 0.0 x\n", b"2 0 1 0 0 0.0 0x10\n", b"2 nan 0 0 0 0\n",
             b"2 1e999 0 0 0 0\n", b"2 0.5 0 0 0 0\n", b"2 0 1 0 0 inf 1.0\n", b"2 0 -1 0 0 0.0\n", b"2 0 3 0 0 0.0 1 2\n",
             b"2 0 1 0 0 0.0 1 2\n", b"2 0 1e3 0 0 0.0 1\n", b"2 0 99999999999999999999 0 0 0.0\n", b"hello\n", b"\n"]

FAKE_PEER = '''
import re, socket, sys
port = int(re.search(r'port="([0-9]+)"', open("socket.cfg").read()).group(1))
connection = socket.create_connection(("127.0.0.1", port))
connection.sendall(bytes.fromhex(sys.argv[-1]))
connection.recv(100)
'''


@pytest.mark.parametrize("packet", MALFORMED)
def test_a_malformed_packet_is_an_engine_fault(packet):
    with pytest.raises(EngineFault, match="malformed packet"):
        decode_packet(packet)


def test_packet_values_may_be_nan_or_infinite_but_not_the_time():
    flag, time_s, values = decode_packet(b"2 0 3 0 0 6.0e+02 nan -inf 1.5e+00\n")
    assert (flag, time_s, values[2]) == (0, 600.0, 1.5) and math.isnan(values[0]) and values[1] == -math.inf
    assert decode_packet(b"2 0 1 1 1 0 2.5 7 1\n") == (0, 0.0, [2.5])  # integers and booleans are not outputs
    assert decode_packet(b"2 -20\n") == (-20, 0.0, [])
    assert "..." in str(pytest.raises(EngineFault, decode_packet, b"2 0 " + b"x " * 200 + b"\n").value)


def fake_peer_engine(tmp_path: Path, monkeypatch, packet: bytes) -> ExternalInterfaceEngine:
    """The Small Office on an ExternalInterfaceEngine whose 'EnergyPlus' connects and sends ``packet``."""
    config = load_config(SIMS / "small_office.toml")
    building = config.buildings[0]
    script = tmp_path / "fake_peer.py"
    script.write_text(FAKE_PEER)
    executable = tmp_path / "fake-python"
    executable.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@" {packet.hex()}\n')
    executable.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(executable))
    return ExternalInterfaceEngine(building.name, building.model, building.weather, building.tagmap,
                                   config.period, tmp_path / "work", start_timeout_s=30, step_timeout_s=5)


SMALL_OFFICE_OUTPUTS = len(load_config(SIMS / "small_office.toml").buildings[0].tagmap.outputs)
OUTSIDE_THE_PERIOD = b"2 0 %d 0 0 1e300 " % SMALL_OFFICE_OUTPUTS + b"1 " * (SMALL_OFFICE_OUTPUTS - 1) + b"1\n"


@pytest.mark.parametrize("packet", [b"2 0\n", b"2 -inf 0 0 0 0\n", b"2 0 7 0 0 0.0 x 1 1 1 1 1 1\n",
                                    b"2 0 7 0 0 0.0 0x10 1 1 1 1 1 1\n", OUTSIDE_THE_PERIOD])
def test_a_malformed_packet_faults_its_building_by_name(tmp_path, monkeypatch, packet):
    """Through the engine, from a peer process on a real socket: an EngineFault naming the building and
    quoting the packet (the last one: a well-formed packet whose time is outside the run period)."""
    engine = fake_peer_engine(tmp_path, monkeypatch, packet)

    async def start() -> None:
        try:
            await engine.start()
        finally:
            await engine.stop()

    with pytest.raises(EngineFault) as fault:
        asyncio.run(start())
    message = str(fault.value)
    assert message.startswith("SmallOffice: EnergyPlus sent ") and repr(packet) in message, message
    assert engine.process.returncode is not None  # the peer is stopped


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=80),
    st.lists(st.sampled_from([b"2", b"0", b"1", b"-10", b"3", b"0.5", b"-1", b"nan", b"-inf", b"1e999", b"x",
                              b"0x10", b"1e3", b"+2", b"", b"\x00", b"\xff", b"99999999999", b"6.0e+02"]),
             max_size=12).map(lambda parts: b" ".join(parts) + b"\n"),
))
@pytest.mark.property
def test_decode_packet_gives_a_packet_or_an_engine_fault(line):
    """Random bytes and random lines of packet-like fields: a valid decode or EngineFault, nothing else."""
    try:
        flag, time_s, values = decode_packet(line)
    except EngineFault as fault:
        assert len(str(fault)) < 1500  # the packet is cut
        return
    assert isinstance(flag, int) and math.isfinite(time_s)
    assert all(isinstance(v, float) for v in values)
    if flag == 0:
        assert len(values) == int(line[max(line.find(b"2 "), 0):].split()[2])
    else:
        assert (time_s, values) == (0.0, [])


# ----- a fault from one building's engine, whatever its kind, stays in that building ---------------------


class FakeEngine(Engine):
    """One sample per step, every output ``value``; raises ``failure`` at step ``fail_at`` (from ``step``
    itself when ``at_once``, else from its awaitable)."""

    def __init__(self, tagmap, value: float = 1.0, fail_at: int = 0, failure: Exception | None = None,
                 at_once: bool = False, steps: int = 0):
        self.tagmap, self.value, self.fail_at, self.failure, self.at_once = tagmap, value, fail_at, failure, at_once
        self.steps, self.last = 0, steps

    def _sample(self) -> Sample | None:
        if self.steps > self.last:
            return None
        return Sample(self.steps * 600.0, {o.tag: self.value for o in self.tagmap.outputs})

    async def start(self) -> Sample:
        return self._sample()

    def step(self, inputs):
        self.steps += 1
        if self.steps == self.fail_at and self.at_once:
            raise self.failure
        return self._answer()

    async def _answer(self) -> Sample | None:
        await asyncio.sleep(0)
        if self.steps == self.fail_at:
            raise self.failure
        return self._sample()

    async def stop(self) -> None:
        pass


async def run_campus(config, engines: dict[str, Engine], endpoint: str = "opc.tcp://127.0.0.1:4840",
                     during=None) -> Campus:
    """Run ``config`` on ``engines`` (by building name) to its end; ``during(campus, server)`` is awaited
    once the run is over, while the server still serves (if it listens: ``endpoint`` given by the caller)."""
    campus = Campus(config, engine_factory=lambda building, *_: engines[building.name])
    server = TagServer(endpoint, config.name, config.period.time_of(0))
    await server.init()
    await campus.build_address_space(server)
    if during is not None:
        await server.listen()
    campus.serving.set()  # the engines step once the campus is served (listening or not)
    try:
        await campus.start()
        await asyncio.wait_for(campus.done.wait(), 60)
        if during is not None:
            await during(campus, server)
    finally:
        if during is not None:
            await server.stop()
    return campus


@pytest.mark.parametrize("failure, at_once", [(ValueError("could not convert string to float: 'x'"), False),
                                              (IndexError("list index out of range"), False),
                                              (TypeError("float() argument must be a number, not 'NoneType'"), True)])
def test_an_unexpected_exception_faults_only_its_building(tmp_path, failure, at_once, caplog):
    """Defence in depth: a non-EngineFault from one engine's step (from the call or its awaitable) faults
    that building, named, with a traceback in the log; the others run to their end."""
    config = load_config(SIMS / "test_campus.toml").with_overrides(run_dir=tmp_path)
    steps = 20
    engines = {b.name: FakeEngine(b.tagmap, steps=steps) for b in config.buildings}
    engines["Warehouse"] = FakeEngine(config.buildings[1].tagmap, fail_at=5, failure=failure, at_once=at_once,
                                      steps=steps)
    campus = asyncio.run(run_campus(config, engines))
    statuses = {b.name: b.status for b in campus.buildings}
    assert statuses == {"SmallOffice": "Finished", "Warehouse": "Faulted", "RetailStore": "Finished"}
    assert campus.status == "Faulted" and campus.step == steps
    faulted = [r for r in caplog.records if "Warehouse faulted" in r.getMessage()]
    assert faulted and faulted[0].exc_info and type(failure).__name__ in faulted[0].getMessage()
    assert len(load_history(campus.run_path, "SmallOffice")) == steps
    assert len(load_history(campus.run_path, "Warehouse")) == 4


# ----- outputs that are no finite number, or outside their EURange ---------------------------------------


def test_non_finite_outputs_are_published_bad_stored_null_and_logged_once(tmp_path, caplog):
    """NaN on every output of one building: each tag reads BadOutOfRange with a null value over OPC UA,
    the historian holds NULL, HistoryRead answers those steps Bad, the campus total is Bad too, and one
    warning per tag says so; a value above EURange is Uncertain; the run and the other buildings go on."""
    config = load_config(SIMS / "test_campus.toml").with_overrides(run_dir=tmp_path)
    steps, port = 6, free_port()
    engines = {"SmallOffice": FakeEngine(config.buildings[0].tagmap, value=math.nan, steps=steps),
               "Warehouse": FakeEngine(config.buildings[1].tagmap, value=1e5, steps=steps),  # above every EURange
               "RetailStore": FakeEngine(config.buildings[2].tagmap, value=20.0, steps=steps)}
    seen = {}

    async def read(campus, server):
        async with Client(f"opc.tcp://127.0.0.1:{port}", timeout=10) as client:
            idx = await client.get_namespace_index(NAMESPACE)
            node = client.get_node(ua.NodeId("TestCampus.SmallOffice.Outputs.CoreZoneTemp", idx))
            seen["nan"] = await node.read_data_value(raise_on_bad_status=False)
            seen["uncertain"] = await client.get_node(
                ua.NodeId("TestCampus.Warehouse.Outputs.FacilityPower", idx)).read_data_value(raise_on_bad_status=False)
            seen["good"] = await client.get_node(
                ua.NodeId("TestCampus.RetailStore.Outputs.CoreRetailTemp", idx)).read_data_value()
            seen["total"] = await client.get_node(
                ua.NodeId("TestCampus.Outputs.TotalElectricPower", idx)).read_data_value(raise_on_bad_status=False)
            seen["history"] = await node.read_raw_history(dt.datetime(2000, 1, 1), dt.datetime(2100, 1, 1))

    with caplog.at_level(logging.WARNING, logger="bridge.clock"):
        campus = asyncio.run(run_campus(config, engines, f"opc.tcp://127.0.0.1:{port}", read))
    assert [b.status for b in campus.buildings] == ["Finished"] * 3
    assert seen["nan"].StatusCode.name == "BadOutOfRange" and seen["nan"].Value.Value is None
    assert seen["total"].StatusCode.name == "BadOutOfRange"
    assert seen["uncertain"].StatusCode.name == "UncertainEngineeringUnitsExceeded"
    assert seen["uncertain"].Value.Value == 1e5
    assert seen["good"].StatusCode.is_good() and seen["good"].Value.Value == 20.0
    assert len(seen["history"]) >= steps - 1  # HistoryRead left out the newest step (issue 13, defect 12)
    assert all(v.StatusCode.name == "BadOutOfRange" and v.Value.Value is None for v in seen["history"])
    with sqlite3.connect(campus.run_path) as db:
        assert db.execute('SELECT COUNT(*), COUNT("CoreZoneTemp") FROM "SmallOffice"').fetchone() == (steps, 0)
    warnings = [r.getMessage() for r in caplog.records if "published as" in r.getMessage()]
    small_office = [m for m in warnings if m.startswith("SmallOffice.")]
    assert len(small_office) == len(config.buildings[0].tagmap.outputs), warnings  # once per tag, not per step
    assert any(m.startswith("SmallOffice.CoreZoneTemp = nan at step 0, published as BadOutOfRange") for m in warnings)
    assert any(m.startswith("Warehouse.FacilityPower = 100000.0") and "UncertainEngineeringUnitsExceeded" in m
               for m in warnings)
    assert not any(m.startswith("RetailStore.") for m in warnings)


def test_infinite_values_are_stored_as_null(tmp_path):
    from bridge.historian import Historian

    historian = Historian(tmp_path / "h.sqlite", {"B": load_tagmap(TAGMAPS / "small_office.toml")})
    historian.record([("B", 1, 600.0, dt.datetime(2025, 7, 1), {"FacilityPower": math.inf, "HvacPower": -math.inf,
                                                                "CoreZoneTemp": math.nan, "OutdoorTemp": 20.0})])
    historian.close()
    with sqlite3.connect(tmp_path / "h.sqlite") as db:
        assert db.execute('SELECT FacilityPower, HvacPower, CoreZoneTemp, OutdoorTemp FROM "B"').fetchone() == (
            None, None, None, 20.0)


# ----- EURange of outputs ---------------------------------------------------------------------------------


def output_tagmap(tmp_path: Path, outputs: str, area: str = "floor_area_m2 = 500.0\n") -> Path:
    path = tmp_path / "map.toml"
    path.write_text(area + outputs)
    return path


def entry(tag: str, unit: str, extra: str = "") -> str:
    return f'[[outputs]]\ntag = "{tag}"\nkey = "K"\nvariable = "V"\nunit = "{unit}"\n{extra}\n'


def test_output_ranges_come_from_the_tag_map_or_role_unit_and_floor_area(tmp_path):
    tagmap = load_tagmap(output_tagmap(tmp_path, "".join([
        entry("P", "kW", 'role = "electric_power"'), entry("Pw", "W", 'role = "hvac_electric_power"'),
        entry("Zone", "degC", 'role = "zone_temperature"'), entry("Out", "degC", 'role = "outdoor_temperature"'),
        entry("Water", "degC"), entry("Rh", "%"), entry("Given", "kW", "min = -5.0\nmax = 5.0"),
        entry("Half", "degC", "max = 30.0"), entry("Other", "m3/s"), entry("Heat", "kW")])))
    ranges = {o.tag: tagmap.output_range(o) for o in tagmap.outputs}
    assert ranges == {"P": (0.0, 50.0), "Pw": (0.0, 50000.0), "Zone": (0.0, 50.0), "Out": (-50.0, 60.0),
                      "Water": (-50.0, 150.0), "Rh": (0.0, 100.0), "Given": (-5.0, 5.0), "Half": (-50.0, 30.0),
                      "Other": UNBOUNDED, "Heat": UNBOUNDED}
    no_area = load_tagmap(output_tagmap(tmp_path, entry("P", "kW", 'role = "electric_power"'), area=""))
    assert no_area.output_range(no_area.outputs[0]) == UNBOUNDED


@pytest.mark.parametrize("extra, message", [("min = 5.0\nmax = 5.0", r"the range is \[5, 5\]$"),
                                            ("min = 200.0", r"the range is \[200, 100\] \(a bound not given")])
def test_an_empty_output_range_is_refused(tmp_path, extra, message):
    with pytest.raises(TagMapError, match=r"outputs\[0\] \(Rh\): 'min' must be below 'max', " + message):
        load_tagmap(output_tagmap(tmp_path, entry("Rh", "%", extra)))


def test_shipped_tag_maps_give_every_output_a_range():
    for path in sorted(TAGMAPS.glob("*.toml")):
        tagmap = load_tagmap(path)
        assert all(o.min is not None and o.max is not None for o in tagmap.outputs), path


def test_output_tags_carry_their_range(tmp_path):
    """EURange of an output tag and of the campus TotalElectricPower (the sum of the power ranges)."""
    config = load_config(SIMS / "test_campus.toml").with_overrides(run_dir=tmp_path)

    async def ranges():
        campus = Campus(config)
        server = TagServer("opc.tcp://127.0.0.1:4840", config.name, config.period.time_of(0))
        await server.init()
        await campus.build_address_space(server)
        read = server.server.get_node
        power = await read(ua.NodeId("TestCampus.SmallOffice.Outputs.FacilityPower.EURange", server.idx)).read_value()
        total = await read(ua.NodeId("TestCampus.Outputs.TotalElectricPower.EURange", server.idx)).read_value()
        return (power.Low, power.High), (total.Low, total.High)

    assert asyncio.run(ranges()) == ((0.0, 60.0), (0.0, 60.0 + 500.0 + 250.0))


# ----- end to end: three real EnergyPlus buildings, one peer sends a malformed packet -----------------------


def corrupting_factory(victim: str, at_step: int):
    """``make_engine``, except that the ExternalInterfaceEngine of ``victim`` sees packet ``at_step`` (0: the
    first, after warm-up) with its first value replaced by ``0x10``: EnergyPlus itself is real."""

    def factory(building, config, workdir):
        engine = make_engine(building, config, workdir)
        if building.name != victim:
            return engine
        start = engine.start

        async def corrupted_start() -> Sample:
            sample = await start()
            lines, packets = engine._connection, iter(range(1, 10**9))
            next_line = lines.next_line

            async def corrupted(timeout_s: float) -> bytes:
                line = await next_line(timeout_s)
                if next(packets) == at_step:
                    parts = line.split()
                    line = b" ".join([*parts[:6], b"0x10", *parts[7:]]) + b"\n"
                return line

            lines.next_line = corrupted
            return sample

        engine.start = corrupted_start
        return engine

    return factory


@pytest.mark.engine
def test_a_malformed_packet_faults_one_building_of_three_the_others_finish(tmp_path):
    """Three Small Offices for one day; the second one's packet at step 40 is malformed: that building is
    Faulted with a message naming it and the packet, the other two finish with one historian row a step."""
    base = load_config(SIMS / "small_office.toml")
    period = dataclasses.replace(base.period, end=base.period.start)
    names = ["OfficeA", "OfficeB", "OfficeC"]
    config = dataclasses.replace(base, name="ThreeOffices", period=period, run_dir=tmp_path,
                                 buildings=tuple(dataclasses.replace(base.buildings[0], name=n) for n in names))
    faults = {}

    async def after(campus, server):
        for name in names:
            faults[name] = await server.server.get_node(
                ua.NodeId(f"ThreeOffices.{name}.Control.Fault", server.idx)).read_value()

    async def run() -> Campus:
        campus = Campus(config, engine_factory=corrupting_factory("OfficeB", at_step=40))
        server = TagServer(f"opc.tcp://127.0.0.1:{free_port()}", config.name, config.period.time_of(0))
        await server.init()
        await campus.build_address_space(server)
        campus.serving.set()  # not listening: the engines may step
        await campus.start()
        await asyncio.wait_for(campus.done.wait(), 400)
        await after(campus, server)
        return campus

    campus = asyncio.run(run())
    statuses = {b.name: b.status for b in campus.buildings}
    assert statuses == {"OfficeA": "Finished", "OfficeB": "Faulted", "OfficeC": "Finished"}, faults
    assert faults["OfficeB"].startswith("OfficeB: EnergyPlus sent a malformed packet (value 1 b'0x10' is not a number)")
    assert f"b'2 0 {SMALL_OFFICE_OUTPUTS} 0 0 " in faults["OfficeB"] and faults["OfficeA"] == faults["OfficeC"] == ""
    assert campus.step == period.steps == 144
    for name in ("OfficeA", "OfficeC"):
        assert list(load_history(campus.run_path, name)["step"]) == list(range(1, period.steps + 1))
    assert len(load_history(campus.run_path, "OfficeB")) == 39
