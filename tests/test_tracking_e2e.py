"""Two real bridges on loopback: a fault-free twin and a "live building" with plug loads raised part-way.

Both run the DOE Small Office paced at the same speed; the tracking LiveLink subscribes to both
servers and pairs their FacilityPower by simulation timestamp. The fault must raise a step-level
warning, then an alert, within a bounded number of steps of its onset, and nothing before it.
"""

import asyncio
import datetime as dt

from asyncua import Client, ua

from bridge.config import load_config
from bridge.protocol import NAMESPACE
from bridge.tracking.anomalies import AnomalyLog
from bridge.tracking.config import Endpoint, Pair, TrackingConfig
from bridge.tracking.deviation import Alert, Thresholds
from bridge.tracking.live import LiveLink
from bridge.tracking.scenario import edited_model, write_campus
from conftest import SIMS, run_bridge, wait_until

START, END = dt.date(2025, 7, 23), dt.date(2025, 7, 24)  # after the Jul 21 design day: sizing unchanged
FAULT_DAY = "07-24"
# Simulation time is standard time, schedules follow DST: the faulted day begins at 23:00 the evening before.
ONSET = dt.datetime(2025, 7, 23, 23, 0)
STAMPS = 2 * 24 * 6 + 1  # the published values at the period start, then one per step (23 fault-free hours)
# Night plug loads put the deviation at 5-10 % at once (warning); >= 10 % comes with occupancy (alert).
MAX_STEPS_TO_WARNING, MAX_STEPS_TO_ALERT = 6, 60


class ListSink:
    def __init__(self):
        self.alerts: list[Alert] = []

    async def publish(self, alert: Alert) -> None:
        self.alerts.append(alert)


def campus_files(tmp_path, fault_day: str = FAULT_DAY) -> tuple:
    reference = load_config(SIMS / "small_office.toml").buildings[0]
    faulted = edited_model(reference.model, [{"edit": "raise_equipment", "pct": 30, "start": fault_day}],
                           tmp_path / "live.idf")
    twin = write_campus(tmp_path / "twin.toml", "Twin", {"SmallOffice": reference.model}, reference, START, END)
    live = write_campus(tmp_path / "live.toml", "Live", {"SmallOffice": faulted}, reference, START, END)
    return twin, live


def tracking_config(twin_url: str, live_url: str, tmp_path) -> TrackingConfig:
    pair = Pair("FacilityPower", twin="Twin.SmallOffice.Outputs.FacilityPower",
                live="Live.SmallOffice.Outputs.FacilityPower", unit="kW")
    return TrackingConfig(live=Endpoint(live_url, NAMESPACE), twin=Endpoint(twin_url, NAMESPACE), pairs=(pair,),
                          thresholds={"step": Thresholds()},  # 5 % / 10 %, 3 steps
                          anomaly_db=tmp_path / "anomalies.sqlite", stale_after_s=120, pair_timeout_s=30)


async def start_campus(url: str, campus: str) -> None:
    async with Client(url, timeout=10) as client:
        idx = await client.get_namespace_index(NAMESPACE)
        await client.get_node(ua.NodeId(f"{campus}.Control", idx)).call_method(ua.NodeId(f"{campus}.Control.Start", idx))


def test_fault_in_the_live_bridge_raises_warning_then_alert_after_onset(tmp_path):
    twin_toml, live_toml = campus_files(tmp_path)
    clock = ("--clock", "paced", "--speed", "6000", "--wait-for-start")
    with run_bridge(twin_toml, tmp_path, *clock) as twin, run_bridge(live_toml, tmp_path, *clock) as live:
        config = tracking_config(twin.endpoint, live.endpoint, tmp_path)
        sink = ListSink()
        link = LiveLink(config, [sink, AnomalyLog(config.anomaly_db)], step=dt.timedelta(minutes=10))

        async def main():
            task = asyncio.create_task(link.run())
            try:
                await asyncio.wait_for(link.twin_subscriber.connected.wait(), 30)
                await asyncio.wait_for(link.live_subscriber.connected.wait(), 30)
                await asyncio.gather(start_campus(twin.endpoint, "Twin"), start_campus(live.endpoint, "Live"))

                tracker = link.trackers["FacilityPower"]

                async def all_steps_compared():
                    return tracker.compared >= STAMPS  # compared excludes gaps
                await wait_until(all_steps_compared, timeout_s=240, interval_s=0.5)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        asyncio.run(main())
        assert "Traceback" not in twin.log + live.log

    tracker = link.trackers["FacilityPower"]
    # At most one gap: the tags' values from before Start (stamped with wall time, no live value that old).
    assert tracker.gaps <= 1
    raised = [a for a in sink.alerts if a.raised]
    # Period alerts are stamped with their period's start: compare the period's end with the onset.
    length = {"step": dt.timedelta(0), "hourly": dt.timedelta(hours=1), "daily": dt.timedelta(days=1)}
    assert not [a for a in raised if a.time + length[a.granularity] <= ONSET], "alert raised before the fault"
    step = [a for a in raised if a.granularity == "step"]
    assert [a.severity for a in step[:2]] == ["warning", "alert"], step
    steps_after_onset = [(a.time - ONSET) / dt.timedelta(minutes=10) for a in step[:2]]
    assert 1 <= steps_after_onset[0] <= MAX_STEPS_TO_WARNING, steps_after_onset
    assert steps_after_onset[0] < steps_after_onset[1] <= MAX_STEPS_TO_ALERT, steps_after_onset
    assert step[1].deviation_pct >= 10
    logged = AnomalyLog(config.anomaly_db).rows()
    assert {(r.granularity, r.severity) for r in logged} >= {("step", "warning"), ("step", "alert")}


def test_campus_file_tracking_puts_alerts_on_the_twin_bridge(tmp_path):
    """``[[tracking]]`` in a campus file: the twin bridge itself tracks the live one and shows the
    result on ``<Campus>.<Building>.Tracking`` tags (the fault from the first step: the alert comes with occupancy)."""
    twin_toml, live_toml = campus_files(tmp_path, fault_day=f"{START:%m-%d}")
    clock = ("--clock", "paced", "--speed", "6000", "--wait-for-start")
    with run_bridge(live_toml, tmp_path, *clock) as live:
        (tmp_path / "tracking.toml").write_text(
            f'[tracking]\nanomaly_db = "anomalies.sqlite"\nstale_after_s = 120\npair_timeout_s = 30\n\n'
            f'[live]\nendpoint = "{live.endpoint}"\n\n[twin]\nendpoint = "opc.tcp://127.0.0.1:1"\n\n'
            f'[[pairs]]\nname = "FacilityPower"\ntwin = "Twin.SmallOffice.Outputs.FacilityPower"\n'
            f'live = "Live.SmallOffice.Outputs.FacilityPower"\nunit = "kW"\n')
        with open(twin_toml, "a") as campus:
            campus.write('\n[[tracking]]\nbuilding = "SmallOffice"\nconfig = "tracking.toml"\n')
        with run_bridge(twin_toml, tmp_path, *clock) as twin:

            async def main() -> str:
                async with Client(twin.endpoint, timeout=10) as client:
                    idx = await client.get_namespace_index(NAMESPACE)
                    severity = client.get_node(ua.NodeId("Twin.SmallOffice.Tracking.Severity", idx))
                    await asyncio.sleep(2.0)  # let the tracking link subscribe to both bridges first
                    await asyncio.gather(start_campus(twin.endpoint, "Twin"), start_campus(live.endpoint, "Live"))

                    async def alerted():
                        return await severity.read_value() == "alert"

                    await wait_until(alerted, 120, 0.2)
                    return await severity.read_value()

            assert asyncio.run(main()) == "alert"
            assert "tracking SmallOffice against the live building" in twin.log
    assert AnomalyLog(tmp_path / "anomalies.sqlite").rows()
