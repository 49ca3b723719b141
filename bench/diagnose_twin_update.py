"""Diagnosis of daily GP twin updates on validation periods only (no test week of
bench/bench_twin_update.py): why the update of its first version hurt or barely helped, and the data
for choosing the revised one (docs/twin.md, "Updates").

Validation periods (they overlap no test week): ``val_jul`` train Jun 10-30, daily updates Jul 1-21
(historian Jun 10 - Jul 22); ``val_mar`` train Feb 8-28, daily updates Mar 1-7 (historian
Feb 8 - Mar 8). Same building, excitation, features and GP settings as bench_twin_update. Each
validation day at 00:00, 12-hour forecasts from every hour of the day by: the static model, the model
re-conditioned on the last ``--window`` days (hyperparameters kept, no bias), and (``--refit``) the
model refitted on that window. Writes runs/diagnose_twin_update/<period>_seed<seed>.npz (per variant:
times, actual, mean, std of every day's forecasts, one block of 24 origins per day) for the offline
analysis of bias rules (each day's bias estimated only from the days before it; results and the
choices made from them in docs/twin.md, "Daily updates, revision: diagnosis").

    PYTHONPATH=$PWD python -m bench.diagnose_twin_update --period val_jul --seed 0 --windows 14 21
    PYTHONPATH=$PWD python -m bench.diagnose_twin_update --period val_mar --seed 0 --bias-hours 168 --tag _bias
    PYTHONPATH=$PWD python -m bench.diagnose_twin_update --period val_jul --seed 0 --windows 27 --refit \
        --every-days 3 --tag _w27refit
    PYTHONPATH=$PWD python -m bench.diagnose_twin_update --analyse
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import pandas as pd

from bench.bench_twin_gp import GP, LAGS, ROOT, history
from bench.bench_twin_update import day_forecasts, historian_path
from bridge.config import load_config
from bridge.twin.collect import excitation_for
from bridge.twin.features import feature_sets_for, reference_holidays
from bridge.twin.gp import GPModel, shrunk_mean

OUT = ROOT / "runs/diagnose_twin_update"
VALIDATION = {"val_jul": ((dt.date(2025, 6, 10), dt.date(2025, 7, 22)), "2025-07-01", "2025-07-21"),
              "val_mar": ((dt.date(2025, 2, 8), dt.date(2025, 3, 8)), "2025-03-01", "2025-03-07")}


def historian(period: str, seed: int) -> pd.DataFrame:
    (start, end), _, _ = VALIDATION[period]
    return history(historian_path(start, end, seed), seed, start, end)


def run(period: str, seed: int, windows: list[float], refit: bool, every_days: int = 1, tag: str = "",
        bias_hours: tuple[float, ...] = ()) -> None:
    config = load_config(ROOT / "sims/large_office.toml")
    power_set, = feature_sets_for(config.buildings[0].tagmap, ["FacilityPower"], **LAGS)
    frame = historian(period, seed)
    _, first, last = VALIDATION[period]
    static = GPModel(power_set, **GP, bias_hours=0).fit(frame[frame.index < pd.Timestamp(first)])
    out = {}
    for day in pd.date_range(first, last, freq="D")[::every_days]:
        models = {"static": static}
        for days in windows:
            models[f"recond{days:g}"] = static.set_params(update_days=days).update(frame, day)
        static.set_params(update_days=21.0)
        for hours in bias_hours:
            started = time.perf_counter()
            models[f"recond21_bias{hours:g}"] = static.set_params(bias_hours=hours).update(frame, day)
            print(f"  bias {hours:g} h: {models[f'recond21_bias{hours:g}'].bias_:+.1f} kW, "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
        static.set_params(bias_hours=0.0)
        if refit:
            started = time.perf_counter()
            models["refit21"] = static.update(frame, day, refit=True)
            print(f"  refit {time.perf_counter() - started:.1f} s", flush=True)
        for name, model in models.items():
            keep_forecasts(out, name, day_forecasts(model, frame, day))
        print(f"{period} seed {seed} {day.date()} done", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(OUT / f"{period}_seed{seed}{tag}.npz", **stacked(out))


def keep_forecasts(store: dict[str, list], name: str, forecasts) -> None:
    """Append one day's ``forecasts`` (times, actual, mean, std) to ``store`` under ``<name>:<field>``."""
    for key in ("times", "actual", "mean", "std"):
        store.setdefault(f"{name}:{key}", []).append(getattr(forecasts, key))


def stacked(store: dict[str, list]) -> dict[str, np.ndarray]:
    """``store``'s lists, each stacked into one array (a day per row), as np.savez takes them."""
    return {k: np.stack(v) for k, v in store.items()}


def occupied_mask(times: np.ndarray, schedule) -> np.ndarray:
    """Whether each forecast point (end of its 10-minute step) is in the HVAC operating hours."""
    middles = pd.DatetimeIndex(times.ravel()) - pd.Timedelta(minutes=5)
    holidays = reference_holidays(2025)
    return np.array([schedule.occupied(t, holidays) for t in middles]).reshape(times.shape)


def rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def day_bias(errors: np.ndarray, times: np.ndarray, weights: np.ndarray, day: int, days: int, shrink: bool) -> float:
    """Bias (measured - forecast) for validation day ``day`` from the ``days`` days before it: the
    weighted mean error of each earlier day's forecast points before ``day`` starts, averaged over
    days, shrunk by its standard error if ``shrink``."""
    start = times[day, 0, 0].astype("datetime64[D]")
    means = []
    for j in range(max(0, day - days), day):
        keep = (times[j] < start) & (weights[j] > 0)
        if keep.any():
            means.append(-np.sum(weights[j][keep] * errors[j][keep]) / np.sum(weights[j][keep]))
    if not means:
        return 0.0
    return shrunk_mean(np.array(means)) if shrink else float(np.mean(means))


def analyse() -> None:
    """Print, per stored run: RMSE (occupied hours, all), coverage, the daily mean error in occupied
    hours and its lag-1 correlation, occupied RMSE at 1 / 6 / 12 h lead; and the occupied RMSE of the
    21-day re-conditioned model with each bias rule, per run and pooled."""
    schedule = excitation_for(load_config(ROOT / "sims/large_office.toml").buildings[0])
    rules = {"none": (0, "occupied", False), "all hours, 1 day (first version)": (1, "all", False)}
    for days in (1, 3, 7):
        rules[f"occupied, {days} d"] = (days, "occupied", False)
        rules[f"occupied, {days} d, shrunk"] = (days, "occupied", True)
    for days in (3, 7, 14):
        rules[f"precision-weighted, {days} d, shrunk"] = (days, "precision", True)
    pooled = {name: [] for name in rules}
    for path in sorted(OUT.glob("*.npz")):
        data = np.load(path)
        variants = sorted({key.split(":")[0] for key in data.files})
        occupied = occupied_mask(data[f"{variants[0]}:times"], schedule)
        print(path.name)
        for variant in variants:
            errors = data[f"{variant}:mean"] - data[f"{variant}:actual"]
            covered = np.mean(np.abs(errors) <= 1.96 * data[f"{variant}:std"])
            daily = np.array([errors[i][occupied[i]].mean() for i in range(len(errors))])
            lag1 = np.corrcoef(daily[1:], daily[:-1])[0, 1]
            leads = [rms(errors[:, :, h][occupied[:, :, h]]) for h in (5, 35, 71)]
            print(f"  {variant:18s} occupied {rms(errors[occupied]):5.1f} all {rms(errors):5.1f} kW, coverage "
                  f"{covered:.3f}; daily occupied mean error rms {rms(daily):4.1f} kW, lag-1 r {lag1:+.2f}; "
                  f"occupied at 1/6/12 h {leads[0]:.1f}/{leads[1]:.1f}/{leads[2]:.1f} kW")
        if "recond21:mean" not in data.files or len(data["recond21:mean"]) < 3:
            continue
        errors, times = data["recond21:mean"] - data["recond21:actual"], data["recond21:times"]
        occupied = occupied_mask(times, schedule)
        for name, (days, points, shrink) in rules.items():
            weights = {"occupied": occupied.astype(float), "all": np.ones_like(errors),
                       "precision": 1.0 / data["recond21:std"] ** 2}[points]
            corrected = [errors[i] + day_bias(errors, times, weights, i, days, shrink) * (days > 0)
                         for i in range(1, len(errors))]
            pooled[name].append(np.concatenate([c[occupied[i + 1]] for i, c in enumerate(corrected)]))
    print("bias rules on the 21-day re-conditioned model, occupied RMSE pooled over runs (days 2 on):")
    for name, parts in pooled.items():
        if parts:
            print(f"  {name:38s} {rms(np.concatenate(parts)):6.2f} kW")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", choices=list(VALIDATION))
    parser.add_argument("--analyse", action="store_true", help="print the analysis of the stored runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--windows", type=float, nargs="+", default=[21.0])
    parser.add_argument("--refit", action="store_true")
    parser.add_argument("--every-days", type=int, default=1, help="update every n-th validation day only")
    parser.add_argument("--tag", default="", help="suffix of the output file")
    parser.add_argument("--bias-hours", type=float, nargs="*", default=[], help="also updates with these bias hours")
    args = parser.parse_args()
    if args.analyse:
        analyse()
    else:
        run(args.period, args.seed, args.windows, args.refit, args.every_days, args.tag, tuple(args.bias_hours))
