"""Benchmark of fault detection by the tracking module: detection delay and false alerts.

Default path (``--transport opcua``): two real bridges on loopback, as in operation. A "twin"
bridge runs the DOE Small Office unchanged; a "live" bridge runs one building per case: a
fault-free copy and one copy per fault injected part-way (``bridge.tracking.faults``). Both run
paced at the same speed (``--speed``) and are started together with ``Control.Start``. One
``LiveLink`` subscribes to both servers and pairs each live building's FacilityPower with the
twin's by simulation timestamp. Meter noise (Gaussian, 1 % of the value, fixed seed) is added to
the live values as they arrive, so that the fault-free pair is not trivially identical.

``--transport offline``: the same models run as two ExternalInterfaceEngines per case, directly
(no bridge, no OPC UA), their series fed to ``DeviationTracker``; the same figures.

Thresholds are the defaults (5 % / 10 %; 6 consecutive steps on the same side since 2026-12-04, 3 before;
hourly: a warning after 3 hours, an alert after 1; daily 1 period: bridge/tracking/deviation.py).
Figures: per fault, steps from the onset (23:00 standard time the evening before the faulted day:
schedules follow daylight saving time) to the first step-level warning and alert (target <= 60:
most faults only show with occupancy, about 50 steps after the onset), raised alerts before the
onset (target 0); on the fault-free pair, alerts and warnings (any granularity) per simulated
30 days (target 0). Writes bench/results/tracking.json.

Run: /work/venv/bin/python bench/bench_tracking.py [--days 30] [--fault-day 7] [--speed 12000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from asyncua import Client, ua

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results_io import write_results  # noqa: E402
from bridge.config import BuildingConfig, RunPeriod, load_config  # noqa: E402
from bridge.protocol import NAMESPACE  # noqa: E402
from bridge.tracking.after_hours import GRANULARITY as AFTER_HOURS  # noqa: E402
from bridge.tracking.config import Endpoint, Pair, TrackingConfig  # noqa: E402
from bridge.tracking.deviation import Alert, DeviationTracker  # noqa: E402
from bridge.tracking.live import LiveLink  # noqa: E402
from bridge.tracking.scenario import edited_model, write_campus  # noqa: E402
from devtools.launcher import run_bridge  # noqa: E402

SIGNAL = "FacilityPower"
FAULT_FREE = "fault_free"
START = dt.date(2025, 7, 22)  # after the July 21 design day: part-way faults leave sizing alone
NOISE = 0.01


def fault_edits(onset_day: dt.date) -> dict[str, dict]:
    start = f"{onset_day:%m-%d}"
    return {
        "equipment_plus_30pct": {"edit": "raise_equipment", "pct": 30, "start": start},
        "lighting_halved": {"edit": "scale_lighting", "factor": 0.5, "start": start},
        "hvac_start_2h_early": {"edit": "shift_schedule", "name": "HVACOperationSchd", "hours": -2, "start": start},
    }


class RecordingSink:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    async def publish(self, alert: Alert) -> None:
        self.alerts.append(alert)


# --- two bridges over OPC UA -------------------------------------------------------------------
@contextmanager
def bridge(campus: Path, speed: float, workdir: Path) -> Iterator[str]:
    """A paced ``twinbridge run`` daemon waiting for Start; yields its endpoint, stops it on exit."""
    with run_bridge(campus, workdir, "--clock", "paced", "--speed", str(speed), "--wait-for-start") as daemon:
        yield daemon.endpoint


async def start_campus(url: str, campus: str) -> None:
    async with Client(url, timeout=10) as client:
        idx = await client.get_namespace_index(NAMESPACE)
        await client.get_node(ua.NodeId(f"{campus}.Control", idx)).call_method(ua.NodeId(f"{campus}.Control.Start", idx))


async def track_over_opcua(models: dict[str, Path], reference: BuildingConfig, period: RunPeriod, speed: float,
                           workdir: Path) -> dict[str, list[Alert]]:
    """Alerts per case from two paced bridges (twin; live with one building per case) and one LiveLink."""
    twin_toml = write_campus(workdir / "twin.toml", "Twin", {"SmallOffice": reference.model}, reference,
                             period.start, period.end)
    live_toml = write_campus(workdir / "live.toml", "Live", models, reference, period.start, period.end)
    stamps = period.steps + 1  # the values published at the period start, then one per step
    pairs = tuple(Pair(case, twin=f"Twin.SmallOffice.Outputs.{SIGNAL}", live=f"Live.{case}.Outputs.{SIGNAL}")
                  for case in models)
    rng = np.random.default_rng(7)
    with bridge(twin_toml, speed, workdir) as twin_url, bridge(live_toml, speed, workdir) as live_url:
        config = TrackingConfig(live=Endpoint(live_url, NAMESPACE), twin=Endpoint(twin_url, NAMESPACE), pairs=pairs,
                                thresholds={}, anomaly_db=workdir / "anomalies.sqlite", stale_after_s=300,
                                pair_timeout_s=120)
        sink = RecordingSink()
        link = LiveLink(config, [sink], step=dt.timedelta(seconds=period.step_s))
        on_live = link.live_subscriber.on_value
        link.live_subscriber.on_value = lambda key, stamp, value: on_live(key, stamp, value * (1 + rng.normal(0, NOISE)))
        task = asyncio.create_task(link.run())
        try:
            await asyncio.wait_for(link.twin_subscriber.connected.wait(), 60)
            await asyncio.wait_for(link.live_subscriber.connected.wait(), 60)
            await asyncio.gather(start_campus(twin_url, "Twin"), start_campus(live_url, "Live"))
            deadline = time.monotonic() + 20 * period.steps * period.step_s / speed + 300
            while min(t.compared for t in link.trackers.values()) < stamps:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"compared {[t.compared for t in link.trackers.values()]} of {stamps} steps")
                await asyncio.sleep(0.5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return {case: [a for a in sink.alerts if a.signal == case] for case in models}


# --- engines run directly ----------------------------------------------------------------------
async def simulate(model: Path, building: BuildingConfig, period: RunPeriod, workdir: Path) -> list[tuple[dt.datetime, float]]:
    from bridge.engines.external_interface import ExternalInterfaceEngine

    engine = ExternalInterfaceEngine(building.name, model, building.weather, building.tagmap, period, workdir)
    series = []
    sample = await engine.start()
    try:
        while sample is not None:
            series.append((period.time_of(sample.sim_time_s), sample.outputs[SIGNAL]))
            sample = await engine.step(building.tagmap.defaults)
    finally:
        await engine.stop()
    return series


async def track_offline(models: dict[str, Path], reference: BuildingConfig, period: RunPeriod,
                        workdir: Path) -> dict[str, list[Alert]]:
    """Alerts per case from engines run one after the other (the machine has few cores), no OPC UA."""
    rng = np.random.default_rng(7)
    twin = await simulate(reference.model, reference, period, workdir / "twin")
    alerts = {}
    for case, model in models.items():
        live = await simulate(model, reference, period, workdir / case)
        tracker = DeviationTracker(case)
        alerts[case] = [a for (t, predicted), (_, actual) in zip(twin, live)
                        for a in tracker.update(t, predicted, actual * (1 + rng.normal(0, NOISE)))]
    return alerts


# --- figures -----------------------------------------------------------------------------------
def period_end(alert: Alert) -> dt.datetime:
    """End of the period an alert is about (period alerts are stamped with the period's start)."""
    if alert.granularity == "monthly":
        return (alert.time.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return alert.time + {"hourly": dt.timedelta(hours=1), "daily": dt.timedelta(days=1)}.get(alert.granularity,
                                                                                             dt.timedelta(0))


def raised_at(alert: Alert, step: dt.timedelta) -> dt.datetime:
    """End of the step whose sample raised ``alert``: its own for a step (or after-hours) alert; for an hourly,
    daily or monthly one the first step after its period (the sample that closes the period)."""
    return alert.time if alert.granularity in ("step", AFTER_HOURS) else period_end(alert) + step


def figures_of(alerts: dict[str, list[Alert]], onset: dt.datetime, days: int,
               granularities: tuple[str, ...] = ("step",)) -> dict[str, dict]:
    """False alerts and warnings per 30 days (any granularity) and, per fault, the steps from ``onset`` to
    the first warning and alert raised at one of ``granularities`` (counted to the step that raised it)."""
    step = dt.timedelta(minutes=10)
    clean = [a for a in alerts[FAULT_FREE] if a.raised]
    figures = {
        "fault_free_false_alerts_per_30_days": {
            "value": sum(a.severity == "alert" for a in clean) * 30 / days, "unit": "alerts/30 days", "target": 0},
        "fault_free_false_warnings_per_30_days": {
            "value": sum(a.severity == "warning" for a in clean) * 30 / days, "unit": "warnings/30 days", "target": 0},
    }
    for case, case_alerts in alerts.items():
        if case == FAULT_FREE:
            continue
        raised = [a for a in case_alerts if a.raised]
        after = sorted((a for a in raised if a.granularity in granularities and raised_at(a, step) > onset),
                       key=lambda a: raised_at(a, step))
        first = {"warning": next((a for a in after), None),  # an alert is also "at least a warning"
                 "alert": next((a for a in after if a.severity == "alert"), None)}
        for severity, alert in first.items():
            figures[f"{case}_steps_to_{severity}"] = {
                "value": None if alert is None else round((raised_at(alert, step) - onset) / step),
                "unit": "steps (10 min) after the onset (first faulted step = 1)", "target": "<= 60"}
        figures[f"{case}_alerts_before_onset"] = {
            "value": sum(period_end(a) <= onset for a in raised), "unit": "alerts and warnings", "target": 0}
    return figures


async def main(days: int, fault_day: int, transport: str, speed: float) -> tuple[dict, str]:
    reference = load_config(REPO / "sims" / "small_office.toml").buildings[0]
    period = RunPeriod(START, START + dt.timedelta(days=days - 1), 6)
    onset_day = START + dt.timedelta(days=fault_day - 1)
    # Simulation time is standard time; schedules follow daylight saving time (on in July).
    onset = dt.datetime.combine(onset_day, dt.time()) - dt.timedelta(hours=1)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        models = {FAULT_FREE: Path(reference.model)}
        for case, edit in fault_edits(onset_day).items():
            models[case] = edited_model(reference.model, [edit], workdir / f"{case}.idf")
        if transport == "opcua":
            alerts = await track_over_opcua(models, reference, period, speed, workdir)
            how = (f"two twinbridge daemons on loopback, paced at speed {speed:g} (started together), one LiveLink "
                   f"over OPC UA pairing by simulation timestamp; live bridge: {len(models)} buildings (fault-free + "
                   "one per fault)")
        else:
            alerts = await track_offline(models, reference, period, workdir)
            how = "ExternalInterfaceEngines run directly (no bridge, no OPC UA), series fed to DeviationTracker"
    notes = (f"{how}. DOE Small Office, Chicago, from {START} for {days} days, 10-min steps, faults from "
             f"{onset_day} (onset {onset:%Y-%m-%d %H:%M} standard time); 1 % Gaussian meter noise on the live "
             "power; default thresholds 5 %/10 %, 3 consecutive steps.")
    return figures_of(alerts, onset, days), notes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="simulated days (30: the false-alert rate over a month)")
    parser.add_argument("--fault-day", type=int, default=7, help="first faulted day (1 = first day of the run)")
    parser.add_argument("--transport", choices=("opcua", "offline"), default="opcua",
                        help="opcua: two bridges and a LiveLink (default); offline: engines run directly")
    parser.add_argument("--speed", type=float, default=12000, help="opcua: paced speed of both bridges")
    args = parser.parse_args()
    figures, notes = asyncio.run(main(args.days, args.fault_day, args.transport, args.speed))
    write_results("tracking", figures, notes)
