"""Offline study: an event baseline regressed on the building's own normal-operation history (issue 16).

The GP-MPC's twin baseline (the twin's base-schedule forecast made when the event enters the 2 h horizon,
held) is 15.2 kW RMSE over the event on average and 33.9 kW on the worst of the 11 validation days
(bench/study_gp_baseline.py, bench/results/gp_baseline_study.json); the utility "10 of 10" is 15-16 kW off.
Here: baselines made from the Large Office's own weekdays under its base schedule, as regression-based
customer baselines do (PJM's regression CBL option; ASHRAE Guideline 14 / LBNL TOWT; CalTRACK hourly).

Days. Only the 11 validation days of bench/study_gp_baseline.py (Jun 10, 12, 17, 24, 26; Jul 22, 23;
Aug 19, 21, 26, 28). bench_gp_mpc's test days (Jul 24, 29, 31, Aug 5, 7, 13) are never scored here and are
left out of every history (as a programme leaves out the days of earlier events), as is the base
schedule's holiday (Jul 4). Added after the first run (a defect of the history, not a tuning: its figures are in
docs/controllers.md): the days the EnergyPlus model itself runs as holidays (Site Day Type Index 8; its
RunPeriodControl:SpecialDays hold Memorial Day, May 26, which the base schedule file does not list) are
left out of the histories too; the candidates and the criterion are unchanged.

Data. History: one long base-schedule run of the Large Office, Apr 21 - Aug 31 (the bench's campus file,
tag map and weather, lockstep, the schedule controller over OPC UA as bench_gp_mpc's base runs), recorded
once in runs/study_regression_baseline/; of it, the N most recent eligible weekdays before the day, with
their measured facility power and outdoor temperature and humidity. The day itself: its day-alone base run
of bench/study_gp_baseline.py (what the GP-MPC bench's controller measures on that day, and the truth
every figure is scored against). Entry: 11:10 simulation time (12:10 building clock), the step at which
a 14-17 h (building clock) event enters the GP-MPC's 2 h horizon; what the day measured up to that step
(power, outdoor temperature and humidity) is known, and the weather after it is the EPW forecast
(``bridge.twin.weather.weather_series``, as the twin's). Scored: the 18 ten-minute steps of the event
(ending 13:10 .. 16:00 simulation time), baseline minus the day-alone base run's FacilityPower: mean error
and RMSE per day; over the days, mean RMSE, worst RMSE, mean |mean error|.

Candidates (written and committed before any figure was computed):
- ``a_x_of_y``: bridge/tracking/dr_baseline.py's "10 of 10", multiplicative day-of adjustment over the
  3 h ending 1 h before the event, capped at 20 % (the controller's ``x_of_y``, as it holds it through the
  event: made 1 h before, 12:00 simulation time); ``a_x_of_y_entry`` (information): the same made at
  entry, the adjustment over the 3 h ending at entry (the controller's provisional one);
- ``b_towt20``, ``b_towt30``: bridge/tracking/savings.py's ``TowtModel`` (hour-of-week indicators plus a
  piecewise-linear function of outdoor temperature, least squares), fitted on the hourly energy and mean
  temperature of every hour of the last 20 / 30 eligible weekdays, predicting the event's three hours
  from the forecast temperature (each 10-minute step takes its hour's mean power);
- ``c_tod20``, ``c_tod30``: one least-squares regression per 10-minute time of day on the last 20 / 30
  eligible weekdays: power at that time on [1, outdoor temperature at that time, its mean over the 6 h
  ending then, outdoor relative humidity at that time];
- ``d_adjusted``: the one of b_towt20, b_towt30, c_tod20, c_tod30 with the lowest mean RMSE, plus an
  additive day-of adjustment: the day's mean measured power minus the model's prediction over the 3 h
  ending at entry (uncapped). The same adjustment on the other three is reported as information
  (``d_<name>``), not a candidate.
Also reported (information): the long run's own day against the day-alone run (event-window RMSE, and mean
difference over the adjustment window): how far the history's state is from the day's.

Choice, fixed before any figure: a candidate (a_x_of_y, b_towt20, b_towt30, c_tod20, c_tod30, d_adjusted)
qualifies if its mean event-window RMSE over the 11 days is <= 8 kW and its worst day <= 15 kW (the twin
baseline: 15.2 / 33.9 kW). Of the qualifying ones, the lowest mean RMSE is adopted (within 0.2 kW of each
other: the first in that list). If none qualifies, nothing is adopted and the table is reported.

    nice -n 5 python bench/study_regression_baseline.py

Writes bench/results/dr_regression_baseline.json.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_gp_mpc import EVENT_SIM_HOURS, EXAMPLES, MONTHS, closed_loop
from bench.results_io import figure, write_results
from bench.study_gp_baseline import DAYS, base_run
from bridge.tracking.dr_baseline import regression_baseline, x_of_y_baseline
from bridge.tracking.savings import TowtModel, hourly_energy_kwh, hourly_mean
from bridge.twin.weather import weather_series
from controllers.schedule import ScheduleController, load_schedule

FOLDER = ROOT / "runs" / "study_regression_baseline"
LONG_RUN = ("04-21", "08-31")
POWER, TEMP, HUMIDITY = "FacilityPower", "OutdoorTemp", "OutdoorHumidity"
WEATHER = {TEMP: "Site Outdoor Air Drybulb Temperature", HUMIDITY: "Site Outdoor Air Relative Humidity"}
STEP = pd.Timedelta(minutes=10)
ENTRY = pd.Timedelta(hours=EVENT_SIM_HOURS[0]) - pd.Timedelta(hours=2) + STEP  # 11:10 simulation time
ADJUST = pd.Timedelta(hours=3)  # additive day-of adjustment window, ending at entry
MEAN_T = pd.Timedelta(hours=6)  # the temperature mean of c_tod
TEST_DAYS = tuple(pd.Timestamp(d).date() for days in MONTHS.values() for d in days)
SCHEDULE = load_schedule(EXAMPLES / "large_office_base_schedule.toml")
CANDIDATES = ("a_x_of_y", "b_towt20", "b_towt30", "c_tod20", "c_tod30", "d_adjusted")
MODELS = ("b_towt20", "b_towt30", "c_tod20", "c_tod30")  # the regressions, each also with the day-of adjustment


def long_base_run() -> pd.DataFrame:
    """The Large Office under its base schedule from LONG_RUN[0] to LONG_RUN[1] (module docstring), recorded once."""
    path = FOLDER / f"base_{LONG_RUN[0]}_{LONG_RUN[1]}.csv"
    if not path.exists():
        FOLDER.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            text = (ROOT / "sims/large_office.toml").read_text().replace('"../tagmaps/', f'"{ROOT}/tagmaps/')
            text = re.sub(r'(?m)^start = ".*"', f'start = "{LONG_RUN[0]}"', text)
            campus = Path(tmp) / "large_office_long.toml"
            campus.write_text(re.sub(r'(?m)^end = ".*"', f'end = "{LONG_RUN[1]}"', text))
            run = closed_loop(campus, Path(tmp) / "base", ScheduleController(SCHEDULE))
        run.to_csv(path)
    return pd.read_csv(path, index_col=0, parse_dates=True)


def model_holidays(run: pd.DataFrame) -> set[dt.date]:
    """The days ``run`` went through as holidays (EnergyPlus's Site Day Type Index 8: the model's own
    RunPeriodControl:SpecialDays, which the base schedule file does not list but Jul 4)."""
    return {t.date() for t in (run.index[run["DayType"] == 8] - pd.Timedelta(minutes=1)).normalize()}


def eligible_days(run: pd.DataFrame, day: pd.Timestamp, n: int) -> list[pd.Timestamp]:
    """The ``n`` most recent weekdays before ``day`` fully in ``run``, not holidays (the schedule's or the
    model's) nor test days."""
    counts = run.index.normalize().value_counts()
    holidays = model_holidays(run)
    days = []
    for back in range(1, 120):
        other = day - pd.Timedelta(days=back)
        if other.day_of_week < 5 and not SCHEDULE.is_holiday(other.date()) and other.date() not in TEST_DAYS \
                and other.date() not in holidays and counts.get(other, 0) >= 143:
            days.append(other)
        if len(days) == n:
            return days
    raise ValueError(f"{day.date()}: only {len(days)} eligible days in the long run")


def of_days(run: pd.DataFrame, days: list[pd.Timestamp]) -> pd.DataFrame:
    """The rows of ``run`` whose intervals lie in ``days`` (ending after 00:00 up to 24:00)."""
    keep = np.zeros(len(run), bool)
    for day in days:
        keep |= (run.index > day) & (run.index <= day + pd.Timedelta(days=1))
    return run[keep]


def day_weather(day: pd.Timestamp, measured: pd.DataFrame, entry: pd.Timestamp) -> pd.DataFrame:
    """Outdoor temperature and humidity at 10-minute steps from 6 h before ``day`` to its end: measured up to
    ``entry``, the EPW forecast after it (the twin's forecast)."""
    times = pd.date_range(day - MEAN_T + STEP, day + pd.Timedelta(days=1), freq=STEP)
    forecast = weather_series(_epw(), times, run_start=day.date())
    out = pd.DataFrame({tag: forecast[variable].to_numpy() for tag, variable in WEATHER.items()}, index=times)
    known = measured.index[measured.index <= entry].intersection(times)
    out.loc[known, list(WEATHER)] = measured.loc[known, list(WEATHER)].to_numpy()
    return out


def _epw() -> Path:
    from bridge.config import load_config

    return load_config(ROOT / "sims/large_office.toml").buildings[0].weather


def regression_inputs(day: pd.Timestamp, long: pd.DataFrame, alone: pd.DataFrame
                      ) -> tuple[pd.DataFrame, pd.DataFrame, list[dt.date]]:
    """dr_baseline.regression_baseline's (measured, forecast, excluded days) for ``day``: ``long`` before the day
    and ``alone`` (the day's own run) up to entry; the day's weather (``day_weather``); the test days and the
    schedule's and the model's holidays (``eligible_days``'s rule)."""
    entry = day + ENTRY
    rows = pd.concat([long[long.index <= day], alone[(alone.index > day) & (alone.index <= entry)]])
    names = {POWER: "power", TEMP: "temperature", HUMIDITY: "humidity"}
    measured = rows[list(names)].rename(columns=names)
    forecast = day_weather(day, alone, entry).rename(columns=names)
    excluded = list(TEST_DAYS) + sorted(model_holidays(long))
    excluded += [d.date() for d in pd.date_range(day - pd.Timedelta(days=120), day) if SCHEDULE.is_holiday(d.date())]
    return measured, forecast, excluded


def tod_baseline(day: pd.Timestamp, long: pd.DataFrame, alone: pd.DataFrame, n: int,
                 margin: pd.Timedelta | None = None):
    """c_tod with the day-of adjustment (d_c_tod<n>): dr_baseline's ``regression_baseline`` on the ``n`` most
    recent eligible weekdays of ``long``, made at entry (the library's Baseline; ``margin`` around the event)."""
    begin, end = (day + pd.Timedelta(hours=h) for h in EVENT_SIM_HOURS)
    measured, forecast, excluded = regression_inputs(day, long, alone)
    return regression_baseline(measured, forecast, begin, end, day + ENTRY, days=n, excluded=excluded,
                               adjustment_hours=ADJUST / pd.Timedelta(hours=1), lookback_days=120,
                               margin=pd.Timedelta(0) if margin is None else margin)


def towt_predict(history: pd.DataFrame, weather: pd.DataFrame, times: pd.DatetimeIndex) -> pd.Series:
    """b_towt: TowtModel on the history's hours, its hourly mean power (kW) at each of ``times``' hours."""
    model = TowtModel().fit(hourly_energy_kwh(history, POWER), hourly_mean(history[TEMP]))
    hourly = model.predict(hourly_mean(weather[TEMP]))  # kWh per hour = mean kW, labelled by hour start
    return pd.Series(hourly.reindex((times - pd.Timedelta(microseconds=1)).floor("h")).to_numpy(), index=times)


def model_baselines(day: pd.Timestamp, long: pd.DataFrame, alone: pd.DataFrame, names: tuple[str, ...] = MODELS
                    ) -> tuple[dict[str, pd.Series], dict[str, float]]:
    """The ``names`` of b_towt20/30, c_tod20/30 and each with the day-of adjustment (``d_<name>``), kW over the
    adjustment window and the event of ``day``, from ``long``'s history and what ``alone`` measured on the day
    up to entry; and the adjustments (``d_<name>_offset_kw``)."""
    begin, end = (day + pd.Timedelta(hours=h) for h in EVENT_SIM_HOURS)
    entry = day + ENTRY
    event = pd.date_range(begin + STEP, end, freq=STEP)
    adjust = pd.date_range(entry - ADJUST + STEP, entry, freq=STEP)
    measured = alone[alone.index <= entry]
    weather = day_weather(day, alone, entry)
    made, out = {}, {}
    both = adjust.append(event)
    for name in names:
        if name.startswith("b_towt"):
            history = of_days(long, eligible_days(long, day, int(name[-2:])))
            made[name] = towt_predict(history, weather, both)
            offset = float((measured.loc[adjust, POWER] - made[name].loc[adjust]).mean())
            made[f"d_{name}"] = made[name] + offset
        else:  # c_tod: the library's regression baseline (its day-of adjustment removed for c_tod itself)
            baseline = tod_baseline(day, long, alone, int(name[-2:]))
            offset = baseline.adjustment.offset_kw
            made[name], made[f"d_{name}"] = baseline.kw - offset, baseline.kw
        out[f"d_{name}_offset_kw"] = offset
    return made, out


def study_day(day: str, long: pd.DataFrame, month: str) -> dict[str, float]:
    day = pd.Timestamp(day)
    alone = base_run(month, str(day.date()))
    begin, end = (day + pd.Timedelta(hours=h) for h in EVENT_SIM_HOURS)
    entry = day + ENTRY
    event = pd.date_range(begin + STEP, end, freq=STEP)
    adjust = pd.date_range(entry - ADJUST + STEP, entry, freq=STEP)
    truth = alone.loc[event, POWER]
    measured = alone[alone.index <= entry]
    made = {}
    # a: the utility baseline on the history + the day's measured power, up to 12:00 (held) or entry
    before = long.loc[long.index <= day, POWER]
    excluded = list(TEST_DAYS) + sorted(model_holidays(long))  # and the schedule's holidays:
    excluded += [d.date() for d in pd.date_range(day - pd.Timedelta(days=60), day) if SCHEDULE.is_holiday(d.date())]
    settle = begin - pd.Timedelta(hours=1)
    made["a_x_of_y"] = x_of_y_baseline(pd.concat([before, alone.loc[alone.index <= settle, POWER]]), begin, end,
                                       excluded=excluded).kw
    made["a_x_of_y_entry"] = x_of_y_baseline(pd.concat([before, measured[POWER]]), begin, end, excluded=excluded,
                                             adjustment_gap_hours=(begin - entry) / pd.Timedelta(hours=1)).kw
    models, out = model_baselines(day, long, alone)
    made.update(models)
    same = long.loc[long.index.intersection(event), POWER]
    out["long_vs_alone_event_rmse_kw"] = float(np.sqrt(((same - truth.loc[same.index]) ** 2).mean()))
    out["long_vs_alone_adjust_mean_kw"] = float((long.loc[adjust, POWER] - alone.loc[adjust, POWER]).mean())
    for name, values in made.items():
        error = values.reindex(event).to_numpy(float) - truth.to_numpy(float)
        out[f"{name}_mean_error_kw"] = float(error.mean())
        out[f"{name}_rmse_kw"] = float(np.sqrt((error ** 2).mean()))
    return out


def main() -> None:
    long = long_base_run()
    load_before = os.getloadavg()
    results = {}
    for month, days in DAYS.items():
        for day in days:
            results[day] = study_day(day, long, month)
            print(day, {k: round(v, 1) for k, v in results[day].items()}, flush=True)
    names = sorted({k[:-len("_rmse_kw")] for values in results.values() for k in values if k.endswith("_rmse_kw")
                    and not k.startswith("long")})
    rmse = {name: np.array([results[day][f"{name}_rmse_kw"] for day in results]) for name in names}
    best = min(("b_towt20", "b_towt30", "c_tod20", "c_tod30"), key=lambda name: rmse[name].mean())
    rmse["d_adjusted"] = rmse[f"d_{best}"]
    figures = {}
    for day, values in results.items():
        for name, value in values.items():
            figures[f"{day}_{name}"] = figure(value, "kW")
    for name, values in rmse.items():
        errors = np.array([results[day][f"{(f'd_{best}' if name == 'd_adjusted' else name)}_mean_error_kw"] for day in results])
        target = name in CANDIDATES
        figures[f"{name}_rmse_mean"] = figure(values.mean(), "kW, event-window RMSE, mean of the 11 validation days",
                                              "<= 8" if target else "")
        figures[f"{name}_rmse_max"] = figure(values.max(), "kW, event-window RMSE, worst validation day",
                                             "<= 15" if target else "")
        figures[f"{name}_abs_mean_error_mean"] = figure(np.abs(errors).mean(), "kW, |event mean error|, mean of the days")
    qualifying = [name for name in CANDIDATES if rmse[name].mean() <= 8 and rmse[name].max() <= 15]
    chosen = None
    if qualifying:
        low = min(rmse[name].mean() for name in qualifying)
        chosen = next(name for name in qualifying if rmse[name].mean() <= low + 0.2)
    print("d_adjusted =", f"d_{best}", "qualifying:", qualifying, "chosen:", chosen)
    figures["qualifying_candidates"] = figure(len(qualifying), "candidates meeting mean <= 8 kW and worst <= 15 kW")
    write_results("dr_regression_baseline", figures,
                  f"Large Office, Chicago TMY3, base schedule; the 11 validation days of bench/study_gp_baseline.py; "
                  f"history from one base run {LONG_RUN[0]} .. {LONG_RUN[1]} 2025; baselines made at 11:10 simulation time "
                  f"(a_x_of_y: 12:00) for the 13:10-16:00 window. d_adjusted = d_{best}; qualifying: {qualifying}; "
                  f"chosen: {chosen}. Load average before {tuple(round(v, 2) for v in load_before)}.")


if __name__ == "__main__":
    main()
