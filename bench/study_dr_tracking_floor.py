"""The floor under the GP-MPC's tracking RMSE (issue 16, round 14; docs/controllers.md, "Round 14").

Against the base run, a step's tracking error is (the baseline the controller holds - the true base-run power)
+ (measured - the controller's own target). This puts two measurements side by side, both made on days that
are not bench_gp_mpc's test days:

- the controller's part: ``validate_gp_mpc.py fac_entry --baseline oracle`` (bench/results/
  gp_mpc_validation_oracle.json), the 11 validation days in closed loop with the true base-run power as the
  event baseline: per day its tracking RMSE and the share of its decisions that found 100 kW beyond reach;
- the counterfactual's part: the event-window RMSE of the baselines the controller can hold from entry, on the
  35 weekdays of round 12 (bench/study_combined_baseline.py's prior days on the long base run, Jun 3 - Aug 27;
  bench/results/dr_combined_baseline.json): the twin's (the controller's own) and the regression's, and the
  better of the two per day (an oracle choice no controller has).

Reading rule (validate_gp_mpc.py's docstring, round 14, fixed before the runs): where the oracle runs stay
within 15 kW, the share of days within 15 kW is set by the counterfactual forecast, and its per-day
distribution is the achievable figure. Writes bench/results/dr_tracking_floor.json and dr_tracking_floor.png.

    python bench/study_dr_tracking_floor.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_io import RESULTS, figure, pyplot, save_plot, write_results  # noqa: E402

LIMIT_KW = 15.0  # issue 16's tracking RMSE target
PRIOR = re.compile(r"\d{4}-\d\d-\d\d_prior_(\d{4}-\d\d-\d\d)_(twin|d)_rmse_kw")
ORACLE = re.compile(r"fac_entry_oracle_(\d{4}-\d\d-\d\d)_(tracking_rmse_kw|delivered_ratio|beyond_reach_share)")


def counterfactual_rmse() -> dict[str, np.ndarray]:
    """Per weekday of round 12 (each once): the event-window RMSE (kW) of the twin's held baseline, of the
    regression baseline, and of the better of the two."""
    figures = json.loads((RESULTS / "dr_combined_baseline.json").read_text())["figures"]
    days: dict[str, dict[str, float]] = {}
    for name, value in figures.items():
        if match := PRIOR.fullmatch(name):
            days.setdefault(match[1], {})[match[2]] = value["value"]
    twin = np.array([days[d]["twin"] for d in sorted(days)])
    regression = np.array([days[d]["d"] for d in sorted(days)])
    return {"twin": twin, "regression": regression, "better_of_the_two": np.minimum(twin, regression)}


def oracle_days() -> dict[str, dict[str, float]]:
    figures = json.loads((RESULTS / "gp_mpc_validation_oracle.json").read_text())["figures"]
    days: dict[str, dict[str, float]] = {}
    for name, value in figures.items():
        if match := ORACLE.fullmatch(name):
            days.setdefault(match[1], {})[match[2]] = value["value"]
    return days


def main() -> None:
    baselines, oracle = counterfactual_rmse(), oracle_days()
    figures = {}
    for name, rmse in baselines.items():
        figures[f"{name}_baseline_days_within_15kw"] = figure(
            np.mean(rmse <= LIMIT_KW), f"share of {len(rmse)} summer weekdays whose held baseline is within 15 kW RMSE "
            "over the event", "")
        figures[f"{name}_baseline_rmse_median"] = figure(np.median(rmse), f"kW, median of {len(rmse)} weekdays")
        figures[f"{name}_baseline_rmse_p90"] = figure(np.percentile(rmse, 90), f"kW, 90th percentile of {len(rmse)} weekdays")
    tracking = np.array([v["tracking_rmse_kw"] for v in oracle.values()])
    reach = np.array([v["beyond_reach_share"] for v in oracle.values()])
    figures["oracle_tracking_rmse_mean"] = figure(tracking.mean(), f"kW, true baseline given, mean of {len(tracking)} days")
    figures["oracle_tracking_rmse_max"] = figure(tracking.max(), f"kW, true baseline given, worst of {len(tracking)} days",
                                                 "<= 15")
    figures["oracle_days_within_15kw"] = figure(np.mean(tracking <= LIMIT_KW), f"share of {len(tracking)} days")
    figures["oracle_days_within_15kw_or_beyond_reach"] = figure(
        np.mean((tracking <= LIMIT_KW) | (reach > 0)),
        f"share of {len(tracking)} days within 15 kW or with 100 kW found beyond reach in some decision")
    write_results("dr_tracking_floor", figures, "Derived from gp_mpc_validation_oracle.json (11 validation days, closed "
                  "loop, true baseline given) and dr_combined_baseline.json (35 summer weekdays, no test day).")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rmse in baselines.items():
        ax.step(np.sort(rmse), np.arange(1, len(rmse) + 1) / len(rmse), where="post", label=f"held baseline: {name}")
    ax.step(np.sort(tracking), np.arange(1, len(tracking) + 1) / len(tracking), where="post", color="k",
            label="closed loop, true baseline given (oracle)")
    ax.axvline(LIMIT_KW, color="grey", linestyle=":")
    ax.set_xlabel("event-window RMSE per day (kW)")
    ax.set_ylabel("share of days at or below")
    ax.legend(fontsize=8)
    save_plot(fig, RESULTS / "dr_tracking_floor.png")


if __name__ == "__main__":
    main()
