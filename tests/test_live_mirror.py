"""Live inputs: the ``[buildings.live]`` table, unit conversion, and the mirror between a live OPC UA
server and a twin's TagServer on loopback (absent at start, dropped, back; refused values; writes)."""

import asyncio
import datetime as dt
from contextlib import asynccontextmanager

import pytest
from asyncua import Client, Server, ua
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import ConfigError, load_config
from bridge.live.config import UNITS, LiveConfig, MirroredInput, unit_conversion
from bridge.live.mirror import Mirror
from bridge.server import METHODS, NAMESPACE, TagServer
from bridge.tagmap import load_tagmap
from bridge.tracking.config import Endpoint
from conftest import SIMS, TAGMAPS, free_port, wait_until

TAGMAP = load_tagmap(TAGMAPS / "small_office.toml")
LIVE_NS = "urn:bms"


# ----- configuration -------------------------------------------------------------------------------

def campus_file(tmp_path, live: str) -> str:
    text = (SIMS / "small_office.toml").read_text().replace('"../tagmaps/', f'"{TAGMAPS}/')
    path = tmp_path / "twin.toml"
    path.write_text(text + "\n[buildings.live]\n" + live)
    return str(path)


GOOD_LIVE = '''endpoint = "opc.tcp://127.0.0.1:4999"
max_age_s = 30
[[buildings.live.inputs]]
input = "CoolingSetpoint"
node = "/Bms/ClgSP"
unit = "degF->degC"
[[buildings.live.inputs]]
input = "HeatingSetpoint"
node = "ns=2;s=HtgSP"
scale = 0.5
'''


def test_live_table_is_read_with_conversions(tmp_path):
    live = load_config(campus_file(tmp_path, GOOD_LIVE)).buildings[0].live
    assert live.endpoint.url == "opc.tcp://127.0.0.1:4999" and live.max_age_s == 30 and live.warm_up == ""
    cooling, heating = live.inputs
    assert (cooling.input, cooling.node) == ("CoolingSetpoint", "/Bms/ClgSP")
    assert cooling.convert(212.0) == pytest.approx(100.0) and cooling.convert(32.0) == pytest.approx(0.0)
    assert heating.convert(40.0) == 20.0


@pytest.mark.parametrize("live, message", [
    (GOOD_LIVE.replace('input = "HeatingSetpoint"', 'input = "Humidity"'), "'input' 'Humidity' is not an input"),
    (GOOD_LIVE.replace('"degF->degC"', '"degF->K"'), "converts to 'K', but the twin input is in 'degC'"),
    (GOOD_LIVE.replace('"degF->degC"', '"kW"'), "cannot convert 'kW' (power) to 'degC'"),
    (GOOD_LIVE.replace('"degF->degC"', '"furlong"'), "unit 'furlong' has no known conversion"),
    (GOOD_LIVE.replace("scale = 0.5", 'scale = 0.5\nunit = "degC"'), "either 'unit' or 'scale'/'offset'"),
    (GOOD_LIVE.replace("scale = 0.5", "scale = 0"), "'scale' must be a finite non-zero number"),
    (GOOD_LIVE.replace("max_age_s = 30", "max_age_s = 0"), "'max_age_s' must be a positive number"),
    (GOOD_LIVE.replace("max_age_s = 30", 'max_age_s = "30"'), "'max_age_s' must be a number"),
    (GOOD_LIVE.replace("max_age_s = 30", "max_age = 30"), "unknown keys ['max_age']"),
    (GOOD_LIVE.replace('endpoint = "opc.tcp://127.0.0.1:4999"', ""), "needs 'endpoint'"),
    (GOOD_LIVE.replace("opc.tcp://", "http://"), "endpoint must start with opc.tcp://"),
    (GOOD_LIVE.replace('"HeatingSetpoint"', '"CoolingSetpoint"'), "mirrored more than once"),
    (GOOD_LIVE.replace('node = "/Bms/ClgSP"', 'node = "/"'), "'node' must name a node id or a browse path"),
    (GOOD_LIVE.split("[[")[0], "no [[buildings.live.inputs]] listed"),
    (GOOD_LIVE.replace("max_age_s = 30", 'warm_up = "yesterday"'), "'warm_up' must be one of ['', 'history']"),
    (GOOD_LIVE.replace("max_age_s = 30", 'warm_up = "history"'), "warm_up = 'history' needs a mirrored weather input"),
    (GOOD_LIVE.replace("max_age_s = 30", "warm_up_timeout_s = -1"), "'warm_up_timeout_s' must be a positive number"),
    (GOOD_LIVE.replace('max_age_s = 30', 'username = "twin"\npassword_env = "NO_SUCH_VARIABLE_SET"'),
     "needs a password in the environment variable NO_SUCH_VARIABLE_SET"),
])
def test_bad_live_tables_are_refused_naming_file_and_key(tmp_path, live, message):
    with pytest.raises(ConfigError) as error:
        load_config(campus_file(tmp_path, live))
    assert message in str(error.value) and "twin.toml" in str(error.value) and "[live]" in str(error.value)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(UNITS)), st.sampled_from(sorted(UNITS)), st.floats(-1e6, 1e6))
def test_unit_conversions_invert_each_other(source, target, value):
    if UNITS[source][0] != UNITS[target][0]:
        with pytest.raises(ValueError, match="cannot convert"):
            unit_conversion(source, target, "here", ValueError)
        return
    there = MirroredInput("x", "n", *unit_conversion(source, target, "here", ValueError))
    back = MirroredInput("x", "n", *unit_conversion(f"{target}->{source}", source, "here", ValueError))
    assert back.convert(there.convert(value)) == pytest.approx(value, rel=1e-9, abs=1e-6)


# ----- the mirror against a live server on loopback ----------------------------------------------

class LiveServer:
    """A building management system's server: setpoints in degF under Objects/Bms, restartable on its port."""

    def __init__(self, port: int):
        self.url, self.server, self.nodes = f"opc.tcp://127.0.0.1:{port}", None, {}

    async def start(self, cooling_f: float = 78.8, heating_f: float = 69.8) -> None:
        self.server = Server()
        await self.server.init()
        self.server.set_endpoint(self.url)
        idx = await self.server.register_namespace(LIVE_NS)
        folder = await self.server.nodes.objects.add_folder(ua.NodeId("Bms", idx), ua.QualifiedName("Bms", idx))
        for name, value in (("ClgSP", cooling_f), ("HtgSP", heating_f)):
            self.nodes[name] = await folder.add_variable(ua.NodeId(f"Bms.{name}", idx), ua.QualifiedName(name, idx),
                                                         value)
        await self.server.start()

    async def write(self, name: str, value: float) -> None:
        await self.nodes[name].write_value(value)

    async def stop(self) -> None:
        await self.server.stop()


async def _noop() -> str:
    return ""


async def _exchange(write, caller):
    await write()
    return 0, [], True


async def twin_server(port: int) -> TagServer:
    server = TagServer(f"opc.tcp://127.0.0.1:{port}", "Twin", dt.datetime(2025, 7, 1))
    await server.init()
    await server.add_building("SmallOffice", TAGMAP, {name: _noop for name in METHODS}, lambda: None, _exchange)
    return server


def live_config(url: str, max_age_s: float = 1.0) -> LiveConfig:
    endpoint = Endpoint(url, LIVE_NS, connect_timeout_s=2, request_timeout_s=0.5, publishing_interval_ms=20,
                        backoff_min_s=0.1, backoff_max_s=0.4)
    f_to_c = unit_conversion("degF", "degC", "test", ValueError)
    return LiveConfig(endpoint, (MirroredInput("CoolingSetpoint", "/Bms/ClgSP", *f_to_c),
                                 MirroredInput("HeatingSetpoint", "ns=2;s=Bms.HtgSP", *f_to_c)), max_age_s)


class ListSink:
    def __init__(self):
        self.alerts = []

    async def publish(self, alert) -> None:
        self.alerts.append(alert)


@asynccontextmanager
async def mirrored_twin(live_url: str, max_age_s: float = 1.0):
    """A twin TagServer listening, with its mirror running; yields (server, mirror, sink)."""
    server = await twin_server(free_port())
    sink = ListSink()
    mirror = Mirror(server, "SmallOffice", TAGMAP, live_config(live_url, max_age_s), [sink])
    await mirror.setup()
    await server.listen()
    task = asyncio.create_task(mirror.run())
    try:
        yield server, mirror, sink
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


def inputs(server: TagServer) -> dict[str, float]:
    return server.read_inputs("SmallOffice")


async def control(server: TagServer, name: str):
    return await server.server.get_node(ua.NodeId(f"Twin.SmallOffice.Control.{name}", server.idx)).read_value()


def until(predicate, timeout_s: float = 10.0):
    async def check():
        return predicate()
    return wait_until(check, timeout_s, 0.02)


def test_mirror_follows_converted_live_values():
    async def main():
        live = LiveServer(free_port())
        await live.start(cooling_f=78.8, heating_f=69.8)  # 26 and 21 degC
        try:
            async with mirrored_twin(live.url) as (server, mirror, _):
                await until(lambda: not mirror.stale)
                assert inputs(server) == pytest.approx({"CoolingSetpoint": 26.0, "HeatingSetpoint": 21.0})
                assert await control(server, "LiveStale") is False
                await live.write("ClgSP", 80.6)
                await until(lambda: inputs(server)["CoolingSetpoint"] == pytest.approx(27.0), 2.0)
        finally:
            await live.stop()

    asyncio.run(main())


def test_absent_at_start_then_dropped_then_back():
    # The mirror sets its flag and tags, then publishes the alarm to its sinks (a sink call yields to the
    # loop): the test waits for the alarm it checks, never for a fixed time.
    async def main():
        live = LiveServer(free_port())
        async with mirrored_twin(live.url, max_age_s=1.0) as (server, mirror, sink):
            await until(lambda: sink.alerts, 8.0)  # nobody there for max_age_s: defaults, stale, alarm; no crash
            assert inputs(server) == {"CoolingSetpoint": 24.0, "HeatingSetpoint": 21.0}
            assert mirror.stale and await control(server, "LiveStale") is True
            assert [(a.severity, a.raised) for a in sink.alerts] == [("stale", True)]
            assert "no live value for CoolingSetpoint, HeatingSetpoint" in sink.alerts[0].message

            await live.start(cooling_f=78.8)  # comes up: reconnects, mirrors, clears the flag and the alarm
            await until(lambda: not sink.alerts[-1].raised, 8.0)
            assert [(a.severity, a.raised) for a in sink.alerts] == [("stale", True), ("ok", False)]
            assert not mirror.stale and await control(server, "LiveStale") is False
            assert inputs(server)["CoolingSetpoint"] == pytest.approx(26.0)

            await live.stop()  # dropped: the last values are held, stale after max_age_s
            await until(lambda: sink.alerts[-1].raised, 8.0)
            assert "link to" in sink.alerts[-1].message
            assert inputs(server)["CoolingSetpoint"] == pytest.approx(26.0)
            assert mirror.stale and await control(server, "LiveStale") is True
            assert await control(server, "LiveAge") > 1.0

            await live.start(cooling_f=77.0)  # back: 25 degC, current once the new subscription delivered it
            await until(lambda: not mirror.stale, 8.0)
            assert inputs(server)["CoolingSetpoint"] == pytest.approx(25.0)
            await live.stop()

    asyncio.run(main())


def test_values_held_from_before_a_drop_are_not_current_on_the_new_link_until_it_sends_them():
    async def main():
        live = LiveServer(free_port())
        await live.start(cooling_f=78.8, heating_f=69.8)  # 26 and 21 degC
        async with mirrored_twin(live.url, max_age_s=1.0) as (server, mirror, _):
            await until(lambda: not mirror.stale)
            await live.stop()
            await until(lambda: mirror.stale, 8.0)
            await live.start(cooling_f="n/a", heating_f=68.0)  # back, but its ClgSP holds no number
            await until(lambda: inputs(server)["HeatingSetpoint"] == pytest.approx(20.0), 8.0)  # the new link is up
            await asyncio.sleep(1.0)  # four turns of the mirror (0.25 s each) on the new link
            assert inputs(server)["CoolingSetpoint"] == pytest.approx(26.0)  # held from before the drop ...
            assert mirror.stale and await control(server, "LiveStale") is True  # ... and said to be old
            assert await control(server, "LiveAge") > 1.0
            await live.stop()

    asyncio.run(main())


def test_out_of_range_or_disordered_live_values_are_held_and_flagged():
    async def main():
        live = LiveServer(free_port())
        await live.start(cooling_f=78.8, heating_f=69.8)
        try:
            async with mirrored_twin(live.url, max_age_s=30) as (server, mirror, sink):
                await until(lambda: not mirror.stale)
                await live.write("ClgSP", 104.0)  # 40 degC: above the input's EURange [18, 32]
                await until(lambda: mirror.stale)
                assert inputs(server)["CoolingSetpoint"] == pytest.approx(26.0)
                assert "outside EURange [18, 32]" in sink.alerts[-1].message
                await live.write("ClgSP", 75.2)  # 24 degC: good again
                await until(lambda: not mirror.stale)
                assert inputs(server)["CoolingSetpoint"] == pytest.approx(24.0)
                await live.write("HtgSP", 74.3)  # 23.5 degC heating: not 1 K below the cooling setpoint
                await until(lambda: mirror.stale)
                assert inputs(server)["HeatingSetpoint"] == pytest.approx(21.0)
                assert "must stay at least 1 degC below CoolingSetpoint" in sink.alerts[-1].message
        finally:
            await live.stop()

    asyncio.run(main())


def test_clients_cannot_write_mirrored_inputs_but_others():
    async def main():
        live = LiveServer(free_port())
        await live.start(cooling_f=78.8, heating_f=69.8)
        try:
            server = await twin_server(free_port())
            sink = ListSink()
            only_cooling = live_config(live.url, 30)
            only_cooling = LiveConfig(only_cooling.endpoint, only_cooling.inputs[:1], 30)
            mirror = Mirror(server, "SmallOffice", TAGMAP, only_cooling, [sink])
            await mirror.setup()
            await server.listen()
            task = asyncio.create_task(mirror.run())
            try:
                await until(lambda: not mirror.stale)
                async with Client(server.endpoint, timeout=5) as client:
                    idx = await client.get_namespace_index(NAMESPACE)
                    cooling = client.get_node(ua.NodeId("Twin.SmallOffice.Inputs.CoolingSetpoint", idx))
                    heating = client.get_node(ua.NodeId("Twin.SmallOffice.Inputs.HeatingSetpoint", idx))
                    value = ua.DataValue(ua.Variant(23.0, ua.VariantType.Double))
                    with pytest.raises(ua.UaStatusCodeError) as refused:
                        await cooling.write_value(value)
                    assert refused.value.code == ua.StatusCodes.BadNotWritable
                    await heating.write_value(ua.DataValue(ua.Variant(20.0, ua.VariantType.Double)))
                    assert "mirrored from /Bms/ClgSP" in (await cooling.read_description()).Text
                assert inputs(server) == pytest.approx({"CoolingSetpoint": 26.0, "HeatingSetpoint": 20.0})
                # Control.Exchange writes every input: the mirrored one is put back before a step reads it
                await server.write_value(server.input_node("SmallOffice", "CoolingSetpoint"), 30.0, ua.VariantType.Double)
                await mirror.restore()
                assert inputs(server)["CoolingSetpoint"] == pytest.approx(26.0)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await server.stop()
        finally:
            await live.stop()

    asyncio.run(main())


def test_exchange_values_for_mirrored_inputs_give_way_to_the_live_ones(tmp_path):
    """Control.Exchange writes every input: the mirrored one takes the live value again before the step
    it drives reads it (lockstep campus, recording engine); the other input keeps the call's value."""
    from bridge.handshake import exchange as exchange_of
    from test_bridge_units import RecordingEngine, started_campus

    config = load_config(SIMS / "small_office.toml").with_overrides(clock="lockstep", lockstep_timeout_s=2.0,
                                                                    run_dir=tmp_path)
    engine = RecordingEngine(config.buildings[0].tagmap)

    async def scenario():
        campus = await started_campus(config, engine)
        building = campus.buildings[0]
        mirror = Mirror(campus.server, "SmallOffice", building.tagmap, live_config("opc.tcp://127.0.0.1:1"))
        await mirror.setup()
        building.restore_mirrored = mirror.restore
        mirror.values["CoolingSetpoint"] = 26.0  # the latest live value (the mirror is not run here)

        async def write() -> None:
            await campus.server._write_inputs("SmallOffice", {"CoolingSetpoint": 25.0, "HeatingSetpoint": 20.0})

        step, _, applied = await exchange_of(building, campus.config)(write, "controller")
        heating = campus.server.read_inputs("SmallOffice")["HeatingSetpoint"]
        await campus.stop()
        return step, applied, heating

    step, applied, heating = asyncio.run(scenario())
    assert applied and engine.cooling[step] == 26.0 and heating == 20.0


def test_a_cancel_arriving_as_the_mirror_wakes_stops_it():
    """Python 3.11's wait_for returns the result of a wait that completes as the task is cancelled and drops
    the cancel: the mirror must still stop (a bridge cancels it on shutdown; a dropped cancel kept it retrying
    a live server that was gone, and its caller waiting, for ever)."""
    async def main():
        async with mirrored_twin(f"opc.tcp://127.0.0.1:{free_port()}") as (_, mirror, _):
            task = asyncio.create_task(mirror.run())
            await asyncio.sleep(0.3)  # in its wait (no live server: its subscriber retries)
            mirror._wake.set()  # a value arrives ...
            task.cancel()  # ... just as the mirror is cancelled
            done, _ = await asyncio.wait({task}, timeout=20)
            assert done, "the cancelled mirror went on running"
            assert task.cancelled()

    asyncio.run(main())
