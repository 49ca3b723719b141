"""Unit tests of the bridge's parts that need no engine: tag maps, config, IDF patching, packets."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.config import ConfigError, RunPeriod, load_config
from bridge.cosim_files import ModelError, patch_model, variables_cfg
from bridge.engines.base import Engine, EngineFault, Sample
from bridge.engines.energyplus import severe_lines
from bridge.engines.external_interface import ExternalInterfaceEngine, decode_packet, encode_inputs
from bridge.historian import Historian, HistorianError, load_history, read_tag
from bridge.idf import Idf
from bridge.tagmap import TagMapError, load_tagmap
from conftest import SIMS, TAGMAPS, free_port

GOOD_INPUT = 'tag = "Sp"\nschedule = "S"\nunit = "degC"\nmin = 10.0\nmax = 30.0\ndefault = 20.0\n'
GOOD_OUTPUT = 'tag = "T"\nkey = "Z"\nvariable = "Zone Mean Air Temperature"\nunit = "degC"\n'
UPPER_INPUT = '\n[[inputs]]\n' + GOOD_INPUT.replace('"Sp"', '"Hi"').replace('"S"', '"H"')


def write_tagmap(tmp_path: Path, inputs: str = GOOD_INPUT, outputs: str = GOOD_OUTPUT) -> Path:
    path = tmp_path / "map.toml"
    path.write_text(f"[[inputs]]\n{inputs}\n[[outputs]]\n{outputs}")
    return path


@pytest.mark.parametrize("inputs, outputs, message", [
    (GOOD_INPUT.replace("default = 20.0", "default = 40.0"), GOOD_OUTPUT, "inputs[0] (Sp): default 40.0 is outside"),
    (GOOD_INPUT.replace('schedule = "S"\n', ""), GOOD_OUTPUT, "give exactly one of 'schedule', 'actuator' or 'weather'"),
    (GOOD_INPUT.replace('tag = "Sp"', 'tag = "bad name"'), GOOD_OUTPUT, "inputs[0]: 'tag' must be a name"),
    (GOOD_INPUT + "colour = 1\n", GOOD_OUTPUT, "inputs[0]: unknown keys ['colour']"),
    (GOOD_INPUT, GOOD_OUTPUT.replace('key = "Z"\n', ""), "outputs[0] (T): an output variable needs a 'key'"),
    (GOOD_INPUT, GOOD_OUTPUT.replace('tag = "T"', 'tag = "Sp"'), "tag 'Sp' is already used by"),
    (GOOD_INPUT, GOOD_OUTPUT + 'role = "power"\n', "unknown role 'power'"),
    (GOOD_INPUT, GOOD_OUTPUT + "comfort = [26.0, 20.0]\n", "'comfort' must be [low, high]"),
    (GOOD_INPUT.replace("min = 10.0", 'min = "ten"'), GOOD_OUTPUT, "'min' must be a number"),
    (GOOD_INPUT, GOOD_OUTPUT.replace('tag = "T"', 'tag = "sp"'), "tag 'sp' is already used by"),
    (GOOD_INPUT.replace('tag = "Sp"', 'tag = "Time"'), GOOD_OUTPUT, "inputs[0]: tag 'Time' is taken by the historian"),
    (GOOD_INPUT, GOOD_OUTPUT.replace('tag = "T"', 'tag = "Step"'), "outputs[0]: tag 'Step' is taken by the historian"),
    (GOOD_INPUT, GOOD_OUTPUT.replace('tag = "T"', 'tag = "sim_time_s"'), "tag 'sim_time_s' is taken"),
    (GOOD_INPUT + 'below = "Lo"\n' + UPPER_INPUT, GOOD_OUTPUT, "inputs[0] (Sp): 'below' must name another input"),
    (GOOD_INPUT + 'below = "Sp"\n', GOOD_OUTPUT, "'below' must name another input (one of [])"),
    (GOOD_INPUT + "margin = 1.0\n", GOOD_OUTPUT, "'margin' needs 'below'"),
    (GOOD_INPUT + 'below = "Hi"\nmargin = -1.0\n' + UPPER_INPUT, GOOD_OUTPUT, "'margin' must be >= 0"),
    (GOOD_INPUT + 'below = "Hi"\nmargin = 1.0\n' + UPPER_INPUT, GOOD_OUTPUT,
     "inputs[0] (Sp): the defaults break 'below': Sp = 20 must stay at least 1 degC below Hi = 20"),
])
def test_bad_tag_maps_name_the_entry(tmp_path, inputs, outputs, message):
    with pytest.raises(TagMapError, match=None) as error:
        load_tagmap(write_tagmap(tmp_path, inputs, outputs))
    assert message in str(error.value) and "map.toml" in str(error.value)


def test_tag_map_is_read(tmp_path):
    tagmap = load_tagmap(TAGMAPS / "large_office.toml")
    assert tagmap.defaults["ChilledWaterSetpoint"] == 6.7
    (order,) = tagmap.orders
    assert (order.lower, order.upper, order.margin) == ("HeatingSetpoint", "CoolingSetpoint", 1.0)
    assert order.holds({"HeatingSetpoint": 20.9, "CoolingSetpoint": 21.9})
    assert not order.holds({"HeatingSetpoint": 21.0, "CoolingSetpoint": 21.9})
    assert tagmap.output("FacilityPower").convert(1500.0) == pytest.approx(1.5)
    assert tagmap.floor_area_m2 == 46320.0
    with pytest.raises(TagMapError, match="not valid TOML"):
        (tmp_path / "broken.toml").write_text("[[inputs]\n")
        load_tagmap(tmp_path / "broken.toml")


def test_a_tag_map_extends_another_and_keeps_it_whole(tmp_path):
    """The live Small Office map extends small_office.toml: every tag of it first, with its bands, then its own."""
    base, live = load_tagmap(TAGMAPS / "small_office.toml"), load_tagmap(TAGMAPS / "small_office_live.toml")
    assert live.inputs[:len(base.inputs)] == base.inputs and live.outputs[:len(base.outputs)] == base.outputs
    assert (live.name, live.floor_area_m2) == (base.name, base.floor_area_m2)
    assert {i.tag for i in live.inputs[len(base.inputs):]} >= {"OutdoorDryBulb", "DirectSolar"}
    out = 'tag = "Extra"\nkey = "Environment"\nvariable = "Site Outdoor Air Drybulb Temperature"\nunit = "degC"\n'
    (tmp_path / "a.toml").write_text(f'extends = "b.toml"\n[[outputs]]\n{out}')
    (tmp_path / "b.toml").write_text(f'extends = "a.toml"\n[[outputs]]\n{out.replace("Extra", "Other")}')
    with pytest.raises(TagMapError, match=r"a.toml: 'extends' = 'b.toml' leads back to .*b.toml \(a cycle\)"):
        load_tagmap(tmp_path / "b.toml")
    (tmp_path / "c.toml").write_text(f'extends = "missing.toml"\n[[outputs]]\n{out}')
    with pytest.raises(TagMapError, match=r"c.toml: 'extends': file not found"):
        load_tagmap(tmp_path / "c.toml")
    (tmp_path / "d.toml").write_text(f'extends = "{TAGMAPS / "small_office.toml"}"\n[[outputs]]\n'
                                     f'{out.replace("Extra", "FacilityPower")}')
    with pytest.raises(TagMapError, match=r"d.toml.*tag 'FacilityPower' is already used by .*small_office.toml"):
        load_tagmap(tmp_path / "d.toml")


SECOND_BUILDING = '[[buildings]]\nname = "smalloffice"\ntagmap = "../tagmaps/small_office.toml"\n\n'


@pytest.mark.parametrize("change, message", [
    (("clock = \"fast\"", "clock = \"warp\""), "clock must be one of"),
    (('start = "07-01"', 'start = "07-41"'), "expected a date as 'MM-DD'"),
    (('end = "07-03"', 'end = "06-03"'), "end is before start"),
    (('name = "SmallOffice"', 'name = "Small Office"'), "must be letters, digits"),
    (('model = "ref:small_office"', 'model = "ref:tiny_office"'), "unknown reference model 'tiny_office'"),
    (('tagmap = "../tagmaps/small_office.toml"', 'tagmap = "missing.toml"'), "file not found"),
    (("[run]", "[kpi]\nprice_periods = [[12, 18]]\n\n[run]"), "[kpi]: prices and factors must be numbers"),
    (("[run]", "[kpi]\ntariff = 1\n\n[run]"), "[kpi]: unknown keys ['tariff']"),
    (('name = "SmallOffice"', 'name = "Tags"'), "buildings[0]: building name 'Tags' is taken by the bridge"),
    (('name = "SmallOffice"', 'name = "meta"'), "buildings[0]: building name 'meta' is taken by the bridge"),
    (('name = "SmallOffice"', 'name = "Outputs"'), "buildings[0]: building name 'Outputs' is taken by the bridge"),
    (('name = "SmallOffice"', 'name = "sqlite_stat1"'), "buildings[0]: building name 'sqlite_stat1' starts with"),
    (('[[buildings]]\nname = "SmallOffice"', SECOND_BUILDING + '[[buildings]]\nname = "SmallOffice"'),
     "buildings[1]: name 'SmallOffice' is already used by buildings[0] ('smalloffice')"),
    (("timesteps_per_hour = 6", "timesteps_per_hour = 45"), "[run] timesteps_per_hour must divide 60"),
    (("timesteps_per_hour = 6", 'timesteps_per_hour = "6"'), "[run]: 'timesteps_per_hour' must be an integer"),
    (("[run]", '[run]\nyear = "x"'), "[run]: 'year' must be an integer, got 'x'"),
    (("[run]", '[run]\nspeed = "fast"'), "[run]: 'speed' must be a number, got 'fast'"),
    (("[run]", '[run]\nhistorian = "no"'), "[run]: 'historian' must be true or false, got 'no'"),
    (("[run]", '[run]\ncatch_up = 1'), "[run]: 'catch_up' must be true or false, got 1"),
    (("timesteps_per_hour = 6", "timestep_per_hour = 4"), "[run]: unknown keys ['timestep_per_hour']"),
    (('model = "ref:small_office"', 'model = "ref:small_office"\nwether = "x.epw"'),
     "buildings[0]: unknown keys ['wether']"),
    (('name = "SmallOffice"', "name = 7"), "buildings[0]: 'name' must be text, got 7"),
    (("[run]", "[runs]\nspeed = 1\n[run]"), "campus.toml: unknown keys ['runs']"),
    (("[campus]", "[campus]\ntitle = 'x'"), "[campus]: unknown keys ['title']"),
    (("[run]", "[run]\nengine_step_timeout_s = -1"), "[run] engine_step_timeout_s must be a positive finite number"),
    (("[run]", "[run]\nengine_start_timeout_s = inf"), "[run] engine_start_timeout_s must be a positive finite"),
    (("[run]", "[run]\nlockstep_timeout_s = nan"), "[run] lockstep_timeout_s must be a positive finite number"),
    (("[run]", "[run]\nspeed = 0"), "[run] speed must be a positive finite number"),
])
def test_bad_campus_files_name_the_problem(tmp_path, change, message):
    text = (SIMS / "small_office.toml").read_text().replace(*change)
    text = text.replace('"../tagmaps/', f'"{TAGMAPS}/')
    (tmp_path / "campus.toml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(tmp_path / "campus.toml")
    assert message in str(error.value)


def test_command_line_overrides_are_checked_like_the_file():
    config = load_config(SIMS / "small_office.toml")
    with pytest.raises(ConfigError, match="lockstep_timeout_s must be a positive finite number, got inf"):
        config.with_overrides(lockstep_timeout_s=float("inf"))


def test_run_period_counts_steps_and_times():
    period = RunPeriod(dt.date(2025, 1, 1), dt.date(2025, 1, 21), 6)
    assert period.steps == 3024 and period.step_s == 600.0
    assert period.time_of(600.0) == dt.datetime(2025, 1, 1, 0, 10)


def test_patched_model_and_variables_cfg():
    config = load_config(SIMS / "small_office.toml")
    building = config.buildings[0]
    idf = patch_model(Idf.read(building.model), building.tagmap, config.period)
    actuators = idf.of_class("ExternalInterface:Actuator")
    assert [a.fields for a in actuators][0] == ["CoolingSetpoint", "CLGSETP_SCH", "Schedule:Compact",
                                                "Schedule Value", "24.0"]
    assert idf.of_class("SimulationControl")[0].fields[3:5] == ["No", "Yes"]
    assert idf.of_class("RunPeriod")[0].fields[1:7] == ["7", "1", "2025", "7", "3", "2025"]
    assert idf.of_class("RunPeriod")[0].fields[11:13] == ["Yes", "Yes"]  # rain and snow from the weather file
    assert idf.of_class("Timestep")[0].fields == ["6"]
    cfg = variables_cfg(building.tagmap)
    assert cfg.index('name="Whole Building" type="Facility Total Electricity Demand Rate"') < cfg.index(
        'actuator="CoolingSetpoint"')
    assert 'name="EMS" type="twinbridge meter ElectricityEnergy"' in cfg


def test_a_mirrored_twins_tag_map_keeps_rain_and_snow_of_the_weather_file_out(tmp_path):
    """small_office_live.toml sets weather_file_precipitation = false: the run period's rain and snow
    indicators are No; a map extending it inherits that; a value that is not true/false is refused."""
    config = load_config(SIMS / "small_office.toml")
    live = load_tagmap(TAGMAPS / "small_office_live.toml")
    assert not live.weather_file_precipitation and load_tagmap(TAGMAPS / "small_office.toml").weather_file_precipitation
    idf = patch_model(Idf.read(config.buildings[0].model), live, config.period)
    assert idf.of_class("RunPeriod")[0].fields[11:13] == ["No", "No"]
    out = '[[outputs]]\ntag = "Extra"\nkey = "Environment"\nvariable = "Site Outdoor Air Drybulb Temperature"\n'
    (tmp_path / "child.toml").write_text(f'extends = "{TAGMAPS / "small_office_live.toml"}"\n{out}')
    assert not load_tagmap(tmp_path / "child.toml").weather_file_precipitation
    (tmp_path / "bad.toml").write_text(f'weather_file_precipitation = "no"\n{out}')
    with pytest.raises(TagMapError, match=r"bad.toml.*weather_file_precipitation.*true or false"):
        load_tagmap(tmp_path / "bad.toml")


def test_unknown_schedule_is_a_model_error(tmp_path):
    config = load_config(SIMS / "small_office.toml")
    tagmap_path = write_tagmap(tmp_path, GOOD_INPUT.replace('"S"', '"NO_SUCH_SCH"'))
    with pytest.raises(ModelError, match=r"inputs\[0\] \(Sp\): schedule 'NO_SUCH_SCH' is not in the model"):
        patch_model(Idf.read(config.buildings[0].model), load_tagmap(tagmap_path), config.period)


def test_packets():
    assert decode_packet(b"2 0 2 0 0 6.0e+02 1.5e+00 2.0e+01\n") == (0, 600.0, [1.5, 20.0])
    assert decode_packet(b"\xe6c\x11A5V2 -10 \n")[0] == -10  # stray bytes before an error packet
    with pytest.raises(EngineFault, match="malformed packet"):
        decode_packet(b"hello\n")
    flag, time_s, values = decode_packet(encode_inputs([24.0, 21.5], 1200.0))
    assert (flag, time_s, values) == (0, 1200.0, [24.0, 21.5])


def test_severe_lines(tmp_path):
    err = tmp_path / "eplusout.err"
    err.write_text("   ** Warning ** something\n   ** Severe  ** bad thing\n   **   ~~~   ** detail\n"
                   "   ** Warning ** other\n   **   ~~~   ** not kept\n   **  Fatal  ** stop\n")
    assert severe_lines(err) == ["** Severe  ** bad thing", "**   ~~~   ** detail", "**  Fatal  ** stop"]
    assert severe_lines(tmp_path / "none.err") == ["(no none.err was written)"]


def test_historian_round_trip(tmp_path):
    tagmap = load_tagmap(TAGMAPS / "small_office.toml")
    historian = Historian(tmp_path / "h.sqlite", {"B": tagmap})
    start = dt.datetime(2025, 7, 1)
    for step in (1, 2, 3):
        historian.record([("B", step, step * 600.0, start + dt.timedelta(minutes=10 * step),
                           {"CoolingSetpoint": 24.0, "FacilityPower": float(step)})])
    historian.close()
    frame = load_history(tmp_path / "h.sqlite")
    assert list(frame["FacilityPower"]) == [1.0, 2.0, 3.0] and frame.index[0] == start + dt.timedelta(minutes=10)
    assert [v for _, v in read_tag(tmp_path / "h.sqlite", "B", "FacilityPower", None, None, 2)] == [1.0, 2.0]
    with pytest.raises(HistorianError, match="no building 'C'"):
        load_history(tmp_path / "h.sqlite", "C")
    with pytest.raises(HistorianError, match="not found"):
        load_history(tmp_path / "nothing.sqlite")


def test_a_step_the_historian_refuses_is_rolled_back(tmp_path):
    import sqlite3

    historian = Historian(tmp_path / "h.sqlite", {"B": load_tagmap(TAGMAPS / "small_office.toml")})
    start = dt.datetime(2025, 7, 1)

    def row(step: int, building: str = "B") -> tuple:
        return building, step, step * 600.0, start + dt.timedelta(minutes=10 * step), {"FacilityPower": float(step)}

    historian.record([row(1)])
    with pytest.raises(sqlite3.IntegrityError):
        historian.record([row(2), row(1)])  # step 1 again: the whole step is refused, step 2 with it
    with pytest.raises(KeyError):
        historian.record([row(2), row(2, "NotABuilding")])
    historian.record([row(2)])
    historian.close()
    assert list(load_history(tmp_path / "h.sqlite")["step"]) == [1, 2]


def test_fast_mode_writes_the_historian_every_fast_write_s_without_losing_or_repeating_a_row(tmp_path, monkeypatch):
    """Fast mode records several steps per write (one commit, one executemany per building): nothing
    before FAST_WRITE_S has passed, then every step published so far; a write the historian refuses keeps
    its rows for the next; closing writes the rest. Each step of each building ends up recorded once."""
    from bridge import runrecord
    from bridge.building import BuildingState

    config = load_config(SIMS / "test_campus.toml")
    buildings = [BuildingState(b, b.tagmap) for b in config.buildings]
    record = runrecord.RunRecord(config)
    record.open(tmp_path, buildings, "stamp")
    now = [1000.0]
    monkeypatch.setattr(runrecord.time, "monotonic", lambda: now[0])
    start = dt.datetime(2025, 7, 1)

    def publish(step: int) -> None:
        record.add([(b.name, step, step * 600.0, start + dt.timedelta(minutes=10 * step),
                     {o.tag: float(step) for o in b.tagmap.outputs}) for b in buildings])

    def recorded(building: str) -> list[int]:
        with sqlite3.connect(record.path) as db:
            return [row[0] for row in db.execute(f'SELECT step FROM "{building}" ORDER BY step')]

    publish(1)
    record.write(batched=True)  # the first write of the run
    for step in (2, 3):
        now[0] += runrecord.FAST_WRITE_S / 4
        publish(step)
        record.write(batched=True)
    assert recorded(buildings[0].name) == [1]
    now[0] += runrecord.FAST_WRITE_S
    historian = record.historian

    def full_disk(rows) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    historian.record, keep = full_disk, historian.record
    record.write(batched=True)
    historian.record = keep
    publish(4)
    record.write(batched=True)  # the failed write counted as one: not yet
    assert recorded(buildings[0].name) == [1]
    now[0] += runrecord.FAST_WRITE_S
    record.write(batched=True)
    publish(5)
    record.close()
    assert all(recorded(b.name) == [1, 2, 3, 4, 5] for b in buildings)


@pytest.mark.engine
def test_engine_that_cannot_start_reports_energyplus_errors(tmp_path, monkeypatch):
    """A broken model (here a weather file that is not one) faults at start with EnergyPlus's own words.
    The work folder is given relative to the current directory, as a command line gives it."""
    config = load_config(SIMS / "small_office.toml")
    building = config.buildings[0]
    (tmp_path / "bad.epw").write_text("not a weather file\n")
    monkeypatch.chdir(tmp_path)
    engine = ExternalInterfaceEngine(building.name, building.model, Path("bad.epw"), building.tagmap,
                                     config.period, Path("work"), start_timeout_s=120)
    with pytest.raises(EngineFault) as fault:
        asyncio.run(engine.start())
    assert "SmallOffice: EnergyPlus" in str(fault.value)
    assert any("Fatal" in line or "Severe" in line for line in fault.value.details), fault.value.details
    assert engine.process.returncode is not None


FAKE_ENERGYPLUS = '''
import re, socket, time
port = int(re.search(r'port="([0-9]+)"', open("socket.cfg").read()).group(1))
connection = socket.create_connection(("127.0.0.1", port))
time.sleep(1.5)  # warm-up, after connecting and before the first packet: longer than a step may take
connection.sendall(b"2 0 OUTPUTS 0 0 0" + b" 1.0" * OUTPUTS + b"\\n")
connection.recv(100)
'''


def test_warm_up_counts_against_the_start_timeout_not_the_step_timeout(tmp_path, monkeypatch):
    """EnergyPlus connects before its warm-up days and sends the first packet after them."""
    config = load_config(SIMS / "small_office.toml")
    building = config.buildings[0]
    script = tmp_path / "fake_energyplus.py"
    script.write_text(FAKE_ENERGYPLUS.replace("OUTPUTS", str(len(building.tagmap.outputs))))
    executable = tmp_path / "fake-python"
    executable.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")  # whatever the arguments
    executable.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(executable))
    engine = ExternalInterfaceEngine(building.name, building.model, building.weather, building.tagmap,
                                     config.period, tmp_path / "work", start_timeout_s=60, step_timeout_s=0.5)

    async def start() -> Sample:
        try:
            return await engine.start()
        finally:
            await engine.stop()

    assert asyncio.run(start()).outputs["FacilityPower"] == pytest.approx(0.001)


def test_a_late_input_ready_does_not_release_the_next_step():
    from bridge.building import BuildingState

    config = load_config(SIMS / "small_office.toml")

    async def scenario():
        building = BuildingState(config.buildings[0], config.buildings[0].tagmap)
        building.answer()  # the bridge is not waiting: a late answer to a timed-out step is dropped
        assert not building.input_ready.is_set()
        changed = building.changed
        building.begin_turn(4)
        assert changed.is_set() and not building.input_ready.is_set()
        building.answer()
        assert building.input_ready.is_set()
        building.begin_turn(5)  # a new turn starts unanswered
        assert not building.input_ready.is_set()

    asyncio.run(scenario())


def test_server_builds_the_standard_address_space_once_then_reads_it_from_the_cache(tmp_path, monkeypatch):
    import asyncua
    from asyncua import ua

    from bridge.protocol import NAMESPACE
    from bridge.server import TagServer

    monkeypatch.setenv("TWINBRIDGE_CACHE", str(tmp_path))
    shelf = tmp_path / f"opcua-standard-nodes-asyncua-{asyncua.__version__}"

    async def start_and_read() -> tuple[str, list[str]]:
        server = TagServer("opc.tcp://127.0.0.1:48801", "Campus")
        await server.init()
        state = await server.server.get_node(ua.ObjectIds.Server_ServerStatus_State).read_value()
        namespaces = await server.server.get_namespace_array()
        return state, namespaces

    first = asyncio.run(start_and_read())
    assert shelf.is_file() and shelf.with_name(shelf.name + ".dat").is_file()
    assert not list(tmp_path.glob(f"{shelf.name}.[0-9]*"))  # the private copy was renamed into place
    second = asyncio.run(start_and_read())  # from the shelf
    assert first == second and NAMESPACE in second[1]


def test_only_one_server_writes_the_address_space_cache(tmp_path):
    from bridge.opcua_adapter import write_shelf

    written = []

    class AddressSpace:
        def make_aspace_shelf(self, path: Path) -> None:
            written.append(path)
            Path(f"{path}.dat").write_text("nodes")
            Path(f"{path}.dir").write_text("index")

    shelf = tmp_path / "nodes"
    write_shelf(AddressSpace(), shelf)
    write_shelf(AddressSpace(), shelf)  # another server: finds the lock, writes nothing
    assert len(written) == 1
    assert (tmp_path / "nodes.dat").read_text() == "nodes" and shelf.is_file()


def test_packet_lines_split_across_reads_timeout_and_close():
    from bridge.engines.external_interface import PacketLines

    async def scenario() -> None:
        lines = PacketLines()
        server = await lines.loop.create_server(lines.factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        second, _ = await asyncio.open_connection("127.0.0.1", port)  # a second client is refused
        assert await asyncio.wait_for(second.read(), 5) == b""
        writer.write(b"2 0 1 0 0 600 21.")
        await writer.drain()
        with pytest.raises(asyncio.TimeoutError):  # half a packet is not a line
            await lines.next_line(0.2)
        writer.write(b"5\n2 0 1 0 0 1200 22.5\n2 1")
        await writer.drain()
        assert await lines.next_line(5) == b"2 0 1 0 0 600 21.5\n"
        assert await lines.next_line(5) == b"2 0 1 0 0 1200 22.5\n"
        lines.send(b"2 0 1 0 0 600 24\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"2 0 1 0 0 600 24\n"
        writer.close()
        assert await lines.next_line(5) == b"2 1"  # closed: what is left, without a newline
        assert await lines.next_line(5) == b""
        with pytest.raises(ConnectionError):
            lines.send(b"2 1 0 0 0 0\n")
        server.close()

    asyncio.run(scenario())


def test_server_starts_when_the_address_space_cannot_be_cached(tmp_path, monkeypatch, caplog):
    from bridge.server import TagServer

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("TWINBRIDGE_CACHE", str(blocker))
    server = TagServer("opc.tcp://127.0.0.1:48802", "Campus")
    with caplog.at_level("WARNING", logger="bridge.server"):
        asyncio.run(server.init())
    assert server.idx > 0
    assert any("cannot cache the standard address space" in r.getMessage() and str(blocker) in r.getMessage()
               for r in caplog.records)


def test_the_server_is_stopped_when_stopping_the_campus_fails(monkeypatch, caplog):
    """serve_campus's clean-up runs every step: a campus whose historian fails on stop still gets its
    OPC UA server stopped (and the failure is logged)."""
    import bridge.server
    from bridge import cli

    stopped = []

    class BrokenCampus:
        status, buildings = "Finished", []

        def __init__(self, config):
            self.started, self.done, self.serving = asyncio.Event(), asyncio.Event(), asyncio.Event()
            self.started.set()
            self.done.set()

        async def build_address_space(self, server) -> None:
            pass

        async def stop(self, final_status: str) -> None:
            raise RuntimeError("the historian broke")

    class Server:
        def __init__(self, *args) -> None:
            pass

        async def init(self) -> None:
            pass

        async def listen(self) -> None:
            pass

        async def stop(self, linger_s: float) -> None:
            stopped.append(linger_s)

    async def valid(config) -> None:
        pass

    monkeypatch.setattr(cli, "validate_campus", valid)
    monkeypatch.setattr(cli, "Campus", BrokenCampus)
    monkeypatch.setattr(bridge.server, "TagServer", Server)
    with caplog.at_level("ERROR", logger="twinbridge"):
        config = load_config(SIMS / "small_office.toml").with_overrides(endpoint=f"opc.tcp://127.0.0.1:{free_port()}")
        asyncio.run(cli.serve_campus(config, autostart=False))
    assert stopped == [cli.CLIENT_LINGER_S]
    assert any("stopping the campus failed" in r.getMessage() for r in caplog.records)


def history_storage(tmp_path: Path):
    """A HistorianStorage over 144 ten-minute steps of B.FacilityPower (value = step, step 1 at 00:10)."""
    from asyncua import ua

    from bridge import opcua_history

    historian = Historian(tmp_path / "h.sqlite", {"B": load_tagmap(TAGMAPS / "small_office.toml")})
    for step in range(1, 145):
        historian.record([("B", step, step * 600.0, step_time(step), {"FacilityPower": step})])
    historian.close()
    storage = opcua_history.HistorianStorage()
    storage.historian_path, node_id = tmp_path / "h.sqlite", ua.NodeId("T.B.Outputs.FacilityPower", 2)
    storage.tags[node_id] = ("B", "FacilityPower")
    return storage, node_id


def step_time(step: int) -> dt.datetime:
    return dt.datetime(2025, 7, 1) + dt.timedelta(minutes=10 * step)


def read_pages(storage, node_id, begin: dt.datetime, end: dt.datetime, per_request: int) -> tuple[list[float], int]:
    """Every value, each request starting where the last one's continuation point says (as asyncua does)."""

    async def pages() -> tuple[list[float], int]:
        values, requests, start = [], 0, begin.replace(tzinfo=dt.timezone.utc)
        while start is not None:
            page, start = await storage.read_node_history(node_id, start, end.replace(tzinfo=dt.timezone.utc),
                                                          per_request)
            values += [value.Value.Value for value in page]
            requests += 1
        return values, requests

    return asyncio.run(pages())


def test_history_read_pages_through_every_value_with_continuation_points(tmp_path, monkeypatch):
    from asyncua import ua

    from bridge import opcua_history

    storage, node_id = history_storage(tmp_path)
    every, begin, unspecified = [float(step) for step in range(1, 145)], dt.datetime(2025, 7, 1), ua.get_win_epoch()
    assert read_pages(storage, node_id, begin, unspecified, 10) == (every, 15)
    assert read_pages(storage, node_id, begin, unspecified, 144) == (every, 1)
    monkeypatch.setattr(opcua_history, "HISTORY_PAGE", 100)  # "all values" is answered in pages too
    assert read_pages(storage, node_id, begin, unspecified, 0) == (every, 2)


def test_history_read_backwards_gives_newest_first(tmp_path, monkeypatch):
    """Part 11: StartTime later than EndTime, or EndTime alone with NumValuesPerNode, reads newest first;
    the continuation points page back through every value once."""
    from asyncua import ua

    from bridge import opcua_history

    storage, node_id = history_storage(tmp_path)
    newest_first, later, earlier = [float(step) for step in range(144, 0, -1)], dt.datetime(2025, 7, 3), step_time(0)
    assert read_pages(storage, node_id, later, earlier, 10) == (newest_first, 15)
    assert read_pages(storage, node_id, later, earlier, 144) == (newest_first, 1)
    assert read_pages(storage, node_id, step_time(144), step_time(1), 11) == (newest_first, 14)  # last: start == end
    assert read_pages(storage, node_id, step_time(100), step_time(91), 0) == ([float(s) for s in range(100, 90, -1)], 1)
    monkeypatch.setattr(opcua_history, "HISTORY_PAGE", 100)
    assert read_pages(storage, node_id, later, earlier, 0) == (newest_first, 2)
    end = opcua_history.utc(step_time(50))
    page, following = asyncio.run(storage.read_node_history(node_id, ua.get_win_epoch(), end, 5))
    assert [value.Value.Value for value in page] == [50.0, 49.0, 48.0, 47.0, 46.0] and following is None


def twin_campus(tmp_path: Path) -> Path:
    """The small office as a twin whose model file is not one."""
    (tmp_path / "bad.npz").write_text("junk")
    text = (SIMS / "small_office.toml").read_text().replace('"../tagmaps/', f'"{TAGMAPS}/')
    path = tmp_path / "twin.toml"
    path.write_text(text.replace('model = "ref:small_office"', 'engine = "twin"\ntwin_model = "bad.npz"'))
    return path


def test_validate_refuses_a_bad_twin_model_file(tmp_path, capsys):
    from bridge import cli

    assert cli.main(["validate", str(twin_campus(tmp_path))]) == 2
    assert f"building SmallOffice: {tmp_path / 'bad.npz'}: not a twin model file" in capsys.readouterr().err


def test_run_reports_a_bad_twin_model_file_without_a_traceback(tmp_path, monkeypatch, capsys):
    """Should the model file break after validation, the run still ends with a one-line error."""
    from bridge import cli

    async def valid(config) -> None:
        pass

    monkeypatch.setattr(cli, "validate_campus", valid)
    assert cli.main(["run", str(twin_campus(tmp_path)), "--run-dir", str(tmp_path / "runs")]) == 2
    assert "twinbridge: error: " in capsys.readouterr().err
class GatedEngine(Engine):
    """Answers at once up to step ``hold_at``, which waits for ``gate``: a step in flight. Its stop is
    instant and leaves that step to answer (EnergyPlus had sent it before its socket was closed)."""

    def __init__(self, tagmap, hold_at: int):
        self.tagmap, self.hold_at, self.steps = tagmap, hold_at, 0
        self.gate = asyncio.Event()

    def _sample(self) -> Sample:
        return Sample(self.steps * 600.0, {o.tag: 1.0 for o in self.tagmap.outputs})

    async def start(self) -> Sample:
        return self._sample()

    async def step(self, inputs) -> Sample:
        self.steps += 1
        await (self.gate.wait() if self.steps >= self.hold_at else asyncio.sleep(0))  # yields, as engines do
        return self._sample()

    async def stop(self) -> None:
        pass


async def started_campus(config, engine: Engine):
    """A campus of one building on ``engine``, its server built (not listening, marked serving), started."""
    from bridge.campus import Campus
    from bridge.server import TagServer

    campus = Campus(config, engine_factory=lambda *_: engine)
    server = TagServer("opc.tcp://127.0.0.1:4840", config.name, config.period.time_of(0))
    await server.init()
    await campus.build_address_space(server)
    campus.serving.set()
    await campus.start()
    return campus


def test_a_server_that_cannot_listen_leaves_no_step_behind(tmp_path, monkeypatch):
    """The engines step only once the server listens (issue 13, defect 8): a port taken after the
    start-up check (a race) ends the run before its first step, with no historian row."""
    from bridge import cli
    from bridge.campus import Campus

    async def nothing(*_) -> None:
        pass

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        endpoint = f"opc.tcp://127.0.0.1:{busy.getsockname()[1]}"
        config = load_config(SIMS / "small_office.toml").with_overrides(clock="fast", run_dir=tmp_path, endpoint=endpoint)
        engine = GatedEngine(config.buildings[0].tagmap, hold_at=10**6)  # steps as fast as it is asked to
        monkeypatch.setattr(cli, "Campus", lambda config: Campus(config, engine_factory=lambda *_: engine))
        monkeypatch.setattr(cli, "validate_campus", nothing)
        monkeypatch.setattr(cli, "_check_port_free", nothing)  # the port is taken after the check
        with pytest.raises(OSError, match=f"cannot serve OPC UA at {endpoint}: .*address already in use"):
            asyncio.run(cli.serve_campus(config))
    assert engine.steps == 0
    (historian,) = tmp_path.glob("*/historian.sqlite")
    with sqlite3.connect(historian) as db:
        assert db.execute('SELECT COUNT(*) FROM "SmallOffice"').fetchone() == (0,)


def test_a_stopped_building_publishes_no_step_in_flight(tmp_path):
    config = load_config(SIMS / "small_office.toml").with_overrides(clock="fast", run_dir=tmp_path)
    engine = GatedEngine(config.buildings[0].tagmap, hold_at=6)

    async def scenario():
        campus = await started_campus(config, engine)
        building = campus.buildings[0]
        await building.until(lambda: building.published_step == 5, 30)  # step 6 is in flight
        await campus.stop_building(building)
        engine.gate.set()
        await asyncio.wait_for(campus.done.wait(), 30)
        return campus

    campus = asyncio.run(scenario())
    building = campus.buildings[0]
    assert (building.status, campus.status, building.published_step) == ("Stopped", "Stopped", 5)
    assert list(load_history(campus.run_path, "SmallOffice")["step"]) == [1, 2, 3, 4, 5]


def test_stopping_the_last_building_of_a_paused_campus_ends_the_run(tmp_path):
    config = load_config(SIMS / "small_office.toml").with_overrides(clock="fast", run_dir=tmp_path)

    async def scenario():
        campus = await started_campus(config, GatedEngine(config.buildings[0].tagmap, hold_at=10**6))
        building = campus.buildings[0]
        await building.until(lambda: building.published_step >= 2, 30)
        await campus.pause()
        await asyncio.sleep(0.2)  # the stepping loop ends its step in flight and waits for Resume
        await campus.stop_building(building)
        await asyncio.wait_for(campus.done.wait(), 30)
        return campus.status, building.status

    assert asyncio.run(scenario()) == ("Stopped", "Stopped")


def test_historian_write_failures_neither_stop_the_run_nor_leave_the_file_open(tmp_path, caplog):
    """Writes that fail from step 3 on (a full disk): logged, the run goes on to its end, the rows
    recorded before stay, the file is closed and the lost rows are counted."""
    config = load_config(SIMS / "small_office.toml").with_overrides(clock="fast", run_dir=tmp_path)
    engine = GatedEngine(config.buildings[0].tagmap, hold_at=8)

    async def scenario():
        campus = await started_campus(config, engine)
        building = campus.buildings[0]
        await building.until(lambda: building.published_step == 2, 30)
        historian = campus.historian
        recorded_steps = len(load_history(campus.run_path, "SmallOffice"))

        def refuse(rows):
            raise sqlite3.OperationalError("disk I/O error")

        historian.record = refuse
        await building.until(lambda: building.published_step == 7, 30)
        await campus.stop_building(building)
        engine.gate.set()
        await asyncio.wait_for(campus.done.wait(), 30)
        return campus, historian, recorded_steps

    campus, historian, recorded_steps = asyncio.run(scenario())
    assert campus.status == "Stopped" and campus.historian is None
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        historian._db.execute("SELECT 1")
    messages = [r.getMessage() for r in caplog.records]
    assert any("could not record" in m and "kept for the next write" in m for m in messages)
    assert any("published rows were never recorded" in m for m in messages)
    assert len(load_history(campus.run_path, "SmallOffice")) >= recorded_steps >= 1


class RecordingEngine(GatedEngine):
    """Never holds a step; remembers the CoolingSetpoint each step was computed from."""

    def __init__(self, tagmap):
        super().__init__(tagmap, hold_at=10**9)
        self.cooling: dict[int, float] = {}

    async def step(self, inputs) -> Sample:
        self.cooling[self.steps + 1] = inputs["CoolingSetpoint"]
        return await super().step(inputs)


def test_exchange_says_whether_its_inputs_drove_the_answered_step(tmp_path):
    """Control.Exchange in lockstep (timeout 0.5 s): Applied is True for calls in time (an empty one
    included: it keeps the current inputs), False for a late call and for a call whose write outlasted
    the timeout (the engine had the step's inputs before the write ended; that write must not release
    the next step either, or the call after it would be late); the engine agrees."""
    config = load_config(SIMS / "small_office.toml").with_overrides(clock="lockstep", lockstep_timeout_s=0.5,
                                                                    run_dir=tmp_path)
    engine = RecordingEngine(config.buildings[0].tagmap)
    calls = [(25.0, 0.0, 0.0), (26.0, 0.75, 0.0), (27.0, 0.0, 0.0), (28.0, 0.0, 0.75), (29.0, 0.1, 0.0),
             (None, 0.0, 0.0)]  # (cooling setpoint or None: empty Inputs, seconds before the call, write time)

    from bridge.handshake import exchange as exchange_of

    async def scenario():
        campus = await started_campus(config, engine)
        exchange = exchange_of(campus.buildings[0], campus.config)
        answers = []
        for cooling, before_s, write_s in calls:
            async def write(cooling=cooling, write_s=write_s) -> None:
                await asyncio.sleep(write_s)
                values = {} if cooling is None else {"CoolingSetpoint": cooling}
                await campus.server._write_inputs("SmallOffice", values)

            await asyncio.sleep(before_s)
            step, _, applied = await exchange(write, "controller")
            answers.append((step, applied))
        await campus.stop()
        return answers

    answers = asyncio.run(scenario())
    assert [applied for _, applied in answers] == [True, False, True, False, True, True], answers
    assert answers[1][0] == answers[0][0] + 1  # the late call's Step is the one an in-time call would get
    for (cooling, _, _), (step, applied) in zip(calls, answers):
        assert (engine.cooling[step] == (cooling or 29.0)) == applied, (cooling, step, applied)


class StallingEngine(GatedEngine):
    """Answers at once, except step ``stall_at``, which takes ``stall_s`` (an engine stopped for a while);
    remembers the wall time each step was handed over and when the stall ended."""

    def __init__(self, tagmap, stall_at: int, stall_s: float):
        super().__init__(tagmap, hold_at=10**9)
        self.stall_at, self.stall_s = stall_at, stall_s
        self.handed: dict[int, float] = {}
        self.stall_ended = 0.0  # time.time() when the stalled step answered

    async def step(self, inputs) -> Sample:
        self.handed[self.steps + 1] = time.monotonic()
        if self.steps + 1 == self.stall_at:
            await asyncio.sleep(self.stall_s)
            self.stall_ended = time.time()
        return await super().step(inputs)


@pytest.mark.parametrize("catch_up", [False, True])
def test_a_paced_step_that_overruns_its_slot_is_warned_and_the_pace_resumes_without_a_burst(tmp_path, caplog,
                                                                                          catch_up):
    """Paced at 0.25 s a step, step 5 takes 1.5 s: a warning naming the building when its slot ends (not
    after the stall), a line when the campus is back on pace, and then the steps keep their 0.25 s
    slots (they used to run the 5 missed slots back to back); with catch_up they do run back to back."""
    import bridge.kpi  # noqa: F401 (the campus imports it in a thread at start, slowing the first steps)

    slot_s = 0.25
    config = load_config(SIMS / "small_office.toml").with_overrides(clock="paced", speed=600 / slot_s,
                                                                    catch_up=catch_up, run_dir=tmp_path)
    engine = StallingEngine(config.buildings[0].tagmap, stall_at=5, stall_s=1.5)

    async def scenario():
        campus = await started_campus(config, engine)
        building = campus.buildings[0]
        await building.until(lambda: building.published_step >= 14, 30)
        await campus.stop()

    with caplog.at_level("INFO", logger="bridge.pace"):
        asyncio.run(scenario())
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.getMessage()[:30] for r in warnings] == ["paced clock: step 5 overruns i", "paced clock: back on pace at s"]
    assert "waiting for SmallOffice" in warnings[0].getMessage()
    assert warnings[0].created < engine.stall_ended  # said while the campus waits, not after
    gaps = [engine.handed[k + 1] - engine.handed[k] for k in range(6, 10)]
    if catch_up:
        assert min(gaps) < slot_s / 2, gaps  # back to back until the schedule is met
    else:
        assert min(gaps) > 0.9 * slot_s, gaps
        moved_s = float(re.search(r"the schedule moved ([0-9.]+) s later", warnings[1].getMessage())[1])
        assert moved_s >= 1.2  # the stall less the step's slot (a loaded machine makes it longer)


@pytest.mark.parametrize("clock", ["paced", "lockstep"])
def test_history_read_includes_the_newest_published_step(tmp_path, clock):
    """HistoryRead while the campus waits for the next step (paced: its wall slot; lockstep: the
    controllers) answers up to the step on the tags; it used to end one step earlier."""
    from asyncua import ua

    config = load_config(SIMS / "small_office.toml").with_overrides(clock=clock, speed=600 / 0.5,
                                                                    lockstep_timeout_s=0.5, run_dir=tmp_path)

    async def scenario():
        campus = await started_campus(config, GatedEngine(config.buildings[0].tagmap, hold_at=10**9))
        building = campus.buildings[0]
        await building.until(lambda: building.published_step >= 2, 30)
        step = building.published_step
        node_id = campus.server.outputs["SmallOffice"]["FacilityPower"]
        values, _ = await campus.server.history.read_node_history(
            node_id, dt.datetime(2025, 7, 1, tzinfo=dt.timezone.utc), ua.get_win_epoch(), 0)
        await campus.stop()
        return step, [value.SourceTimestamp.replace(tzinfo=None) for value in values]

    step, times = asyncio.run(scenario())
    assert times[-1] == config.period.time_of(step * 600.0) and len(times) == step


def test_the_progress_line_gives_the_recent_rate_and_an_eta(caplog):
    """A paced campus at 60x does 0.1 steps/s: the line said '0 steps/s' and had no ETA."""
    from bridge.progress import Progress

    period = load_config(SIMS / "small_office.toml").period
    progress = Progress(period)
    progress.restart(time.monotonic() - 40.0, 0)
    with caplog.at_level("INFO", logger="bridge.progress"):
        progress.step_done(4, [])
    line = caplog.records[-1].getMessage()
    remaining = config_steps = period.steps - 4
    assert "  0.1 steps/s  ETA " in line and str(dt.timedelta(seconds=remaining * 10)) in line, line
    assert config_steps > 0


def test_the_bridge_starts_without_pandas_or_scipy_stats():
    """``twinbridge run`` launches EnergyPlus first and imports the heavy modules while it sizes (docs/bridge.md):
    importing scipy.stats and pandas on the way (through the tracking config) cost 0.7 s before the launch."""
    code = "import sys, bridge.cli, bridge.campus; print(sorted(m for m in ('pandas', 'scipy.stats') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=SIMS.parent)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
