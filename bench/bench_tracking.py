"""Benchmark of fault detection by the tracking module: detection delay and false alerts.

The twin and the "live building" are two ExternalInterfaceEngines run directly (not two bridges
over OPC UA: the steps and values are the same, without the transport): the twin runs the DOE
Small Office unchanged, the live copy has a fault injected part-way (``bridge.tracking.faults``).
Meter noise (Gaussian, 1 % of the value, fixed seed) is added to the live power so that the
fault-free pair is not trivially identical. Their FacilityPower series are fed to
``DeviationTracker`` offline with the default thresholds (5 % / 10 %, 3 consecutive steps).

Figures: per fault, steps from fault onset to the first step-level warning and alert (target:
<= 60 steps: the onset is at midnight and most faults only show once the building is occupied at
08:00, 48 steps later), alerts before the onset (target 0); and raised alerts per simulated
30 days on the fault-free pair (target 0). Writes bench/results/tracking.json.

Run: /work/venv/bin/python bench/bench_tracking.py [--days 14] [--fault-day 7]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import platform
import tempfile
from pathlib import Path

import numpy as np

from bridge.config import RunPeriod, load_config
from bridge.engines.external_interface import ExternalInterfaceEngine
from bridge.idf import Idf
from bridge.tracking import faults
from bridge.tracking.deviation import DeviationTracker

ROOT = Path(__file__).resolve().parent.parent
SIGNAL = "FacilityPower"


async def simulate(model: Path, building, period: RunPeriod, workdir: Path) -> list[tuple[dt.datetime, float]]:
    engine = ExternalInterfaceEngine(building.name, model, building.weather, building.tagmap, period, workdir)
    series = []
    inputs = building.tagmap.defaults
    sample = await engine.start()
    try:
        while sample is not None:
            series.append((period.time_of(sample.sim_time_s), sample.outputs[SIGNAL]))
            sample = await engine.step(inputs)
    finally:
        await engine.stop()
    return series


def track(twin, live, onset: dt.datetime | None) -> dict:
    tracker = DeviationTracker(SIGNAL)
    first: dict[str, int] = {}
    before_onset = raised = 0
    onset_index = next((i for i, (t, _) in enumerate(twin) if onset and t > onset), None)
    for i, ((time, predicted), (_, actual)) in enumerate(zip(twin, live)):
        for alert in tracker.update(time, predicted, actual):
            if alert.granularity != "step" or not alert.raised:
                continue
            raised += 1
            if onset_index is None or i < onset_index:
                before_onset += 1
            else:
                first.setdefault("warning", i - onset_index)  # an alert is also "at least a warning"
                if alert.severity == "alert":
                    first.setdefault("alert", i - onset_index)
    return {"first": first, "before_onset": before_onset, "raised": raised}


async def main(days: int, fault_day: int) -> dict:
    building = load_config(ROOT / "sims" / "small_office.toml").buildings[0]
    start = dt.date(2025, 7, 22)  # after the July 21 design day: faults leave sizing alone
    period = RunPeriod(start, start + dt.timedelta(days=days - 1), 6)
    onset_day = start + dt.timedelta(days=fault_day - 1)
    # Simulation time is standard time; schedules follow daylight saving time (on in July): the
    # faulted day starts at 23:00 standard time the evening before.
    onset = dt.datetime.combine(onset_day, dt.time()) - dt.timedelta(hours=1)
    cases = {
        "equipment_plus_30pct": lambda idf: faults.raise_equipment(idf, 30, onset_day),
        "lighting_halved": lambda idf: faults.scale_lighting(idf, 0.5, onset_day),
        "hvac_start_2h_early": lambda idf: faults.shift_schedule(idf, "HVACOperationSchd", -2, onset_day),
    }
    rng = np.random.default_rng(7)
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = {"twin": building.model}
        for name, edit in cases.items():
            idf = Idf.read(building.model)
            edit(idf)
            runs[name] = tmp / f"{name}.idf"
            idf.write(runs[name])
        series = {}
        for name, model in runs.items():  # one at a time: the machine has few cores
            series[name] = await simulate(model, building, period, tmp / name)

        def noisy(values):
            return [(t, v * (1 + rng.normal(0, 0.01))) for t, v in values]

        clean = track(series["twin"], noisy(series["twin"]), None)
        figures["false_alerts_per_30_days_fault_free"] = {
            "value": clean["raised"] * 30 / days, "unit": "alerts/30 days", "target": 0}
        for name in cases:
            result = track(series["twin"], noisy(series[name]), onset)
            for severity in ("warning", "alert"):
                figures[f"{name}_steps_to_{severity}"] = {
                    "value": result["first"].get(severity), "unit": "steps (10 min) after 00:00 of the onset day", "target": "<= 60"}
            figures[f"{name}_alerts_before_onset"] = {"value": result["before_onset"], "unit": "alerts", "target": 0}
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--fault-day", type=int, default=7, help="first faulted day (1 = first day of the run)")
    args = parser.parse_args()
    figures = asyncio.run(main(args.days, args.fault_day))
    out = {
        "benchmark": "tracking",
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
        "method": (f"two ExternalInterfaceEngines run directly (twin + faulted live copy), not two bridges over OPC UA; "
                   f"DOE Small Office, Chicago, from July 22 for {args.days} days, 10-min steps, fault from day {args.fault_day}; "
                   "1 % Gaussian meter noise on the live power; default thresholds 5 %/10 %, 3 consecutive steps"),
        "figures": figures,
    }
    path = ROOT / "bench" / "results" / "tracking.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
