"""Offline study (issue 16): how much the GP-MPC's event baseline depends on the excitation run its twin was
trained on, and whether several twins together make a steadier one.

bench_campus_dr's round 7 found two twins of the Large Office, from two excitation runs of the same July
weeks (the same excitation process, other random draws), whose closed loops differ by tens of kW. Here,
twins made exactly as bench_gp_mpc makes its own (``ensure_models``: an excitation run Jul 1 - Aug 4 with
EnergyPlus, the July twin on Jul 1-21, the August twin re-conditioned on the 21 days before Aug 4; facility
power with the known load, one output lag), from excitation seeds 0 (every benchmarked figure's), 1, 2, 3.
On the validation days of bench/study_gp_baseline.py without Jul 23 (the campus benchmark's event day), each
twin makes the baseline the controller holds from the event's entry (the study's ``injected``: d at entry
fed back through the lags), and its error against the day's base run over the event window is measured.
The same is measured for the mean and the median of the four twins' baselines, and for the mean of those
whose output-lag sensitivity s at entry has |s| < 0.9 (``GPModel.output_lag_sensitivity``, the check the
GP-MPC logs). Nothing is chosen from it; the test days of bench_gp_mpc are not used.

Added after those results (``--pooled``): one July twin fitted on the four runs' Jul 1-21 together (each run's
rows moved 364 days on per seed, so that the runs follow one another with weekdays and times of day kept;
lags do not cross from one run to the next), the same settings (12,096 rows: inducing points), its held entry
baseline on the days that take the July twin: does more data of the same process make a better twin?

    python bench/study_twin_realizations.py [--pooled]

Writes bench/results/twin_realizations.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_gp_mpc import HISTORY, KNOWN_LOAD_OUTPUT_LAGS, POWER, ensure_models, history_file  # noqa: E402
from bench.results_io import RESULTS, figure, write_results  # noqa: E402
from bench.study_gp_baseline import DAYS, entry_baselines  # noqa: E402
from controllers.gp_mpc import LAG_SENSITIVITY_WARN  # noqa: E402

SEEDS = (0, 1, 2, 3)
CAMPUS_EVENT_DAY = "2025-07-23"


def rmse(values: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(((values - truth) ** 2).mean()))


def day_figures(month: str, day: str) -> dict[str, float]:
    """Event-window RMSE (kW) of each seed's held entry baseline, of their mean, median and checked mean, and
    each seed's output-lag sensitivity at entry."""
    made = {seed: entry_baselines(month, day, POWER, ensure_models(POWER, seed=seed)[month]) for seed in SEEDS}
    truth = made[SEEDS[0]][1]
    held = {seed: baselines["injected"] for seed, (baselines, _, _) in made.items()}
    sensitivity = {seed: entry["lag_sensitivity_sum"] for seed, (_, _, entry) in made.items()}
    checked = [held[seed] for seed in SEEDS if abs(sensitivity[seed]) < LAG_SENSITIVITY_WARN]
    out = {f"seed{seed}_rmse_kw": rmse(held[seed], truth) for seed in SEEDS}
    out.update({f"seed{seed}_lag_sensitivity": sensitivity[seed] for seed in SEEDS})
    out["mean_rmse_kw"] = rmse(np.mean(list(held.values()), axis=0), truth)
    out["median_rmse_kw"] = rmse(np.median(list(held.values()), axis=0), truth)
    out["checked_mean_rmse_kw"] = rmse(np.mean(checked, axis=0), truth) if checked else float("nan")
    out["checked_count"] = float(len(checked))
    return out


def pooled_twin() -> Path:
    """The July twin fitted on every seed's Jul 1-21 (``--pooled``, module docstring), trained once."""
    import pandas as pd

    from bench.bench_twin_gp import GP, LAGS, ZONE_LAGS
    from bridge.config import load_config
    from bridge.historian import load_history
    from bridge.twin.features import feature_sets_for
    from bridge.twin.gp import GPModel, TwinModel
    from bridge.twin.persist import save_model

    path = HISTORY.with_name(f"twin_known_july_pooled_{'_'.join(map(str, SEEDS))}.npz")
    if path.exists():
        return path
    frames = []
    for k, seed in enumerate(SEEDS):
        ensure_models(POWER, seed=seed)  # records the seed's excitation run if missing
        frame = load_history(history_file(seed))
        frame = frame[frame.index < "2025-07-22"]
        frames.append(frame.set_axis(frame.index + pd.Timedelta(days=364 * k)))
    frame = pd.concat(frames)
    tagmap = load_config(ROOT / "sims/large_office.toml").buildings[0].tagmap
    power, = feature_sets_for(tagmap, [POWER], **{**LAGS, "output_lags": KNOWN_LOAD_OUTPUT_LAGS}, known_load=True)
    zone, = feature_sets_for(tagmap, ["CoreMidTemp"], **ZONE_LAGS)
    save_model(TwinModel({POWER: GPModel(power, **GP).fit(frame), "CoreMidTemp": GPModel(zone, **GP).fit(frame)}),
               path, tagmap=tagmap)
    return path


def pooled_figures() -> dict:
    """Held entry baseline RMSE (kW) and lag sensitivity of the pooled twin on the July twin's days."""
    twin, figures = pooled_twin(), {}
    for day in (d for d in DAYS["july"] if d != CAMPUS_EVENT_DAY):
        baselines, truth, entry = entry_baselines("july", day, POWER, twin)
        figures[f"{day}_pooled_rmse_kw"] = figure(rmse(baselines["injected"], truth), "kW, event window")
        figures[f"{day}_pooled_lag_sensitivity"] = figure(entry["lag_sensitivity_sum"], "")
        print(day, round(figures[f"{day}_pooled_rmse_kw"]["value"], 2), flush=True)
    values = [v["value"] for k, v in figures.items() if k.endswith("pooled_rmse_kw")]
    figures["pooled_rmse_kw_mean"] = figure(float(np.mean(values)), f"kW, event-window RMSE, mean of {len(values)} July-twin days")
    return figures


def main(pooled: bool = False) -> None:
    load_before = os.getloadavg()
    if pooled:  # added to the results of the seeds' run
        found = json.loads((RESULTS / "twin_realizations.json").read_text())
        found["figures"].update(pooled_figures())
        write_results("twin_realizations", found["figures"], found["notes"] + f" Pooled twin (--pooled) added "
                      f"{dt.date.today()}, load average before {tuple(round(v, 2) for v in load_before)}.")
        return
    results = {}
    for month, days in DAYS.items():
        for day in days:
            if day != CAMPUS_EVENT_DAY:
                results[day] = day_figures(month, day)
                print(day, {k: round(v, 2) for k, v in results[day].items()}, flush=True)
    figures = {f"{day}_{name}": figure(value, "kW, event window" if name.endswith("kw") else "")
               for day, values in results.items() for name, value in values.items()}
    for name in [n for n in next(iter(results.values())) if n.endswith("rmse_kw")]:
        values = np.array([v[name] for v in results.values()])
        figures[f"{name}_mean"] = figure(float(np.nanmean(values)), f"kW, event-window RMSE, mean of {len(values)} days")
        figures[f"{name}_max"] = figure(float(np.nanmax(values)), "kW, event-window RMSE, worst day")
    write_results("twin_realizations", figures,
                  f"Large Office, Chicago TMY3, facility-power twins with the known load from excitation seeds {SEEDS}, "
                  f"the baseline held from the event's entry (11:10) for 13:10-16:00, validation days of "
                  f"bench/study_gp_baseline.py without {CAMPUS_EVENT_DAY}. Load average before "
                  f"{tuple(round(v, 2) for v in load_before)}.")


if __name__ == "__main__":
    main("--pooled" in sys.argv[1:])
