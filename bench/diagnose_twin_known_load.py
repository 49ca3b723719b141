"""Where the 12-hour occupied-hours error of the daily-updated GP power twin is, with and without the
known load (docs/twin.md, "Known load"), on the VALIDATION periods of bench/diagnose_twin_update.py
only (no test week of bench/bench_twin_update.py).

Same building, excitation, GP settings, 21-day window and protocol as bench_twin_update (static model
fitted on the training days, each validation day at 00:00 re-conditioned on the 21 days before it,
12-hour forecasts from every hour of the day). Feature variants (``VARIANTS``):

- ``noload_l4``: without the known load, 4 output lags (bench_twin_update before the known load);
- ``load_l4``: with the known load, 4 output lags (bench_twin_update now);
- ``load_l1``: with the known load, 1 output lag (the demand-response twin of bench_gp_mpc);
- ``load_l0``: with the known load, no output lag (a static regression: no rollout);
- ``hvac_l4``: a twin of the HVAC power (facility minus the known load; 4 output lags, no known
  load), the facility forecast being it plus the known load's daily profile ((b) of docs/twin.md,
  "Known load").

Forecasts use the measured known load of the future rows, as bench_twin_update does (this building's
known load equals its daily profile on every weekday; ``--profile-future`` blanks it so the model's
profile stands in, as a live twin would). Writes runs/diagnose_twin_known_load/<period>_seed<seed>.npz
(per variant and model: times, actual, mean, std); ``--analyse`` prints RMSE in occupied hours and
overall, coverage, the occupied error by day type and hour of day, and the daily level error, and
plots the occupied RMSE by hour of day to bench/results/twin_known_load_by_hour.png.

    PYTHONPATH=$PWD python -m bench.diagnose_twin_known_load --period val_jul --seed 0
    PYTHONPATH=$PWD python -m bench.diagnose_twin_known_load --analyse
    PYTHONPATH=$PWD python -m bench.diagnose_twin_known_load --period val_jul --seed 0 --sensitivity \
        --variants noload_l4 load_l4
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import pandas as pd

from bench.bench_twin_gp import GP, LAGS, ROOT
from bench.bench_twin_update import day_forecasts
from bench.diagnose_twin_update import VALIDATION, historian, keep_forecasts, occupied_mask, rms, stacked
from bench.results_io import RESULTS, pyplot, save_plot
from bridge.config import load_config
from bridge.twin.collect import excitation_for
from bridge.twin.features import feature_sets_for, profile_at, reference_holidays
from bridge.twin.gp import GPModel

OUT = ROOT / "runs/diagnose_twin_known_load"
VARIANTS = {"noload_l4": (False, 4), "load_l4": (True, 4), "load_l1": (True, 1), "load_l0": (True, 0),
            "hvac_l4": (False, 4)}
HVAC = "HvacPower"  # hvac_l4: a twin of the HVAC power; facility forecast = it + the known load's profile


def run(period: str, seed: int, variants: list[str], profile_future: bool, tag: str = "") -> None:
    tagmap = load_config(ROOT / "sims/large_office.toml").buildings[0].tagmap
    frame = historian(period, seed)
    _, first, last = VALIDATION[period]
    path = OUT / f"{period}_seed{seed}{tag}.npz"
    out = dict(np.load(path)) if path.exists() else {}
    for variant in variants:
        known_load, lags = VARIANTS[variant]
        target = HVAC if variant == "hvac_l4" else "FacilityPower"
        power_set, = feature_sets_for(tagmap, [target], **{**LAGS, "output_lags": lags}, known_load=known_load)
        static = GPModel(power_set, **GP, bias_hours=0).fit(frame[frame.index < pd.Timestamp(first)])
        facility, = feature_sets_for(tagmap, ["FacilityPower"], known_load=True)
        load_profile = facility.load_profile(frame[frame.index < pd.Timestamp(first)])
        future = frame.copy()
        if profile_future and known_load:  # the known load unmeasured from each test day on
            future.loc[future.index >= pd.Timestamp(first), "HvacPower"] = np.nan
        parts: dict[str, list] = {}
        started = time.perf_counter()
        for day in pd.date_range(first, last, freq="D"):
            for name, model in (("static", static), ("recond21", static.update(frame, day))):
                f = day_forecasts(model, future, day)
                if target == HVAC:  # facility = HVAC forecast + the known load's profile
                    stamps, rows = np.unique(f.times.ravel(), return_inverse=True)  # profile_at needs increasing times
                    stamps = pd.DatetimeIndex(stamps)
                    f = dataclasses.replace(
                        f, actual=frame["FacilityPower"].reindex(stamps).to_numpy()[rows].reshape(f.times.shape),
                        mean=f.mean + profile_at(stamps, facility, load_profile)[rows].reshape(f.times.shape))
                keep_forecasts(parts, f"{variant}/{name}", f)
        out.update(stacked(parts))
        print(f"{period} seed {seed} {variant}: {time.perf_counter() - started:.0f} s", flush=True)
        OUT.mkdir(parents=True, exist_ok=True)
        np.savez(path, **out)


def sensitivity(period: str, seed: int, variants: list[str]) -> None:
    """Print, per variant, the sum over the output lags of d(one-step mean)/d(lag) (1 kW finite
    difference, as bench/study_gp_baseline.py) of the static model on the validation days' rows:
    median and 10-90 % range in occupied hours and outside them. A sum near 1 feeds a rollout's
    errors back almost undamped."""
    tagmap = load_config(ROOT / "sims/large_office.toml").buildings[0].tagmap
    schedule = excitation_for(load_config(ROOT / "sims/large_office.toml").buildings[0])
    frame = historian(period, seed)
    _, first, last = VALIDATION[period]
    days = frame[(frame.index > pd.Timestamp(first)) & (frame.index <= pd.Timestamp(last) + pd.Timedelta(days=1))].index
    occupied = occupied_mask(days.to_numpy()[:, None], schedule)[:, 0]
    for variant in variants:
        known_load, lags = VARIANTS[variant]
        if not lags:
            continue
        power_set, = feature_sets_for(tagmap, ["FacilityPower"], **{**LAGS, "output_lags": lags}, known_load=known_load)
        model = GPModel(power_set, **GP, bias_hours=0).fit(frame[frame.index < pd.Timestamp(first)])
        rows = model.feature_rows(frame).loc[days].to_numpy(float)
        bumped = rows.copy()
        bumped[:, [list(power_set.columns).index(c) for c in power_set.output_lag_columns]] += 1.0
        gain = (model.predict_features(bumped, fed_back=False, with_std=False)[0]
                - model.predict_features(rows, fed_back=False, with_std=False)[0])
        for label, mask in (("occupied", occupied), ("other hours", ~occupied)):
            q10, q50, q90 = np.nanpercentile(gain[mask], [10, 50, 90])
            print(f"{period} seed {seed} {variant}: lag sensitivity sum, {label}: median {q50:.2f} (10-90 % {q10:.2f}-{q90:.2f})")


def day_types(times: np.ndarray) -> np.ndarray:
    """'workday', 'saturday' or 'sunday/holiday' of each forecast point (middle of its step)."""
    middles = pd.DatetimeIndex(times.ravel()) - pd.Timedelta(minutes=5)
    holidays = set(reference_holidays(2025))
    weekday = middles.day_of_week.to_numpy()
    labels = np.where(weekday == 5, "saturday", "workday").astype(object)
    labels[(weekday == 6) | np.isin(middles.strftime("%Y-%m-%d").to_numpy(), list(holidays))] = "sunday/holiday"
    return labels.reshape(times.shape)


def causal_choice(data, schedule, pair: tuple[str, str], days: int):
    """Occupied RMSE over validation days 2 on when each day uses the variant of ``pair`` with the
    lower occupied RMSE on the ``days`` days before it (their forecasts were made before that day
    starts; the first day takes ``pair[0]``), and of each variant alone, the number of days the
    second was chosen, the number of days; None when the run lacks one of them."""
    if not all(f"{name}:mean" in data.files for name in pair):
        return None
    errors = [data[f"{name}:mean"] - data[f"{name}:actual"] for name in pair]
    occupied = occupied_mask(data[f"{pair[0]}:times"], schedule)
    chosen, picks = [], 0
    for day in range(1, len(errors[0])):
        past = slice(max(0, day - days), day)
        scores = [rms(e[past][occupied[past]]) for e in errors]
        pick = int(scores[1] < scores[0])
        picks += pick
        chosen.append(errors[pick][day][occupied[day]])
    alone = [rms(np.concatenate([e[d][occupied[d]] for d in range(1, len(e))])) for e in errors]
    return rms(np.concatenate(chosen)), alone[0], alone[1], picks, len(chosen)


def analyse() -> None:
    """Print the figures of every stored run and variant; plot occupied RMSE by hour of day."""
    schedule = excitation_for(load_config(ROOT / "sims/large_office.toml").buildings[0])
    plt = pyplot()
    paths = sorted(OUT.glob("*.npz"))
    plotted = [path for path in paths if path.stem.rsplit("seed", 1)[1].isdigit()]  # untagged runs
    fig, axes = plt.subplots(1, max(len(plotted), 1), figsize=(5.5 * max(len(plotted), 1), 4), squeeze=False)
    panels = dict(zip(plotted, axes[0]))
    for path in paths:
        data = np.load(path)
        ax = panels.get(path)
        print(path.name)
        for key in sorted(k for k in data.files if k.endswith(":mean")):
            label = key.removesuffix(":mean")
            times, actual, mean, std = (data[f"{label}:{k}"] for k in ("times", "actual", "mean", "std"))
            errors = mean - actual
            occupied = occupied_mask(times, schedule)
            kinds = day_types(times)
            hours = (pd.DatetimeIndex(times.ravel()) - pd.Timedelta(minutes=5)).hour.to_numpy().reshape(times.shape)
            daily = np.array([errors[i][occupied[i]].mean() for i in range(len(errors))])
            by_kind = {k: rms(errors[occupied & (kinds == k)]) for k in ("workday", "saturday") if (occupied & (kinds == k)).any()}
            by_hour = [rms(errors[occupied & (hours == h)]) if (occupied & (hours == h)).any() else np.nan for h in range(24)]
            worst = np.argsort(np.nan_to_num(by_hour))[::-1][:3]
            print(f"  {label:22s} occupied {rms(errors[occupied]):5.1f}  all {rms(errors):5.1f} kW  coverage "
                  f"{np.mean(np.abs(errors) <= 1.96 * std):.3f}  occupied by day type "
                  + ", ".join(f"{k} {v:.1f}" for k, v in by_kind.items())
                  + f"  nights/sundays {rms(errors[~occupied]):.1f}; daily occupied mean error rms {rms(daily):.1f}"
                  f" (removing it: {rms(np.concatenate([errors[i][occupied[i]] - daily[i] for i in range(len(errors))])):.1f});"
                  f" on the hour at lead 1/6/12 h {rms(errors[:, :, 5][occupied[:, :, 5]]):.1f}/{rms(errors[:, :, 35][occupied[:, :, 35]]):.1f}/"
                  f"{rms(errors[:, :, 71][occupied[:, :, 71]]):.1f}; worst hours "
                  + ", ".join(f"{h:02d} h {by_hour[h]:.0f}" for h in worst))
            if ax is not None and label.endswith("recond21"):
                variant = label.removesuffix("/recond21")
                ax.plot(range(24), by_hour, marker=".", label=variant, color=f"C{list(VARIANTS).index(variant)}")
        for days in (1, 3, 7):
            picked = causal_choice(data, schedule, ("noload_l4/recond21", "load_l4/recond21"), days)
            if picked is not None:
                print(f"  each day the better of noload_l4 / load_l4 (updated) on the {days} days before: "
                      f"occupied {picked[0]:.1f} kW over days 2 on (noload_l4 {picked[1]:.1f}, load_l4 {picked[2]:.1f}); "
                      f"load_l4 chosen on {picked[3]} of {picked[4]} days")
        if ax is None:
            continue
        ax.set(title=f"{path.stem}: updated daily", xlabel="hour of day (SimTime: standard time)",
               ylabel="12-h occupied-hours RMSE (kW)")
        ax.axhline(35, color="k", lw=0.8, ls="--")
        ax.legend(fontsize=8)
    if paths:
        save_plot(fig, RESULTS / "twin_known_load_by_hour.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", choices=list(VALIDATION))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--profile-future", action="store_true", help="the known load of the days forecast from its profile")
    parser.add_argument("--tag", default="", help="suffix of the output file")
    parser.add_argument("--analyse", action="store_true")
    parser.add_argument("--sensitivity", action="store_true", help="print the static models' output-lag sensitivity")
    args = parser.parse_args()
    if args.analyse:
        analyse()
    elif args.sensitivity:
        sensitivity(args.period, args.seed, args.variants)
    else:
        run(args.period, args.seed, args.variants, args.profile_future, args.tag)
