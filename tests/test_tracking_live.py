"""Live link against a real asyncua server on loopback: pairing, unit conversion, stale alarm, sink."""

import asyncio
import dataclasses
import datetime as dt
from contextlib import asynccontextmanager

import pytest
from asyncua import Server, ua

from bridge.protocol import NAMESPACE
from bridge.tracking.config import Endpoint, Pair, TrackingConfig
from bridge.tracking.deviation import Alert, Thresholds
from bridge.tracking.live import LiveBuffer, LiveLink
from bridge.tracking.sinks import AsyncuaAlertSink
from devtools.launcher import free_port

START = dt.datetime(2025, 7, 1, tzinfo=dt.timezone.utc)


class ListSink:
    def __init__(self):
        self.alerts: list[Alert] = []

    async def publish(self, alert: Alert) -> None:
        self.alerts.append(alert)


async def start_server() -> tuple[Server, str, dict]:
    url = f"opc.tcp://127.0.0.1:{free_port()}/"
    server = Server()
    await server.init()
    server.set_endpoint(url)
    idx = await server.register_namespace(NAMESPACE)
    nodes = {}
    for name in ("Twin.Outputs.FacilityPower", "Live.Outputs.FacilityPower"):
        nodes[name] = await server.nodes.objects.add_variable(ua.NodeId(name, idx), name, 0.0)
    await server.start()
    for node in nodes.values():  # as a bridge before its first step: value stamped at the period start
        await write(node, 0.0, START)
    return server, url, nodes


def config(url: str, stale_after_s: float, live_utc_offset_h: float = 0.0, spin_up_h: float = 0.0) -> TrackingConfig:
    endpoint = Endpoint(url, NAMESPACE, connect_timeout_s=5, publishing_interval_ms=20, backoff_min_s=0.1)
    pair = Pair("FacilityPower", twin="Twin.Outputs.FacilityPower", live="Live.Outputs.FacilityPower",
                scale=0.001, unit="kW")  # the live meter reports W, the twin kW
    return TrackingConfig(live=dataclasses.replace(endpoint, utc_offset_h=live_utc_offset_h), twin=endpoint,
                          pairs=(pair,),
                          thresholds={"step": Thresholds(warning_steps=2, alert_steps=2)},
                          anomaly_db=None, stale_after_s=stale_after_s, pair_timeout_s=2.0, max_gap_s=300,
                          spin_up_h=spin_up_h)


async def write(node, value: float, time: dt.datetime) -> None:
    await node.write_value(ua.DataValue(ua.Variant(value, ua.VariantType.Double), SourceTimestamp=time))


async def wait_until(predicate, timeout_s: float = 10.0) -> None:
    async def poll():
        while not predicate():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout_s)


@asynccontextmanager
async def running_link(stale_after_s: float, live_utc_offset_h: float = 0.0, spin_up_h: float = 0.0):
    """A server with twin and live tags and a LiveLink on it, connected and past the initial values;
    yields (link, sink, nodes) and stops both afterwards."""
    server, url, nodes = await start_server()
    sink = ListSink()
    link = LiveLink(config(url, stale_after_s, live_utc_offset_h, spin_up_h), [sink], step=dt.timedelta(minutes=10))
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.live_subscriber.connected.wait(), 10)
        await asyncio.wait_for(link.twin_subscriber.connected.wait(), 10)
        await wait_until(lambda: link.steps_done == 1)  # the initial values at the period start
        yield link, sink, nodes
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


def test_pairs_twin_steps_with_converted_live_values_and_alerts():
    async def main():
        async with running_link(stale_after_s=30) as (link, sink, nodes):
            for i, live_w in enumerate([100_000, 100_000, 120_000, 120_000]):
                stamp = START + dt.timedelta(minutes=10 * (i + 1))
                await write(nodes["Live.Outputs.FacilityPower"], live_w, stamp)
                await write(nodes["Twin.Outputs.FacilityPower"], 100.0, stamp)
                await wait_until(lambda: link.steps_done == i + 2)
            await wait_until(lambda: any(a.severity == "alert" for a in sink.alerts))
        tracker = link.trackers["FacilityPower"]
        assert tracker.compared == 5 and tracker.gaps == 0
        assert tracker.latest_pct["step"] == pytest.approx(20.0)
        step_alerts = [a for a in sink.alerts if a.granularity == "step"]
        assert [(a.severity, a.time.minute) for a in step_alerts] == [("alert", 40)]
        assert step_alerts[0].actual == pytest.approx(120.0)

    asyncio.run(main())


@pytest.mark.parametrize("spin_up_h, alerted_at", [(0.0, 20), (0.5, 40)])
def test_the_twins_spin_up_is_paired_but_not_judged(spin_up_h, alerted_at):
    """The same 20 % excess from the first step: alerted after 2 steps, counted from the end of the spin-up
    (the run's first step, the initial values at START, + 30 min) when there is one."""
    async def main():
        async with running_link(stale_after_s=30, spin_up_h=spin_up_h) as (link, sink, nodes):
            for i in range(4):
                stamp = START + dt.timedelta(minutes=10 * (i + 1))
                await write(nodes["Live.Outputs.FacilityPower"], 120_000.0, stamp)
                await write(nodes["Twin.Outputs.FacilityPower"], 100.0, stamp)
                await wait_until(lambda: link.steps_done == i + 2)
            await wait_until(lambda: any(a.severity == "alert" for a in sink.alerts))
        assert [(a.severity, a.time.minute) for a in sink.alerts if a.granularity == "step"] == [("alert", alerted_at)]
        assert link.trackers["FacilityPower"].compared == (5 if spin_up_h == 0 else 2)

    asyncio.run(main())


def test_live_times_in_true_utc_pair_with_the_twins_standard_time():
    async def main():
        async with running_link(stale_after_s=30, live_utc_offset_h=-6) as (link, sink, nodes):
            for i in range(3):
                stamp = START + dt.timedelta(minutes=10 * (i + 1))  # simulation time: local standard time (UTC-6)
                await write(nodes["Live.Outputs.FacilityPower"], 100_000.0, stamp + dt.timedelta(hours=6))  # true UTC
                await write(nodes["Twin.Outputs.FacilityPower"], 100.0, stamp)
                await wait_until(lambda: link.steps_done == i + 2)
        tracker = link.trackers["FacilityPower"]
        assert (tracker.compared, tracker.gaps) == (3, 1)  # the gap: both initial values stamped START
        assert tracker.latest_pct["step"] == pytest.approx(0.0)

    asyncio.run(main())


def test_stale_live_data_raise_the_alarm_and_clear_it():
    async def main():
        async with running_link(stale_after_s=0.5) as (link, sink, nodes):
            for i in range(3):  # the twin keeps stepping, the live building says nothing
                await write(nodes["Twin.Outputs.FacilityPower"], 100.0, START + dt.timedelta(minutes=10 * (i + 1)))
                await asyncio.sleep(0.05)
            await wait_until(lambda: link.stale)
            await wait_until(lambda: link.steps_done == 4)  # compared as gaps, not silently skipped
            assert link.trackers["FacilityPower"].gaps == 3
            await write(nodes["Live.Outputs.FacilityPower"], 100_000.0, START + dt.timedelta(minutes=40))
            await wait_until(lambda: not link.stale)
        live = [(a.severity, a.raised) for a in sink.alerts if a.granularity == "live"]
        assert live == [("stale", True), ("ok", False)]

    asyncio.run(main())


def test_asyncua_sink_sets_status_variables_and_fires_events():
    async def main():
        server, url, _ = await start_server()
        try:
            idx = await server.get_namespace_index(NAMESPACE)
            parent = await server.nodes.objects.add_object(ua.NodeId("Site.Office.Tracking", idx), "Tracking")
            sink = AsyncuaAlertSink(server, parent, idx)
            await sink.setup()
            alert = Alert(time=START.replace(tzinfo=None), signal="FacilityPower", granularity="step",
                          severity="alert", raised=True, predicted=100.0, actual=115.0, error=15.0,
                          deviation_pct=15.0, message="FacilityPower: step deviation +15.0 %")
            await sink.publish(alert)
            assert await sink.nodes["Severity"].read_value() == "alert"
            assert await sink.nodes["DeviationPct"].read_value() == 15.0
            assert await sink.nodes["LastAlert"].read_value() == alert.message
            await sink.publish(Alert(time=START.replace(tzinfo=None), signal="live", granularity="live",
                                     severity="stale", raised=True, message="stale"))
            assert await sink.nodes["StaleData"].read_value() is True
            assert await sink.nodes["Severity"].read_value() == "alert"
        finally:
            await server.stop()

    asyncio.run(main())


def test_a_late_sample_in_a_full_buffer_drops_the_oldest_and_keeps_order():
    buffer, t0 = LiveBuffer(maxlen=5), START.replace(tzinfo=None)
    for i in range(5):
        buffer.add(t0 + dt.timedelta(seconds=10 * i), float(i))
    buffer.add(t0 + dt.timedelta(seconds=15), 99.0)
    assert list(buffer.times) == [t0 + dt.timedelta(seconds=s) for s in (10, 15, 20, 30, 40)]
    assert list(buffer.values) == [1.0, 99.0, 2.0, 3.0, 4.0]


def test_a_node_id_given_with_its_namespace_uri_is_subscribed():
    """``nsu=<uri>;s=...`` (the form docs/live.md names) is resolved to the server's index of that
    namespace; asyncua would otherwise subscribe to namespace 0 and find no such node."""
    from bridge.tracking.live import TagSubscriber

    async def scenario() -> list[float]:
        server, url, nodes = await start_server()
        seen: list[float] = []
        endpoint = Endpoint(url, "urn:some:other:namespace", connect_timeout_s=5, publishing_interval_ms=20)
        subscriber = TagSubscriber("test", endpoint, {"power": f"nsu={NAMESPACE};s=Live.Outputs.FacilityPower"},
                                   lambda key, stamp, value: seen.append(value))
        task = asyncio.create_task(subscriber.run())
        try:
            await asyncio.wait_for(subscriber.connected.wait(), 10)
            await write(nodes["Live.Outputs.FacilityPower"], 42.0, START + dt.timedelta(minutes=10))
            await wait_until(lambda: 42.0 in seen)
            return seen
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()

    assert 42.0 in asyncio.run(scenario())


def test_a_cancel_arriving_as_the_link_wakes_stops_it():
    """Python 3.11's wait_for returns the result of a wait that completes as the task is cancelled and drops
    the cancel: the link must still stop (attach_tracking's caller cancels it on shutdown)."""
    async def main():
        link = LiveLink(config("opc.tcp://127.0.0.1:1/", stale_after_s=60), [], step=dt.timedelta(minutes=10))
        task = asyncio.create_task(link.run())
        await asyncio.sleep(0.3)  # in its wait for a value (the endpoints are dead: the subscribers retry)
        link._wake.set()  # a value arrives ...
        task.cancel()  # ... just as the link is cancelled
        done, _ = await asyncio.wait({task}, timeout=20)
        assert done, "the cancelled link went on running"
        assert task.cancelled()

    asyncio.run(main())
