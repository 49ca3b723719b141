"""Benchmark: a twin that mirrors a live building's weather, against that building on another weather file.

"Live building": the DOE Small Office on Las Vegas TMY3 (``devtools.livetwin.LIVE_WEATHER``; July there
is hot and dry where Chicago is mild and humid), fault-free and with the three faults of
``bench_tracking`` from ``--fault-day``. "Twin": the nominal Small Office on Chicago TMY3 with
``tagmaps/small_office_live.toml``, mirroring the live site weather (dry bulb, relative humidity, wind
speed, direct and diffuse solar, since 2026-12-04 the sky temperature, since 2026-12-05 the wind direction) and
setpoints; since 2026-12-05 the mirrored twin warms up on the live building's first day (its file's first day is
the live file's: ``devtools.livetwin.warmed_weather``, docs/live.md "Spin-up"). Control: the same twin without
mirroring, on its own file.

Periods (each 30 days, 10-minute steps, faults from day 3, the first day spin-up), chosen before any
result of either was seen: **summer from 2025-07-22** (bench_tracking's start, after the July 21 design
day) and **winter from 2025-01-15** (Jan 15 - Feb 13: January in Las Vegas is mild, about 8 degC, where
Chicago's is about -5 degC; no daylight saving, so the onset is the midnight starting day 3). The winter
period was added after the summer results were known and is not used for any choice: every period run
is reported, figures suffixed ``_summer`` and ``_winter`` side by side.

Figures (facility power): hourly CV(RMSE) and NMBE of the mirrored twin against the fault-free live
building over the whole run (targets <= 5 % and |NMBE| <= 2 %; Guideline 14 hourly limits 30 % / 10 %)
and of the control; false alerts and warnings per 30 days on the fault-free pair (target 0); per fault,
steps from the onset to the first warning and alert at any granularity, counted to the step whose
sample raised it (target <= 60; the operator is told by an hourly alert as by a step one), and to the
first of the step rule alone (``steps_to_step_level_*``). Tracking as in bench_tracking: default
thresholds, 1 % Gaussian meter noise on the live power (fixed seed); since 2026-12-05 also the after-hours rule
(bridge/tracking/after_hours.py, default thresholds, the Small Office's occupied hours), whose alerts count
with the others and alone as ``after_hours_rule_*``.

``--transport opcua`` (default): two bridges on loopback in lockstep (``devtools.livetwin.drive_lockstep``:
live step k, then the twin's step k on the live values of step k), the mirror through
``[buildings.live]``, one ``LiveLink`` pairing by simulation timestamp (the steps after the spin-up and the noise
draws of the offline run's tracking, since 2026-12-05); Guideline 14 from the two historians. ``--transport offline``: the engines run directly, the twin fed the live outputs of the
same step; it adds the ablation (each mirrored input left to the file in turn, and a one-step lag).

Run: PYTHONPATH=$PWD python bench/bench_live_twin.py [--days 30] [--fault-day 3] [--transport opcua] [--periods summer winter]
Writes bench/results/live_twin.json and live_twin_<period>.png (offline: live_twin_offline.*).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_tracking import FAULT_FREE, NOISE, RecordingSink, fault_edits, figures_of, start_campus  # noqa: E402
from bench.results_io import RESULTS, figure, pyplot, save_plot, write_results  # noqa: E402
from bridge.config import RunPeriod, reference_model, reference_weather  # noqa: E402
from bridge.engines.base import Sample  # noqa: E402
from bridge.historian import load_history  # noqa: E402
from bridge.protocol import NAMESPACE  # noqa: E402
from bridge.tagmap import load_tagmap  # noqa: E402
from bridge.tracking.after_hours import GRANULARITY as AFTER_HOURS, AfterHoursDetector, AfterHoursRule  # noqa: E402
from bridge.tracking.config import Endpoint, Pair, TrackingConfig  # noqa: E402
from bridge.tracking.deviation import GRANULARITIES, Alert, DeviationTracker  # noqa: E402
from bridge.tracking.guideline14 import calibration  # noqa: E402
from bridge.tracking.live import LiveLink, OnValue  # noqa: E402
from bridge.tracking.scenario import edited_model  # noqa: E402
from devtools.launcher import run_bridge  # noqa: E402
from devtools.livetwin import (LIVE_BUILDING_TAGMAP, LIVE_TAGMAP, LIVE_WEATHER, MIRRORED, SPIN_UP_DAYS, TWIN_WEATHER,  # noqa: E402
                               building_entry, campus_file, drive_lockstep, live_table, onset_of, relocated_weather,
                               warmed_weather,
                               twin_occupancy)

SIGNAL = "FacilityPower"
PERIODS = {"summer": dt.date(2025, 7, 22), "winter": dt.date(2025, 1, 15)}  # starts, chosen before running
WEATHER_INPUTS = [name for name, (folder, _) in MIRRORED.items() if folder == "Outputs"]
AFTER_HOURS_RULE = AfterHoursRule(twin_occupancy())  # default thresholds, the Small Office's occupied hours


def energy_kwh(times: list[dt.datetime], power_kw: list[float], step_s: float) -> pd.Series:
    """Energy per step (kWh) labelled by the step's start, from end-of-step stamps and mean power."""
    index = pd.DatetimeIndex(times) - pd.Timedelta(seconds=step_s)
    return pd.Series(np.asarray(power_kw, float) * step_s / 3600, index=index)


def g14(live: pd.Series, twin: pd.Series) -> dict:
    """Hourly Guideline 14 figures of ``twin`` against ``live`` (kWh per step series)."""
    result = calibration(live, twin, "hourly")
    return {"cv_rmse_pct": result.cv_rmse_pct, "nmbe_pct": result.nmbe_pct, "hours": result.n}


def tracked(live: list[tuple[dt.datetime, float]], twin: list[tuple[dt.datetime, float]], name: str,
            skip: int, seed: int = 7, thresholds: dict | None = None,
            after_hours: AfterHoursRule | None = None) -> list[Alert]:
    """Alerts of a DeviationTracker (default ``thresholds``) and, with ``after_hours``, of that after-hours
    rule, fed the pair after ``skip`` steps (the spin-up), 1 % meter noise on the live values (as
    bench_tracking; the same draws with or without the after-hours rule)."""
    rng, tracker = np.random.default_rng(seed), DeviationTracker(name, thresholds or {})
    detector = AfterHoursDetector(name, after_hours) if after_hours else None
    alerts = []
    for (t, predicted), (_, actual) in zip(twin[skip:], live[skip:]):
        actual = actual * (1 + rng.normal(0, NOISE))
        alerts += tracker.update(t, predicted, actual)
        if detector:
            alerts += detector.update(t, predicted, actual)
    return alerts


# --- engines run directly ----------------------------------------------------------------------
async def simulate(model: Path, weather: Path, period: RunPeriod, workdir: Path, feed: list[Sample] | None = None,
                   inputs: tuple[str, ...] = tuple(MIRRORED), lag: int = 0, tagmap: Path = LIVE_TAGMAP) -> list[Sample]:
    """Samples of one run on ``tagmap`` (the twin's: dry, snow-free; ``LIVE_BUILDING_TAGMAP`` for the live
    building: rain and snow from its file); with ``feed`` (a live run's samples) the mirrored ``inputs`` of
    step k take the live values of step k - ``lag`` (setpoints: the live defaults, which the live run used)."""
    from bridge.engines.external_interface import ExternalInterfaceEngine

    tagmap = load_tagmap(tagmap)
    engine = ExternalInterfaceEngine("SmallOffice", model, weather, tagmap, period, workdir)
    samples = [await engine.start()]
    try:
        while True:
            values = dict(tagmap.defaults)
            if feed is not None:
                source = feed[min(max(len(samples) - lag, 0), len(feed) - 1)].outputs  # the last step ends the run
                values.update({name: source[MIRRORED[name][1]] for name in inputs if name in WEATHER_INPUTS})
            sample = await engine.step(values)
            if sample is None:
                return samples
            samples.append(sample)
    finally:
        await engine.stop()


def series(samples: list[Sample], period: RunPeriod) -> list[tuple[dt.datetime, float]]:
    return [(period.time_of(s.sim_time_s), s.outputs[SIGNAL]) for s in samples[1:]]


async def offline(models: dict[str, Path], live_weather: Path, period: RunPeriod,
                  workdir: Path) -> tuple[dict, dict, dict]:
    """(power series per case, alerts per case, ablation G14 figures) from engines run one after the other."""
    twin_weather = reference_weather(TWIN_WEATHER.removeprefix("ref:"))
    warmed = warmed_weather(twin_weather, live_weather, period.start, workdir / "twin.epw")  # mirrored twins'
    nominal, skip = reference_model("small_office"), SPIN_UP_DAYS * 24 * period.timesteps_per_hour
    lives = {case: await simulate(model, live_weather, period, workdir / case, tagmap=LIVE_BUILDING_TAGMAP)
             for case, model in models.items()}
    mirrored = await simulate(nominal, warmed, period, workdir / "mirrored", lives[FAULT_FREE])
    control = await simulate(nominal, twin_weather, period, workdir / "control")
    power = {f"live_{case}": series(s, period) for case, s in lives.items()}
    power |= {"twin_mirrored": series(mirrored, period), "twin_control": series(control, period)}
    alerts = {case: tracked(power[f"live_{case}"], power["twin_mirrored"], case, skip, after_hours=AFTER_HOURS_RULE)
              for case in models}
    alerts["control"] = tracked(power[f"live_{FAULT_FREE}"], power["twin_control"], "control", skip,
                                after_hours=AFTER_HOURS_RULE)
    ablation = {}
    live_kwh = scored(energy_kwh(*zip(*power[f"live_{FAULT_FREE}"]), period.step_s), period)
    variants = {"lag_1_step": (tuple(MIRRORED), 1)}
    variants |= {f"without_{name}": (tuple(n for n in MIRRORED if n != name), 0) for name in WEATHER_INPUTS}
    for variant, (inputs, lag) in variants.items():
        twin = await simulate(nominal, warmed, period, workdir / variant, lives[FAULT_FREE], inputs, lag)
        ablation[variant] = g14(live_kwh, energy_kwh(*zip(*series(twin, period)), period.step_s))
    # the live building at the other city's own site (sun path, time zone, elevation), the twin in Chicago
    elsewhere = await simulate(nominal, reference_weather(LIVE_WEATHER.removeprefix("ref:")), period,
                               workdir / "elsewhere", tagmap=LIVE_BUILDING_TAGMAP)
    twin = await simulate(nominal, twin_weather, period, workdir / "elsewhere_twin", elsewhere)
    ablation["live_at_its_own_site"] = g14(scored(energy_kwh(*zip(*series(elsewhere, period)), period.step_s), period),
                                           energy_kwh(*zip(*series(twin, period)), period.step_s))
    ablation["live_at_its_own_site"]["alerts"] = sum(a.raised and a.severity == "alert" for a in tracked(
        series(elsewhere, period), series(twin, period), "elsewhere", skip))
    return power, alerts, ablation


def scored(energy: pd.Series, period: RunPeriod) -> pd.Series:
    """The part of a series after the spin-up (the first SPIN_UP_DAYS days)."""
    return energy[energy.index >= pd.Timestamp(period.start + dt.timedelta(days=SPIN_UP_DAYS))]


# --- two bridges over OPC UA -------------------------------------------------------------------
async def over_opcua(models: dict[str, Path], live_weather: Path, period: RunPeriod,
                     workdir: Path) -> tuple[dict, dict, dict]:
    """(power series per case from the historians, alerts per case from a LiveLink started after the
    spin-up, driver timing)."""
    live_toml = campus_file(workdir / "live.toml", "Live", period,
                            [building_entry(case, model, str(live_weather), tagmap=LIVE_BUILDING_TAGMAP)
                             for case, model in models.items()])
    skip = SPIN_UP_DAYS * 24 * period.timesteps_per_hour
    pairs = tuple(Pair(case, twin=f"Twin.Mirrored.Outputs.{SIGNAL}", live=f"Live.{case}.Outputs.{SIGNAL}")
                  for case in models)
    pairs += (Pair("control", twin=f"Twin.Unmirrored.Outputs.{SIGNAL}", live=f"Live.{FAULT_FREE}.Outputs.{SIGNAL}"),)
    spun_up = dt.datetime.combine(period.start + dt.timedelta(days=SPIN_UP_DAYS), dt.time())  # the spin-up's last stamp
    with run_bridge(live_toml, workdir, "--wait-for-start") as live_bridge:
        twin_toml = campus_file(workdir / "twin.toml", "Twin", period, [
            building_entry("Mirrored", "ref:small_office",
                           str(warmed_weather(reference_weather(TWIN_WEATHER.removeprefix("ref:")), live_weather,
                                              period.start, workdir / "twin.epw")),
                           live_table(live_bridge.endpoint, "Live", FAULT_FREE)),
            building_entry("Unmirrored", "ref:small_office", TWIN_WEATHER)])
        with run_bridge(twin_toml, workdir, "--wait-for-start") as twin_bridge:
            config = TrackingConfig(live=Endpoint(live_bridge.endpoint, NAMESPACE),
                                    twin=Endpoint(twin_bridge.endpoint, NAMESPACE), pairs=pairs, thresholds={},
                                    anomaly_db=workdir / "anomalies.sqlite", stale_after_s=300, pair_timeout_s=120,
                                    after_hours=AFTER_HOURS_RULE)
            sink = RecordingSink()
            link = LiveLink(config, [sink], step=dt.timedelta(seconds=period.step_s))
            link.twin_subscriber.on_value = after(spun_up, link.twin_subscriber.on_value)
            link.live_subscriber.on_value = after(spun_up, link.live_subscriber.on_value,
                                                  {pair.name: np.random.default_rng(7) for pair in pairs})
            await asyncio.gather(start_campus(live_bridge.endpoint, "Live"), start_campus(twin_bridge.endpoint, "Twin"))
            drive = functools.partial(drive_lockstep, live_bridge.endpoint, twin_bridge.endpoint,
                                      [f"Live.{case}" for case in models], ["Twin.Mirrored", "Twin.Unmirrored"],
                                      {"Twin.Mirrored": f"Live.{FAULT_FREE}"})
            await drive(skip)
            task = asyncio.create_task(link.run())
            try:
                await asyncio.wait_for(link.twin_subscriber.connected.wait(), 30)
                await asyncio.wait_for(link.live_subscriber.connected.wait(), 30)
                timing = await drive(period.steps - skip)
                deadline = time.monotonic() + 60
                while (min(t.compared for t in link.trackers.values()) < period.steps - skip
                       and time.monotonic() < deadline):
                    await asyncio.sleep(0.2)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            twin_history = twin_bridge.historian()
        live_history = live_bridge.historian()
    power = {f"live_{case}": historian_series(live_history, case) for case in models}
    power |= {"twin_mirrored": historian_series(twin_history, "Mirrored"),
              "twin_control": historian_series(twin_history, "Unmirrored")}
    alerts = {pair.name: [a for a in sink.alerts if a.signal == pair.name] for pair in pairs}
    timing["stale_alarms"] = sum(a.severity == "stale" for a in sink.alerts)
    return power, alerts, timing


def after(spun_up: dt.datetime, on_value: OnValue, noise: dict[str, np.random.Generator] | None = None) -> OnValue:
    """``on_value`` for the values stamped after ``spun_up`` only, with ``noise`` the 1 % meter noise drawn from
    each pair's own generator: the steps and draws of ``tracked`` (the subscription's initial value closes the
    spin-up's last step, which ``tracked`` skips; one generator shared by the pairs drew in arrival order)."""
    def on_tracked_value(key: str, stamp: dt.datetime, value: float) -> None:
        if stamp > spun_up:
            on_value(key, stamp, value * (1 + noise[key].normal(0, NOISE)) if noise else value)
    return on_tracked_value


def historian_series(path: Path, building: str) -> list[tuple[dt.datetime, float]]:
    """(end-of-step time, FacilityPower) of the steps a building's historian recorded (step 0 left out)."""
    frame = load_history(path, building)
    frame = frame[frame["step"] > 0]
    return list(zip(frame.index.to_pydatetime(), frame[SIGNAL].to_numpy(float)))


# --- figures -----------------------------------------------------------------------------------
def figures_from(power: dict, alerts: dict, onset: dt.datetime, period: RunPeriod) -> dict:
    step_s, days = period.step_s, (period.end - period.start).days + 1 - SPIN_UP_DAYS
    live = scored(energy_kwh(*zip(*power[f"live_{FAULT_FREE}"]), step_s), period)
    mirrored = g14(live, energy_kwh(*zip(*power["twin_mirrored"]), step_s))
    control = g14(live, energy_kwh(*zip(*power["twin_control"]), step_s))
    mirrored_before = g14(live[live.index < onset], energy_kwh(*zip(*power["twin_mirrored"]), step_s))
    figures = {
        "hourly_cv_rmse_pct": figure(mirrored["cv_rmse_pct"], "%", "<= 5 (Guideline 14 hourly: 30)"),
        "hourly_nmbe_pct": figure(mirrored["nmbe_pct"], "%", "|x| <= 2 (Guideline 14 hourly: 10)"),
        "hourly_cv_rmse_pct_before_onset": figure(mirrored_before["cv_rmse_pct"], "%", "<= 5"),
        "hourly_nmbe_pct_before_onset": figure(mirrored_before["nmbe_pct"], "%", "|x| <= 2"),
        "control_hourly_cv_rmse_pct": figure(control["cv_rmse_pct"], "%", "no mirroring: > 5 expected"),
        "control_hourly_nmbe_pct": figure(control["nmbe_pct"], "%", "no mirroring: beyond 2 expected"),
        "control_alerts_raised": figure(sum(a.raised and a.severity == "alert" for a in alerts["control"]),
                                        "alerts (any granularity)", "> 0 (the test can fail)"),
    }
    faults = {k: v for k, v in alerts.items() if k != "control"}
    figures |= figures_of(faults, onset, days, (*GRANULARITIES, AFTER_HOURS))  # when the operator is told, any rule
    figures |= {name.replace("_steps_to_", "_steps_to_step_level_"): value  # the step rule alone
                for name, value in figures_of(faults, onset, days).items() if "_steps_to_" in name}
    after_hours = {case: [a for a in case_alerts if a.granularity == AFTER_HOURS] for case, case_alerts in faults.items()}
    figures |= {f"after_hours_rule_{name}": value  # the after-hours rule alone: its own false alerts and detection
                for name, value in figures_of(after_hours, onset, days, (AFTER_HOURS,)).items()
                if "before_onset" not in name}
    return figures


def plot(power: dict, onset: dt.datetime, path: Path) -> Path:
    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    for name, style in ((f"live_{FAULT_FREE}", "k-"), ("twin_mirrored", "C0-"), ("twin_control", "C3:")):
        times, values = zip(*power[name])
        axes[0].plot(times, values, style, lw=0.8, label=name.replace("_", " "))
    axes[0].set_ylabel("facility power, kW")
    axes[0].legend(loc="upper right", fontsize=8)
    for name in [k for k in power if k.startswith("live_") and k != f"live_{FAULT_FREE}"]:
        (times, live), (_, twin) = zip(*power[name]), zip(*power["twin_mirrored"])
        axes[1].plot(times, 100 * (np.asarray(live) - np.asarray(twin)) / np.maximum(np.asarray(twin), 1e-9),
                     lw=0.7, label=name.removeprefix("live_"))
    axes[1].axvline(onset, color="k", ls="--", lw=0.8)
    axes[1].axhline(10, color="r", lw=0.6)
    axes[1].axhline(-10, color="r", lw=0.6)
    axes[1].set_ylabel("live vs mirrored twin, %")
    axes[1].legend(loc="upper right", fontsize=8)
    return save_plot(fig, path)


def result_name(transport: str) -> str:
    return "live_twin" if transport == "opcua" else f"live_twin_{transport}"


async def run_period(start: dt.date, days: int, fault_day: int, transport: str, name: str) -> tuple[dict, str]:
    """Figures and notes of one period (the plot: ``<result>_<name>.png``)."""
    period = RunPeriod(start, start + dt.timedelta(days=days - 1), 6)
    onset_day, onset = onset_of(period, fault_day)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        nominal = reference_model("small_office")
        models = {FAULT_FREE: nominal}
        live_weather = relocated_weather(reference_weather(LIVE_WEATHER.removeprefix("ref:")),
                                         reference_weather(TWIN_WEATHER.removeprefix("ref:")), workdir / "live.epw")
        for case, edit in fault_edits(onset_day).items():
            models[case] = edited_model(nominal, [edit], workdir / f"{case}.idf")
        if transport == "opcua":
            power, alerts, extra = await over_opcua(models, live_weather, period, workdir)
            how = ("two twinbridge daemons on loopback in lockstep, driven live step k then twin step k once the "
                   f"mirror delivered the live values of step k (wall {extra['wall_s_per_step'] * 1000:.0f} ms per "
                   f"step, of which {extra['mirror_wait_s_per_step'] * 1000:.0f} ms waiting for the mirror); "
                   "one LiveLink over OPC UA; Guideline 14 from the historians")
        else:
            power, alerts, extra = await offline(models, live_weather, period, workdir)
            how = "ExternalInterfaceEngines run directly, the twin fed the live outputs of the same step"
    figures = figures_from(power, alerts, onset, period)
    if transport == "opcua":
        figures["lockstep_ms_per_step"] = figure(extra["wall_s_per_step"] * 1000, "ms", "")
        figures["stale_alarms"] = figure(extra["stale_alarms"], "alarms", "0")
    else:
        for variant, result in extra.items():
            figures[f"ablation_{variant}_hourly_cv_rmse_pct"] = figure(result["cv_rmse_pct"], "%", "")
            figures[f"ablation_{variant}_hourly_nmbe_pct"] = figure(result["nmbe_pct"], "%", "")
            if "alerts" in result:
                figures[f"ablation_{variant}_alerts"] = figure(result["alerts"], "alerts", "")
    plot(power, onset, RESULTS / f"{result_name(transport)}_{name}.png")
    notes = (f"{name}: {how}; from {start} for {days} days, faults from {onset_day} (onset "
             f"{onset:%Y-%m-%d %H:%M} standard time)")
    return figures, notes


async def main(days: int, fault_day: int, transport: str, periods: list[str]) -> tuple[dict, str]:
    figures, notes = {}, []
    for name in periods:
        period_figures, period_notes = await run_period(PERIODS[name], days, fault_day, transport, name)
        figures |= {f"{key}_{name}": value for key, value in period_figures.items()}
        notes.append(period_notes)
    notes.append(f"Live: DOE Small Office on {LIVE_WEATHER}'s weather data at Chicago's site (the EPW's LOCATION "
                 "line replaced, station pressures scaled to Chicago's elevation), twin: on "
                 f"{TWIN_WEATHER} mirroring {', '.join(MIRRORED)}; 10-min steps; hourly CV(RMSE)/NMBE over the "
                 f"whole run, fault-free pair; the first {SPIN_UP_DAYS} day(s) are spin-up, left out of every "
                 "figure; tracking: 1 % Gaussian meter noise on the live power, default thresholds (5 %/10 %; "
                 "step: 6 steps on the same side; hourly: warning 3 hours, alert 1) and the after-hours rule "
                 "(default: 12 unoccupied steps, warning 0.3 kW, alert 0.4 kW over the twin; the Small Office's "
                 "occupied hours). steps_to_warning/alert: the first raised by any rule, counted to the step whose "
                 "sample raised it (an hourly one: the first step after its hour); steps_to_step_level_*: the step "
                 "rule alone; after_hours_rule_*: the after-hours rule alone. Load average "
                 f"(1 min) at the end: {os.getloadavg()[0]:.1f}")
    return figures, ". ".join(notes) + "."


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="simulated days (30: the false-alert rate over a month)")
    parser.add_argument("--fault-day", type=int, default=3, help="first faulted day (1 = first day of the run)")
    parser.add_argument("--transport", choices=("opcua", "offline"), default="opcua")
    parser.add_argument("--periods", nargs="+", choices=tuple(PERIODS), default=list(PERIODS))
    args = parser.parse_args()
    figures, notes = asyncio.run(main(args.days, args.fault_day, args.transport, args.periods))
    write_results(result_name(args.transport), figures, notes)
