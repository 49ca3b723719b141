"""Offline study (issue 16): does a test event tell a good GP-MPC twin from a poor one?

Round 9 (docs/controllers.md) found that what separates the four July twins of the Large Office (excitation
seeds 0-3, ``bench_gp_mpc.ensure_models``; 0.94 / 0.70 / 0.77 / 0.66 of a 100 kW request delivered in closed
loop on the 11 validation days) is not their baseline but their *response* to the setpoints, and
bench/study_twin_acceptance.py found that forecasts without a setpoint change do not rank them usefully.
A control engineer can measure the response before trusting a twin: a test event, a fixed setpoint move
for the event hours of one ordinary day, recorded beside an ordinary day.

**Written down before any figure of this study was computed (2026-12-05):**

- Test days: Thu 2025-06-19 and Wed 2025-07-30 (the July twin), Thu 2025-08-14 (the August twin): weekdays
  in none of the validation, campus or test day lists (bench_gp_mpc, study_gp_baseline, bench_campus_dr).
- Per day two EnergyPlus runs of the Large Office (Chicago TMY3, lockstep bridge, the schedule controller
  over OPC UA, as bench_gp_mpc's base run): the base schedule, and the base schedule with the test move
  CoolingSetpoint +2 K (24 -> 26 degC, inside the GP-MPC's bounds) from 14:00 to 17:00 on the building's clock.
- True shed: base minus move facility power over the steps whose applied CoolingSetpoint differs. Each
  twin's predicted shed: its zero-variance forecasts under the two runs' recorded inputs, from the step
  before the move (the controller's history fed from the base run, ``study_gp_baseline.fed``), base minus
  move over the same steps. The level error of the forecasts cancels in the difference.
- Measures per twin: the ratio predicted / true shed (mean over the moved steps) on each day, its mean over
  the days, and the mean |ratio - 1|.
- Criterion: the response measure predicts the closed-loop outcome if the mean |ratio - 1| ranks the four
  twins as their mean delivered ratio does (Spearman -1), or one adjacent swap from it (-0.8) with seed 0
  ranked best. Four twins: a perfect ranking by chance once in 24.
- Nothing is tuned; the validation and test days are not run.

    python bench/study_twin_response.py

Writes bench/results/twin_response.json; the runs are kept in runs/study_twin_response/.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_gp_mpc import EXAMPLES, POWER, closed_loop, ensure_models, files  # noqa: E402
from bench.results_io import figure, write_results  # noqa: E402
from bench.study_gp_baseline import _ranges, day_controller, fed  # noqa: E402
from bench.study_twin_acceptance import SEEDS, outcomes, spearman  # noqa: E402
from controllers.gp_mpc import GpMpcController  # noqa: E402
from controllers.schedule import ScheduleController, load_schedule  # noqa: E402

FOLDER = ROOT / "runs" / "study_twin_response"
DAYS = {"2025-06-19": "july", "2025-07-30": "july", "2025-08-14": "august"}
MOVE = ("CoolingSetpoint", 2.0, "14:00", "17:00")  # tag, offset (K), start and end on the building's clock


def run_of(day: str, month: str, moved: bool) -> pd.DataFrame:
    """The day's base run, or its run with the test move, recorded once in FOLDER."""
    path = FOLDER / f"{day}_{'move' if moved else 'base'}.csv"
    if not path.exists():
        FOLDER.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            schedule = EXAMPLES / "large_office_base_schedule.toml"
            if moved:
                tag, offset, start, end = MOVE
                schedule = Path(tmp) / "move.toml"
                schedule.write_text((EXAMPLES / "large_office_base_schedule.toml").read_text() +
                                    f'\n[[events]]\nname = "test move"\ndates = ["{day[5:]}"]\nstart = "{start}"\n'
                                    f'end = "{end}"\noffsets = {{ {tag} = {offset} }}\n')
            campus, _ = files(Path(tmp), month, day, 100.0)
            run = closed_loop(campus, Path(tmp) / "run", ScheduleController(load_schedule(schedule)))
        run.to_csv(path)
    return pd.read_csv(path, index_col=0, parse_dates=True)


def shed_ratio(day: str, month: str, seed: int, base: pd.DataFrame, move: pd.DataFrame) -> tuple[float, float]:
    """(predicted shed / true shed, true shed kW), means over the moved steps, for ``seed``'s twin."""
    tag = MOVE[0]
    moved = base.index[(move[tag] - base[tag]).abs() > 1e-6]
    origin = base.index[base.index.get_loc(moved[0]) - 1]
    event_day = day_controller(month, day, POWER, ensure_models(POWER, seed=seed)[month])
    controller = GpMpcController(dataclasses.replace(event_day.config, events=()))  # the base schedule all day
    controller.check(_ranges(controller))
    history, _ = fed(controller, base, day, origin, origin)
    model = controller.config.twin.models[POWER]
    times = [t.to_pydatetime() for t in base.index[(base.index > origin) & (base.index <= moved[-1])]]
    base_future = controller._base_future(times)
    if not np.allclose(base_future[tag].to_numpy(), base.loc[base_future.index, tag].to_numpy()):
        raise RuntimeError(f"{day}: the controller's base inputs are not the base run's recorded ones")
    move_future = base_future.copy()
    move_future[tag] = move.loc[base_future.index, tag].to_numpy()
    means, _ = model.forecast_scenarios(history, [base_future, move_future], with_std=False)
    predicted = float((means[0] - means[1]).mean())
    true = float((base.loc[base_future.index, POWER] - move.loc[base_future.index, POWER]).mean())
    return predicted / true, true


def main() -> None:
    load_before = os.getloadavg()
    delivered, figures, ratios = outcomes(), {}, {seed: [] for seed in SEEDS}
    for day, month in DAYS.items():
        base, move = run_of(day, month, False), run_of(day, month, True)
        for seed in SEEDS:
            ratio, true = shed_ratio(day, month, seed, base, move)
            ratios[seed].append(ratio)
            figures[f"{day}_seed{seed}_predicted_over_true_shed"] = figure(ratio, "mean over the moved steps")
            print(day, seed, f"true shed {true:.1f} kW, predicted / true {ratio:.3f}", flush=True)
        figures[f"{day}_true_shed_kw"] = figure(true, "kW, base - move, mean over the moved steps")
    for seed in SEEDS:
        figures[f"seed{seed}_ratio_mean"] = figure(float(np.mean(ratios[seed])), "predicted / true shed, mean of the days")
        figures[f"seed{seed}_ratio_error_mean"] = figure(float(np.mean(np.abs(np.array(ratios[seed]) - 1))), "mean |ratio - 1|")
        figures[f"seed{seed}_delivered_ratio_mean"] = figure(delivered[seed], "closed loop, 11 validation days, 100 kW")
    errors = [figures[f"seed{s}_ratio_error_mean"]["value"] for s in SEEDS]
    figures["spearman_ratio_error_vs_delivered"] = figure(spearman(errors, [delivered[s] for s in SEEDS]),
                                                          "rank correlation over the 4 seeds", "<= -0.8 with seed 0 ranked best")
    figures["best_by_ratio_error"] = figure(float(SEEDS[int(np.argmin(errors))]), "seed of the smallest mean |ratio - 1|")
    write_results("twin_response", figures,
                  f"Large Office twins of excitation seeds {SEEDS} (bench_gp_mpc.ensure_models), test move {MOVE} on "
                  f"{', '.join(DAYS)}; outcomes as in twin_acceptance.json. Load average before "
                  f"{tuple(round(v, 2) for v in load_before)}, after {tuple(round(v, 2) for v in os.getloadavg())}.")


if __name__ == "__main__":
    main()
