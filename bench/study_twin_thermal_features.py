"""Study: features for the building's thermal mass and HVAC start-up in the 12-hour GP power twin
(issue 14, item 4; docs/twin.md, "Thermal-mass features"), on VALIDATION periods only.

What the power twin's feature set has now (bench_twin_update's, ``feature_sets_for(tagmap,
["FacilityPower"], output_lags=4, input_lags=1, disturbance_lags=1)``, no known load), 21 columns:
(sin, cos) of the time of day, workday and Saturday flags (DOE reference holidays), the target's daily
profile (median per day type and 10-minute slot), outdoor dry bulb and relative humidity at t and
t - 10 min, the four setpoints (cooling, heating, supply air, chilled water) at t and t - 10 min, and
y(t-1..t-4). Nothing looks back further than 40 minutes: no feature carries the heat stored in the
building over the night or the afternoon. Solar radiation is not in the historian (the tag map has no
solar tag); global horizontal irradiance from the EPW as a disturbance was tried before and ignored by
the likelihood (docs/twin.md, fifth round), so it is not a candidate here. "Hours since HVAC start"
is a function of the time of day and the day type, which the features already give (the RBF on
(sin, cos) and the day flags): not a candidate.

Candidates (columns derived from the historian's outdoor dry bulb ``OutdoorTemp`` on its full length,
added to the disturbances, so each enters at lags 0 and 1 like the outdoor temperature; rows whose
window reaches before the historian's first row are left out of training, as any lag):

- ``mean3``:  running mean of the outdoor dry bulb over the past 3 h (18 rows, t included);
- ``mean6``:  the same over 6 h (36 rows);
- ``mean24``: the same over 24 h (144 rows);
- ``night``:  mean outdoor dry bulb of the last complete night, 22:00-06:00 ``SimTime`` (rows stamped
  22:10 .. 06:00), the one ending at the latest 06:00 at or before t (the start-up's pre-cooling load);
- ``cdh``:    cooling degree-hours of today so far, sum of max(T - 18.3 degC, 0) x 1/6 h over the rows
  of the day up to t, its own step included (K h);
- ``means``:  mean3, mean6 and mean24 together.

``base`` is the current feature set (the reference; it reproduces docs/twin.md's val_jul
re-conditioned 42.0 / 45.9 kW if the historians are the same).

Protocol (that of bench/diagnose_twin_update.py and diagnose_twin_known_load.py): same building,
excitation, GP settings (``bench_twin_gp.GP``), 4 output lags, 21-day window, hyperparameters kept, no
bias; static model fitted on the training days, each validation day at 00:00 re-conditioned on the 21
days before it (``static.update``), 12-hour forecasts from every hour of the day. Periods:

- ``val_jul``: train Jun 10-30, updates Jul 1-21 (diagnose_twin_update), seeds 0 and 1;
- ``val_mar``: train Feb 8-28, updates Mar 1-7, seed 0;
- ``val_sep``: train Aug 11-31, updates Sep 1-14 (historian Aug 11 - Sep 15), seed 0; new here, an
  autumn period before bench_twin_update's sep test weeks (Sep 22 - Oct 5; Sep 1-21 is that period's
  training data, never its test data). Run only for candidates that pass on val_jul (CPU).

No test week of bench_twin_update.py (jan Jan 23 - Feb 5, sep Sep 22 - Oct 5, jul Jul 22 - Aug 4) is
used for any choice.

**Adoption criterion (fixed before any figure is computed):** a candidate is adopted if, with daily
updates, its occupied-hours 12-hour RMSE is at least 10 % lower than ``base``'s on val_jul for seed 0
AND seed 1, it does not worsen val_mar seed 0 by more than 1 kW nor val_sep seed 0 by more than 1 kW,
and its coverage (all points, 95 % band) is within 0.90-0.98 on every validation run. Among several
that pass: the largest mean reduction on val_jul (seeds 0, 1); within 1 kW of each other, the one with
fewer columns. If one is adopted it becomes an option of the feature set and bench_twin_update runs
once with it on the test weeks (seeds 0, 1, 2) under a new results name.

Writes runs/study_twin_thermal_features/<period>_seed<seed>.npz (per variant: times, actual, mean,
std of the re-conditioned model's forecasts, one block of 24 origins per day); ``--analyse`` prints
occupied RMSE, overall RMSE, coverage, occupied RMSE by hour of day (worst hours) and the criterion.

    PYTHONPATH=$PWD nice -n 5 python -m bench.study_twin_thermal_features --period val_jul --seed 0
    PYTHONPATH=$PWD python -m bench.study_twin_thermal_features --analyse
    PYTHONPATH=$PWD python -m bench.study_twin_thermal_features --length-scales --period val_jul --seed 0 \
        --variants base mean24 night cdh

Results (docs/twin.md, "Thermal-mass features"): no candidate passed; val_sep was therefore not run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import time

import numpy as np
import pandas as pd

from bench.bench_twin_gp import GP, LAGS, ROOT, history
from bench.bench_twin_update import day_forecasts, historian_path
from bench.diagnose_twin_update import VALIDATION, keep_forecasts, occupied_mask, rms, stacked
from bridge.config import load_config
from bridge.twin.collect import excitation_for
from bridge.twin.features import feature_sets_for
from bridge.twin.gp import GPModel

OUT = ROOT / "runs/study_twin_thermal_features"
PERIODS = {**VALIDATION, "val_sep": ((dt.date(2025, 8, 11), dt.date(2025, 9, 15)), "2025-09-01", "2025-09-14")}
TEMPERATURE = "OutdoorTemp"
CDH_BASE = 18.3  # degC (65 degF, the usual degree-day base)
STEPS_PER_HOUR = 6
VARIANTS = {"base": (), "mean3": ("mean3",), "mean6": ("mean6",), "mean24": ("mean24",), "night": ("night",),
            "cdh": ("cdh",), "means": ("mean3", "mean6", "mean24")}


def running_mean(temperature: pd.Series, hours: int) -> pd.Series:
    """Mean over the past ``hours`` (the row's own step included); NaN until the window is full."""
    rows = hours * STEPS_PER_HOUR
    return temperature.rolling(rows, min_periods=rows).mean()


def last_night_mean(temperature: pd.Series) -> pd.Series:
    """Mean of the rows stamped 22:10 .. 06:00 of the last night ending at or before each row's time."""
    middle = temperature.index - pd.Timedelta(minutes=5)
    night_of = (middle + pd.Timedelta(hours=2)).normalize()  # 22:00-06:00 belongs to the next date
    in_night = (middle + pd.Timedelta(hours=2)).hour < 8
    means = temperature[in_night].groupby(night_of[in_night]).mean()
    complete = temperature[in_night].groupby(night_of[in_night]).size() == 8 * STEPS_PER_HOUR
    means = means[complete]
    # the night of date D ends at D 06:00: rows stamped after 06:00 of D use it, earlier ones D - 1's
    ended = (temperature.index - pd.Timedelta(hours=6)).normalize()
    return pd.Series(means.reindex(ended).to_numpy(), index=temperature.index)


def degree_hours_today(temperature: pd.Series) -> pd.Series:
    """Cooling degree-hours (base ``CDH_BASE``) of the day so far, the row's own step included."""
    day = (temperature.index - pd.Timedelta(minutes=5)).normalize()
    excess = np.maximum(temperature - CDH_BASE, 0.0) / STEPS_PER_HOUR
    return excess.groupby(day).cumsum()


def derived(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every candidate column added."""
    temperature = frame[TEMPERATURE]
    return frame.assign(mean3=running_mean(temperature, 3), mean6=running_mean(temperature, 6),
                        mean24=running_mean(temperature, 24), night=last_night_mean(temperature),
                        cdh=degree_hours_today(temperature))


def run(period: str, seed: int, variants: list[str]) -> None:
    tagmap = load_config(ROOT / "sims/large_office.toml").buildings[0].tagmap
    (start, end), first, last = PERIODS[period]
    frame = derived(history(historian_path(start, end, seed), seed, start, end))
    path = OUT / f"{period}_seed{seed}.npz"
    out = dict(np.load(path)) if path.exists() else {}
    for variant in variants:
        base, = feature_sets_for(tagmap, ["FacilityPower"], **LAGS)
        power_set = dataclasses.replace(base, disturbances=base.disturbances + VARIANTS[variant])
        started = time.perf_counter()
        static = GPModel(power_set, **GP, bias_hours=0).fit(frame[frame.index < pd.Timestamp(first)])
        parts: dict[str, list] = {}
        for day in pd.date_range(first, last, freq="D"):
            keep_forecasts(parts, variant, day_forecasts(static.update(frame, day), frame, day))
        out.update(stacked(parts))
        print(f"{period} seed {seed} {variant}: {time.perf_counter() - started:.0f} s, load {os.getloadavg()}", flush=True)
        OUT.mkdir(parents=True, exist_ok=True)
        np.savez(path, **out)


def length_scales(period: str, seed: int, variants: list[str]) -> None:
    """Print each candidate column's range on the training days and on the validation days (share of
    validation rows above the training maximum), and the fitted ARD length scales of each variant's
    static model (no calibration; 1000 is the bound: the RBF ignores that column)."""
    tagmap = load_config(ROOT / "sims/large_office.toml").buildings[0].tagmap
    (start, end), first, last = PERIODS[period]
    frame = derived(history(historian_path(start, end, seed), seed, start, end))
    train = frame[frame.index < pd.Timestamp(first)]
    days = frame[(frame.index >= pd.Timestamp(first)) & (frame.index <= pd.Timestamp(last) + pd.Timedelta(days=1))]
    for column in (TEMPERATURE, "mean3", "mean6", "mean24", "night", "cdh"):
        print(f"{column}: training {train[column].min():.1f}..{train[column].max():.1f}, validation "
              f"{days[column].min():.1f}..{days[column].max():.1f}, above the training maximum "
              f"{np.mean(days[column] > train[column].max()):.2f}")
    base, = feature_sets_for(tagmap, ["FacilityPower"], **LAGS)
    for variant in variants:
        power_set = dataclasses.replace(base, disturbances=base.disturbances + VARIANTS[variant])
        model = GPModel(power_set, **GP, bias_hours=0, calibrate=False).fit(train)
        scales = np.exp(model.kernel_.theta[1:len(power_set.columns) + 1])
        print(f"{variant}: " + " ".join(f"{c}={v:.1f}" for c, v in zip(power_set.columns, scales)))


def analyse() -> None:
    """Print every stored run's figures per variant and the adoption criterion."""
    schedule = excitation_for(load_config(ROOT / "sims/large_office.toml").buildings[0])
    table: dict[tuple[str, str], tuple[float, float]] = {}
    for path in sorted(OUT.glob("*.npz")):
        data = np.load(path)
        print(path.stem)
        for variant in [v for v in VARIANTS if f"{v}:mean" in data.files]:
            times, actual, mean, std = (data[f"{variant}:{k}"] for k in ("times", "actual", "mean", "std"))
            errors = mean - actual
            occupied = occupied_mask(times, schedule)
            hours = (pd.DatetimeIndex(times.ravel()) - pd.Timedelta(minutes=5)).hour.to_numpy().reshape(times.shape)
            by_hour = np.array([rms(errors[occupied & (hours == h)]) if (occupied & (hours == h)).any() else 0.0
                                for h in range(24)])
            coverage = float(np.mean(np.abs(errors) <= 1.96 * std))
            table[(path.stem, variant)] = (rms(errors[occupied]), coverage)
            print(f"  {variant:7s} occupied {rms(errors[occupied]):5.1f}  all {rms(errors):5.1f} kW  coverage {coverage:.3f}"
                  "  worst hours " + ", ".join(f"{h:02d} h {by_hour[h]:.0f}" for h in np.argsort(by_hour)[::-1][:4]))
    print("criterion (occupied RMSE change against base; pass = >= 10 % lower on val_jul seeds 0 and 1, "
          "<= +1 kW on val_mar / val_sep seed 0, coverage 0.90-0.98 everywhere):")
    for variant in [v for v in VARIANTS if v != "base"]:
        changes, ok = [], True
        for run_name in ("val_jul_seed0", "val_jul_seed1", "val_mar_seed0", "val_sep_seed0"):
            if (run_name, variant) not in table or (run_name, "base") not in table:
                changes.append(f"{run_name} not run")
                ok = False
                continue
            (rmse, coverage), (reference, _) = table[(run_name, variant)], table[(run_name, "base")]
            change = rmse / reference - 1 if run_name.startswith("val_jul") else rmse - reference
            ok &= (change <= -0.10 if run_name.startswith("val_jul") else change <= 1.0) and 0.90 <= coverage <= 0.98
            changes.append(f"{run_name} {change:+.1%}" if run_name.startswith("val_jul") else f"{run_name} {change:+.1f} kW")
        print(f"  {variant:7s} {'PASS' if ok else 'fail'}: " + ", ".join(changes))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", choices=list(PERIODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--analyse", action="store_true")
    parser.add_argument("--length-scales", action="store_true", help="print column ranges and fitted length scales")
    args = parser.parse_args()
    if args.analyse:
        analyse()
    elif args.length_scales:
        length_scales(args.period, args.seed, args.variants)
    else:
        run(args.period, args.seed, args.variants)
