"""Offline study of the GP-MPC's event baseline (issue 16): which level correction makes the twin's
base-schedule forecast of the event window closest to what the building drew.

Validation days, chosen before looking at any result of this study, none of them an event (test)
day of bench_gp_mpc (Jul 24, 29, 31, Aug 5, 7, 13): weekdays, the Large Office, Chicago TMY3,
- June (the July twin, trained on Jul 1-21: out of sample): Tue Jun 10, Thu Jun 12, Tue Jun 17,
  Tue Jun 24, Thu Jun 26;
- July, the tuning days bench_gp_mpc already allows (the July twin): Tue Jul 22, Wed Jul 23;
- late August (the August twin): Tue Aug 19, Thu Aug 21, Tue Aug 26, Thu Aug 28.
Each day is run alone from midnight under the base schedule (lockstep bridge, the schedule
controller over OPC UA: bench_gp_mpc's base run), no closed loop. A GP-MPC controller with the day's
14-17 h event (bench_gp_mpc's MPC file) is fed the measured outputs step by step up to the step at
which the event enters its 2 h horizon (11:10 simulation time); there every variant makes the
baseline of the event window (the 18 steps ending 13:10 .. 16:00 simulation time, 2-5 h ahead),
and its error against the base run is measured (mean and RMSE, kW).

Variants (d: the controller's disturbance estimate, the mean of its last 6 one-step errors):
- ``raw``: the twin's rollout under the base schedule, no correction;
- ``after``: rollout + d added after the rollout (the controller before this study);
- ``injected``: d added to every step's prediction before it is fed back through the output lags
  (an output disturbance inside the ARX model: the rollout's level moves by d / (1 - sum of the lag
  sensitivities));
- ``free_run``: rollout + the mean error over the last hour of a free run of the twin (its own
  output lags fed back, the measured inputs and weather) started ``FREE_RUN_STEPS`` before now: the
  multi-step level error measured directly;
- ``shape`` (not a method: a bound): rollout + the event window's true mean error, i.e. what no
  level correction can remove (the rollout's shape error).
Added after the first results (which showed that no correction made at entry removes the level
error that appears 2-5 h ahead), on the same days:
- ``held_at_begin``: ``injected`` with d as measured at the event's start (13:00), then held;
- ``recorrected``: the controller's twin baseline since this study: at every step, the rollout from
  the entry history with the current d fed back, its value for the next step kept (d from the base
  run's own one-step errors: in an event they also hold the twin's error in its response to the
  setpoints, so this is the bound of the method, measured in closed loop by bench_gp_mpc).
Also measured: the sum of the power model's sensitivities to its output lags at the entry row
(finite differences), the amplification 1 / (1 - sum) of a persistent one-step offset.

Added after those results (the rollout's shape error, which no level correction removes, followed
the steps of the lighting and plug schedule): ``HvacPower`` as the argument runs the same study on
the twins of the HVAC equipment's power (bench_gp_mpc's ensure_models with that target: the
controllable part; the facility minus HVAC power is the same in every run), errors against the base
run's HVAC power (equal to the facility's shed errors).

    python bench/study_gp_baseline.py [HvacPower]

Writes bench/results/gp_baseline_study.json (gp_baseline_study_hvac.json) and
runs/study_gp_baseline/<day>.csv (the base runs).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_gp_mpc import EXAMPLES, closed_loop, ensure_models, files
from bench.results_io import figure, write_results
from bridge.twin.persist import load_model
from controllers.gp_mpc import GpMpcController, load_mpc
from controllers.schedule import ScheduleController, load_schedule

FOLDER = ROOT / "runs" / "study_gp_baseline"
DAYS = {"july": ("2025-06-10", "2025-06-12", "2025-06-17", "2025-06-24", "2025-06-26", "2025-07-22", "2025-07-23"),
        "august": ("2025-08-19", "2025-08-21", "2025-08-26", "2025-08-28")}
FREE_RUN_STEPS = 24  # free run of the twin over the last 4 h before the baseline is made
LEVEL_STEPS = 6  # its error is averaged over the last hour
VARIANTS = ("raw", "after", "injected", "free_run", "held_at_begin", "recorrected", "shape")


def base_run(month: str, day: str) -> pd.DataFrame:
    """The day's base run (module docstring), recorded once in FOLDER."""
    path = FOLDER / f"{day}.csv"
    if not path.exists():
        FOLDER.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            campus, _ = files(Path(tmp), month, day, 100.0)
            run = closed_loop(campus, Path(tmp) / "base",
                              ScheduleController(load_schedule(EXAMPLES / "large_office_base_schedule.toml")))
        run.to_csv(path)
    return pd.read_csv(path, index_col=0, parse_dates=True)


def rollout(model, history: pd.DataFrame, future: pd.DataFrame, offset: float = 0.0) -> np.ndarray:
    """The twin's zero-variance rollout of ``future`` from ``history`` with ``offset`` fed back."""
    return model.forecast_scenarios(history, [future], with_std=False, offset=offset)[0][0]


def entry_baselines(month: str, day: str, power: str, twin: Path | None = None, run: pd.DataFrame | None = None
                    ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, float]]:
    """(each variant's baseline over the event window, the base run's power there, and the entry's d, free-run
    level and lag sensitivity) on ``day``, with the month's twin of bench_gp_mpc or the ``twin`` file; the day
    as ``run`` measured it (a base-schedule run holding the day; default its day-alone base run)."""
    run = base_run(month, day) if run is None else run
    controller = day_controller(month, day, power, twin)
    event = controller.config.events[0]
    power = controller.config.power
    model = controller.config.twin.models[power]
    entry = entry_time(controller, run, day)
    history, offsets = fed(controller, run, day, entry, event.end)
    future_times = [entry + controller._step * h for h in range(1, round((event.end - entry) / controller._step) + 1)]
    future = controller._base_future(future_times)
    during = np.array([event.contains(t) for t in future_times])
    truth = run.loc[pd.DatetimeIndex(future_times)[during], power].to_numpy()
    d = offsets[entry]
    raw = rollout(model, history, future)
    start = len(history) - 1 - FREE_RUN_STEPS
    free = rollout(model, history.iloc[:start + 1], history.iloc[start + 1:])
    level = float((history[power].to_numpy()[-LEVEL_STEPS:] - free[-LEVEL_STEPS:]).mean())
    baselines = {"raw": raw, "after": raw + d, "injected": rollout(model, history, future, d),
                 "free_run": raw + level}
    baselines["held_at_begin"] = rollout(model, history, future, offsets[pd.Timestamp(event.begin)])
    # at each step t, the rollout with the d measured at the step before (the decision that tracked t)
    baselines["recorrected"] = np.array([rollout(model, history, future.iloc[:h + 1], offsets[t - controller._step])[-1]
                                         for h, t in enumerate(future.index)])
    baselines["shape"] = raw + float((truth - raw[during]).mean())
    sensitivity = float(model.output_lag_sensitivity(model.next_row(history, future))[0])
    entry_figures = {"d_kw": d, "free_run_level_kw": level, "lag_sensitivity_sum": sensitivity}
    return {name: values[during] for name, values in baselines.items()}, truth, entry_figures


def day_controller(month: str, day: str, power: str, twin: Path | None = None) -> GpMpcController:
    """A GP-MPC controller of bench_gp_mpc's event on ``day`` (100 kW), with the month's twin or ``twin``."""
    with tempfile.TemporaryDirectory() as tmp:
        config = load_mpc(files(Path(tmp), month, day, 100.0)[1])
    twin = twin or ensure_models(power)[month]
    controller = GpMpcController(dataclasses.replace(config, twin=load_model(twin), power=power))
    controller.check(_ranges(controller))
    return controller


def entry_time(controller: GpMpcController, run: pd.DataFrame, day: str) -> pd.Timestamp:
    """The step of ``run`` at which the controller's event enters its horizon."""
    event, horizon = controller.config.events[0], controller.config.horizon
    return next(t for t in run.index[run.index > pd.Timestamp(day)] if t + dt.timedelta(minutes=10) * horizon > event.begin)


def fed(controller: GpMpcController, run: pd.DataFrame, day: str, entry: pd.Timestamp, until: dt.datetime
        ) -> tuple[pd.DataFrame, dict[pd.Timestamp, float]]:
    """The base run's outputs of ``day`` fed to ``controller`` up to ``until``: as its decisions before
    ``entry``, from there what ``decide`` does without optimising (the base schedule applied). Its own
    history rows up to ``entry`` (kept whole here) and its d (``_offset``) at each step fed."""
    times = list(run.index[run.index > pd.Timestamp(day)])
    full, offsets = [], {}
    for t in times:
        outputs = run.loc[t].to_dict()
        if t < entry:
            controller.decide(t.to_pydatetime(), outputs)
        else:
            controller._remember(t.to_pydatetime(), outputs)
            controller._last_inputs = controller._base_inputs(t.to_pydatetime())
        offsets[t] = controller._offset()
        if t <= entry:
            full.append(dict(controller._history[-1]))
        if t >= until:
            break
    return pd.DataFrame(full, index=pd.DatetimeIndex(times[:len(full)])), offsets


def study_day(month: str, day: str, power: str) -> dict[str, float]:
    baselines, truth, out = entry_baselines(month, day, power)
    for name, values in baselines.items():
        error = values - truth
        out[f"{name}_mean_error_kw"] = float(error.mean())
        out[f"{name}_rmse_kw"] = float(np.sqrt((error ** 2).mean()))
    return out


def _ranges(controller: GpMpcController):
    from controllers.base import InputRange

    return {item.tag: InputRange(item.tag, item.min, item.max) for item in controller.config.tagmap.inputs}


def main() -> None:
    power = sys.argv[1] if len(sys.argv) > 1 else "FacilityPower"
    ensure_models(power)
    load_before = os.getloadavg()
    results = {}
    for month, days in DAYS.items():
        for day in days:
            results[day] = study_day(month, day, power)
            print(day, {k: round(v, 2) for k, v in results[day].items()}, flush=True)
    figures = {}
    for day, values in results.items():
        for name, value in values.items():
            figures[f"{day}_{name}"] = figure(value, "kW" if name.endswith("kw") else "")
    for name in VARIANTS:
        errors = np.array([results[day][f"{name}_mean_error_kw"] for day in results])
        rmse = np.array([results[day][f"{name}_rmse_kw"] for day in results])
        figures[f"{name}_abs_mean_error_mean"] = figure(float(np.abs(errors).mean()), "kW, event-window mean error, |.| averaged over the 11 days")
        figures[f"{name}_rmse_mean"] = figure(float(rmse.mean()), "kW, event-window RMSE, averaged over the 11 days")
        figures[f"{name}_rmse_max"] = figure(float(rmse.max()), "kW, event-window RMSE, worst day")
    write_results("gp_baseline_study" + ("_hvac" if power == "HvacPower" else ""), figures,
                  f"Large Office, Chicago TMY3, {power} twins, validation days of the docstring (no event day); baseline made at 11:10 "
                  f"simulation time for the 13:10-16:00 window. Load average before {tuple(round(v, 2) for v in load_before)}.")


if __name__ == "__main__":
    main()
