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
analysis of bias rules (``analyse``), which adds a bias estimated only from the days before.

    PYTHONPATH=$PWD python -m bench.diagnose_twin_update --period val_jul --seed 0 [--refit]
    PYTHONPATH=$PWD python -m bench.diagnose_twin_update --analyse
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import pandas as pd

from bench.bench_twin_gp import GP, LAGS, ROOT, history
from bench.bench_twin_update import day_forecasts
from bridge.config import load_config
from bridge.twin.collect import excitation_for
from bridge.twin.features import feature_sets_for, reference_holidays
from bridge.twin.gp import GPModel

OUT = ROOT / "runs/diagnose_twin_update"
VALIDATION = {"val_jul": ((dt.date(2025, 6, 10), dt.date(2025, 7, 22)), "2025-07-01", "2025-07-21"),
              "val_mar": ((dt.date(2025, 2, 8), dt.date(2025, 3, 8)), "2025-03-01", "2025-03-07")}


def historian(period: str, seed: int) -> pd.DataFrame:
    (start, end), _, _ = VALIDATION[period]
    name = f"large_office_{start.strftime('%b%d').lower()}_{end.strftime('%b%d').lower()}_seed{seed}.db"
    return history(ROOT / "runs/bench_twin_update" / name, seed, start, end)


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
            f = day_forecasts(model, frame, day)
            for key in ("times", "actual", "mean", "std"):
                out.setdefault(f"{name}:{key}", []).append(getattr(f, key))
        print(f"{period} seed {seed} {day.date()} done", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(OUT / f"{period}_seed{seed}{tag}.npz",
             **{k: np.stack(v) for k, v in out.items()})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", choices=list(VALIDATION))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--windows", type=float, nargs="+", default=[21.0])
    parser.add_argument("--refit", action="store_true")
    parser.add_argument("--every-days", type=int, default=1, help="update every n-th validation day only")
    parser.add_argument("--tag", default="", help="suffix of the output file")
    parser.add_argument("--bias-hours", type=float, nargs="*", default=[], help="also updates with these bias hours")
    args = parser.parse_args()
    run(args.period, args.seed, args.windows, args.refit, args.every_days, args.tag, tuple(args.bias_hours))
