"""Closed-loop validation of GP-MPC variants on bench/study_gp_baseline.py's validation days (issue 16).

The 11 validation days of the study (June 10, 12, 17, 24, 26; Jul 22, 23; Aug 19, 21, 26, 28: no
event day of bench_gp_mpc), each alone from midnight in lockstep, a 14-17 h event (building clock)
asking 100 kW, figures of bench_gp_mpc.day_figures against the study's base runs. A variant is
``<fac|plain|hvac>_<entry|begin|end>``: the twins of bench_gp_mpc (facility power with the tag map's
known load; ``plain``: without it, the twins before it; ``hvac``: the study's HvacPower twins, then the
MPC tracks HVAC power: the facility's shed is the same) and ``baseline_update``.
Used to choose the twins and the baseline update before the test days were run again.

    python bench/validate_gp_mpc.py hvac_end hvac_entry plain_entry [-o gp_mpc_validation]
    nice -n 5 python bench/validate_gp_mpc.py fac_entry --baseline twin_regression -o gp_mpc_validation_twin_regression
    nice -n 5 python bench/validate_gp_mpc.py fac_entry --baseline oracle -o gp_mpc_validation_oracle
    nice -n 5 python bench/validate_gp_mpc.py fac_entry --seed 1 2 3 --baseline twin_regression \
        -o gp_mpc_validation_seeds_twin_regression
    nice -n 5 python bench/validate_gp_mpc.py fac_entry --seed 1 2 3 --shed -o gp_mpc_validation_seeds_shed
    nice -n 5 python bench/validate_gp_mpc.py fac_entry --seed 1 2 3 --shed --baseline twin_regression \
        -o gp_mpc_validation_seeds_shed_twin_regression
    nice -n 5 python bench/validate_gp_mpc.py fac_entry --ensemble 1 2 3 --ensemble 0 1 2 3 -o gp_mpc_validation_ensemble

Prints one JSON line per day and variant and writes bench/results/<-o>.json (default
gp_mpc_validation; its runs before the known load named the plain twins ``fac``).

Added 2026-12-05 (round 4, the move weight): in the campus bench (Jul 23, 100 kW) the Large Office, asked
67 kW, alternated its cooling setpoint between about 23.5 and 24.5 degC step after step (campus RMSE
44 kW), while in bench_gp_mpc, asked 100-150 kW, its setpoints sat at their bounds. Its twin's one-step
response to the cooling setpoint is -57 kW/K (+44 kW/K a step later) where the building answered a step of
the setpoint with about -120 kW/K: a controller that cancels its error in one move, on a plant about twice
as responsive as its model, over-corrects every step. The remedy tried is the move weight (``--move-weight``,
the MPC file's ``move_weight``, 0.1 so far), chosen with a criterion fixed before any of these runs:
``--request 65 100`` (an interior request, the Large Office's campus share, and the paper's) on the
validation days without Jul 22-23 (``--days``; Jul 23 is the campus bench's event day), weights 0.1, 0.4
and 1.6: the weight with the lowest mean tracking RMSE over all those runs is taken, provided its mean
delivered ratio stays within 0.9-1.1 at both requests; figures in bench/results/gp_mpc_validation_move.json.
Round 5, ``--decide CoolingSetpoint ChilledWaterSetpoint`` (the supply air on the base schedule): criterion
in bench/bench_campus_dr.py's docstring; figures in bench/results/gp_mpc_validation_decide.json.
Round 8 (2026-12-05, written before its runs; a report, nothing is chosen from it): the twins' excitation
realization. bench_campus_dr's round 7 found two twins of the Large Office from two excitation runs of the same
weeks whose closed loops differ by tens of kW. Offline, on these validation days' base runs (the baseline the
controller holds from the event's entry, without Jul 23), twins made exactly as bench_gp_mpc's but from
excitation seeds 1, 2 and 3 erred by RMSE 43.3 / 30.9 / 19.7 kW on average, against 15.0 kW for seed 0's, the
twins every benchmarked GP-MPC figure was made with. ``--seed 1 2 3`` runs ``fac_entry`` at 100 kW on the 11
days with those twins (bench/results/gp_mpc_validation_seeds.json), to report how much the figures rest on
the realization.
Round 9 (2026-12-05, written and committed before its runs): an ensemble of twins (issue 16). ``model = [file, ...]``
in the MPC file makes the event baseline the per-step median of the members' held entry baselines and has the
optimiser roll out the member whose baseline is closest to that median at entry (controllers/gp_mpc.py; chosen
before any run, from round 8's offline figures: median of the four seeds' baselines 16.2 kW RMSE). ``--ensemble
1 2 3 --ensemble 0 1 2 3`` runs ``fac_entry`` at 100 kW on the 11 days with (a) the twins of seeds 1, 2, 3 (seed
0's lucky twin left out: the robustness test) and (b) those of seeds 0-3 (bench/results/gp_mpc_validation_ensemble.json,
the members' baseline spread at entry and the member the optimiser rolled out included). Criterion, fixed now:
(a) makes the controller robust to the realization if it meets the issue's targets on these days (mean
delivered/requested >= 0.9, every day >= 0.8, mean tracking RMSE <= 15 kW, 0 K h above 26 degC, decision p95 < 2 s);
it improves on single unlucky twins if its mean delivered/requested is above the best of seeds 1-3 alone (0.77,
seed 2) and its mean tracking RMSE below their best (33.2 kW, seed 2). (b) is compared with seed 0 alone (0.94,
15.5 kW): what adding three worse twins costs the lucky one. Nothing is tuned on these runs, the default stays one
twin file, and bench_gp_mpc's test days are not run. Outcome (docs/controllers.md, round 9): (a) 0.83 / 28.0 kW,
not robust by the targets, better than seeds 1-3 alone; (b) 0.86 / 23.1 kW.
Round 10 (2026-12-05 10:50, written and committed before its runs): the response gain. bench/study_twin_response.py
measured, on three days used nowhere else, that every twin overestimates the shed of a +2 K cooling-setpoint test
event: predicted / true 2.38 / 1.91 / 1.64 / 1.97 for seeds 0-3 (mean of the days). ``[mpc] response_gain = k``
scales the optimiser's predicted response about the base rollout (controllers/gp_mpc_config.py);
``--response-gain SEED=K`` runs ``fac_entry`` at 100 kW on the 11 days with seed SEED's twin and k = K, the
inverse of that twin's measured ratio, rounded to two decimals: 0=0.42 1=0.52 2=0.61 3=0.51 (all four; the
order 1, 3, 2, 0 so that the unlucky twins come first). Criterion, fixed now: the test-event gain makes the
controller robust if with it at least three of the four twins reach a mean delivered/requested >= 0.9 and each
twin's mean tracking RMSE falls below its figure without the gain (seed 0 15.5, seeds 1-3 40.8 / 33.2 / 40.9 kW);
it is not adopted as a default in any case (it needs a test event per twin), and bench_gp_mpc's test days are not
run. Every day run is reported.
Round 13 (2026-12-05 ~12:55, written and committed before any of its closed-loop runs): the event baseline
``"twin_regression"``, the per-step mean of the twin's baseline held from entry and the regression baseline
(bridge/tracking/dr_baseline.py's ``regression_baseline``: round 11's (d), one least-squares fit per 10-minute
time of day on the last 30 eligible weekdays plus the additive day-of adjustment over the 3 h ending at entry;
round 12's (e), offline 9.05 kW mean / 14.2 kW worst event-window RMSE on these days against the twin's 15.2 /
33.9). Round 12's offline criterion (mean <= 8 kW) was not met, so the lead set this second, closed-loop one.
``--baseline twin_regression`` runs ``fac_entry`` at 100 kW on the 11 days with the kept configuration (the
known-load twins of excitation seed 0, bench_gp_mpc's), the event naming ``baseline = "twin_regression"`` and the
controller fed ``baselines={"regression": source}``: the regression baseline made at entry from the history the
controller would have had (each day here runs alone from midnight): the 30 eligible weekdays of
bench/study_regression_baseline.py's long base-schedule run (Apr 21 - Aug 31, reused; test days, the schedule's
and the model's holidays left out, as in rounds 11-12), the day's own measurement up to entry (its day-alone base
run, which is what the closed loop measures up to entry: the controller writes the base schedule until then) and
the EPW forecast after it. Results in bench/results/gp_mpc_validation_twin_regression.json. Criterion, fixed now:
"twin_regression" is ADOPTED as bench_gp_mpc's event baseline if, on the 11 days, delivered/requested (against
the base run) is >= 0.9 on average and >= 0.8 on the worst day, the tracking RMSE (against base run - request)
is <= 13.5 kW on average (the twin baseline's 15.5 kW in these closed loops, minus 2), 0 K h above 26 degC on
every day, and the decision time p95 < 2 s on every day. If adopted, bench_gp_mpc runs its six test days once at
100 kW with it (results under a new name, gp_mpc_twin_regression.json; gp_mpc.json kept); if not, the test days
are not run. Every day run is reported; nothing is tuned on these runs.
Round 14 (2026-12-05 ~14:30, written and committed before its runs): the tracking floor. Against the base run,
a step's tracking error is (the baseline the controller holds - the true base-run power) + (measured - the
controller's own target): the first part is the counterfactual forecast, which no measurement during the event
shows; the second is the controller. ``--baseline oracle`` runs ``fac_entry`` at 100 kW on the 11 days with the
event naming ``baseline = "x_of_y"`` and the controller fed ``baselines={"x_of_y": source}`` returning the
day's base-run power itself (an oracle no real controller has; nothing else changed), so its tracking RMSE is
the controller's part alone (results: bench/results/gp_mpc_validation_oracle.json). Reading rule, fixed now:
if the oracle runs' tracking RMSE is <= 15 kW on every day, the controller is not what keeps a day above 15 kW,
and the share of days within 15 kW is set by the counterfactual forecast, whose per-day RMSE round 12 measured
on 35 weekdays of the long base run (bench/results/dr_combined_baseline.json, no test day): that distribution
is then the achievable per-day figure, reported in docs/controllers.md. If some oracle day stays above 15 kW,
the controller is also a limit on those days, and that is reported. A report: nothing is tuned or adopted, and
bench_gp_mpc's test days are not run.
Round 15 (2026-12-05 ~15:05, written and committed before its runs): does the regression make the controller robust
to an unlucky twin? Round 8 measured that with the twins of excitation seeds 1, 2, 3 the controller delivers 0.70 /
0.77 / 0.66 of 100 kW on these 11 days (tracking RMSE 40.8 / 33.2 / 40.9 kW), its held baselines erring by 43.3 /
30.9 / 19.7 kW RMSE against seed 0's 15.0; round 13's ``"twin_regression"`` halves the twin's share of the baseline
with a regression whose errors do not depend on the twin. ``--seed 1 2 3 --baseline twin_regression`` runs
``fac_entry`` at 100 kW on the 11 days with those twins (results: bench/results/gp_mpc_validation_seeds_twin_regression.json).
Criterion, fixed now: it makes the controller robust to the realization if at least two of the three seeds reach a
mean delivered/requested >= 0.9 and every seed's mean tracking RMSE falls below its round-8 figure. If so,
docs/controllers.md recommends ``baseline = "twin_regression"`` where 30 weekdays of history exist (the default
stays ``"twin"``, which needs none); if not, that is reported. Nothing is tuned; the test days are not run.
Round 16 (2026-12-05 ~15:50, written and committed before its runs): shed directions. Round 15's diagnostic run
(seed 3, Jun 10) found the unlucky twin driving the supply-air setpoint to its lower bound through the event, a
move that raises the cooling power. ``--shed`` adds ``shed = { CoolingSetpoint = "up", SupplyAirTempSetpoint = "up",
ChilledWaterSetpoint = "up" }`` to the MPC file (controllers/gp_mpc_config.py: while an event is in the horizon each
moves only upward from the base schedule's value), and ``--seed 1 2 3 --shed`` runs ``fac_entry`` at 100 kW on the
11 days with the twin baseline (round 8's setting; results: bench/results/gp_mpc_validation_seeds_shed.json).
Criterion, fixed now: shed directions make the controller robust to the realization if at least two of the three
seeds reach a mean delivered/requested >= 0.9 and every seed's mean tracking RMSE falls below its round-8 figure
(40.8 / 33.2 / 40.9 kW). Adopting them in the example MPC file would further need seed 0's twin with them to keep
mean >= 0.9, worst >= 0.8 and mean tracking RMSE <= 16.5 kW on these days (its 15.5 plus 1), run only if the first
part passes; the test days are not run in this round. Every day run is reported.
Round 17 (2026-12-05 ~16:05, written and committed before its runs): rounds 15 and 16 together. Round 14 split the
tracking error into the counterfactual's part and the controller's; round 15's regression shrank the first with
the unlucky twins, round 16's shed directions the wrong-way moves of the second, and neither alone met its
criterion. ``--seed 1 2 3 --shed --baseline twin_regression`` runs both at 100 kW on the 11 days (results:
bench/results/gp_mpc_validation_seeds_shed_twin_regression.json). Criterion, fixed now, round 16's: at least two of
the three seeds reach a mean delivered/requested >= 0.9 and every seed's mean tracking RMSE falls below its round-8
figure (40.8 / 33.2 / 40.9 kW). A report in any case this session (seed 0 and the test days would come next).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import bench_gp_mpc as bench  # noqa: E402
from bench.results_io import figure, write_results  # noqa: E402
from bench.study_gp_baseline import DAYS, base_run  # noqa: E402
from bench.study_regression_baseline import ENTRY, long_base_run, tod_baseline
from controllers.gp_mpc import WINDOW, GpMpcController, load_mpc

UNITS = {**bench.UNITS,
         "spread_mean_kw": ("kW, max - min of the members' entry baselines per event step, mean", ""),
         "spread_max_kw": ("kW, max - min of the members' entry baselines per event step, max", ""),
         "dynamics_seed": ("excitation seed of the member the optimiser rolled out", ""),
         "regression_baseline_rmse_kw": ("kW, RMSE of the regression source's baseline over the event, against the base run", ""),
         "pre_entry_max_diff_kw": ("kW, largest |closed-loop - base-run| power up to entry (the regression's day-of data)", "")}

SUMMARY = ("delivered_ratio", "tracking_rmse_kw", "twin_baseline_error_kw", "twin_baseline_rmse_kw", "own_delivered_ratio",
           "setpoint_reversals", "beyond_reach_share")
ENSEMBLE = ("kh_above_26", "decision_p95_s", "decision_max_s", "spread_mean_kw", "spread_max_kw", "dynamics_seed")
REGRESSION = ("kh_above_26", "decision_p95_s", "decision_max_s", "regression_baseline_rmse_kw", "pre_entry_max_diff_kw")


def regression_source(day: str, base: pd.DataFrame):
    """Round 13's ``baselines={"regression": source}`` for ``day`` (module docstring): study_regression_baseline's
    (d) (dr_baseline.regression_baseline on the long base run's 30 eligible weekdays, the day's base run up to
    entry, the EPW forecast after), made for the controller's entry (11:10 simulation time) and refused at
    another time."""
    long = long_base_run()

    def source(event, times: pd.DatetimeIndex) -> np.ndarray:
        entry = pd.Timestamp(day) + ENTRY
        if times[0] != entry + bench_step(base):
            raise RuntimeError(f"{day}: the regression source was asked at {times[0]}, made for entry {entry}")
        return tod_baseline(pd.Timestamp(day), long, base, 30, margin=WINDOW).kw.reindex(times).to_numpy(float)
    return source


SHED = 'shed = { CoolingSetpoint = "up", SupplyAirTempSetpoint = "up", ChilledWaterSetpoint = "up" }\n'  # round 16


def oracle_source(day: str, base: pd.DataFrame):
    """Round 14's ``baselines={"x_of_y": source}`` for ``day``: the day's base-run power itself at the times
    asked (module docstring); a time the base run lacks is refused."""
    def source(event, times: pd.DatetimeIndex) -> np.ndarray:
        missing = times.difference(base.index)
        if len(missing):
            raise RuntimeError(f"{day}: the oracle source was asked for {missing[0]}, not in the base run")
        return base.loc[times, bench.POWER].to_numpy(float)
    return source


def bench_step(frame: pd.DataFrame) -> pd.Timedelta:
    return frame.index[1] - frame.index[0]


def run_variant(variant: str, month: str, day: str, feedback_steps: int | None = None, request_kw: float = 100.0,
                move_weight: float | None = None, decide: list[str] = (), seed: int = 0,
                ensemble: list[int] = (), response_gain: float | None = None, baseline: str | None = None,
                shed: bool = False) -> dict[str, float]:
    """One day's figures (bench_gp_mpc.day_figures); ``ensemble``: the month's twins of those excitation seeds
    as the MPC file's ``model`` list (``seed`` unused), with the members' baseline spread at entry; ``baseline``:
    the event's baseline ("twin_regression": fed ``regression_source``); ``shed``: round 16's ``SHED`` table."""
    twin, update = variant.split("_")
    power = "HvacPower" if twin == "hvac" else "FacilityPower"
    base = base_run(month, day)
    with tempfile.TemporaryDirectory() as tmp:
        campus, mpc = bench.files(Path(tmp), month, day, request_kw)
        twins = bench.ensure_models(power, known_load=twin != "plain", seed=seed)
        model = (f'"{twins[month]}"' if not ensemble else
                 "[" + ", ".join(f'"{bench.ensure_models(power, known_load=twin != "plain", seed=s)[month]}"'
                                 for s in ensemble) + "]")
        text = mpc.read_text().replace(f'"{bench.MODELS[month]}"', model)
        if baseline:
            text += f'baseline = "{"x_of_y" if baseline == "oracle" else baseline}"\n'
        mpc.write_text(text.replace("[mpc]\n", f'[mpc]\npower = "{power}"\n' + (SHED if shed else ""), 1)
                       .replace('baseline_update = "entry"', f'baseline_update = "{update}"'))
        config = load_mpc(mpc)
        overrides = {"feedback_steps": feedback_steps, "move_weight": move_weight, "response_gain": response_gain}
        overrides = {key: value for key, value in overrides.items() if value is not None}
        if decide:  # a subset of the file's decided inputs, their bounds kept
            overrides.update(decide=tuple(decide), bounds={tag: config.bounds[tag] for tag in decide})
        sources = ({"regression": regression_source(day, base)} if baseline == "twin_regression" else
                   {"x_of_y": oracle_source(day, base)} if baseline == "oracle" else {})
        controller = GpMpcController(dataclasses.replace(config, **overrides), baselines=sources)
        named = "x_of_y" if baseline == "oracle" else baseline
        if baseline and controller.config.events[0].baseline != named:
            raise RuntimeError(f"{day}: the event's baseline is {controller.config.events[0].baseline}, not {named}")
        run = bench.closed_loop(campus, Path(tmp) / "mpc", controller)
    figures = {k: float(v) for k, v in bench.day_figures(day, request_kw, base, run, controller).items()}
    if baseline == "twin_regression":
        event, = controller.config.events
        if controller.baseline_used.get(event):
            raise RuntimeError(f"{day}: tracked against {controller.baseline_used[event]}")
        during = base.index[(base.index > event.begin) & (base.index <= event.end)]
        regression = controller._regression[event].reindex(during) - base.loc[during, bench.POWER]
        entry = pd.Timestamp(day) + ENTRY
        before = run.index[run.index <= entry]
        figures.update(regression_baseline_rmse_kw=float(np.sqrt((regression ** 2).mean())),
                       pre_entry_max_diff_kw=float((run.loc[before, bench.POWER]
                                                    - base.loc[before, bench.POWER]).abs().max()))
    if baseline == "oracle":
        event, = controller.config.events
        if controller.baseline_used.get(event):
            raise RuntimeError(f"{day}: tracked against {controller.baseline_used[event]}")
    if ensemble:
        entry, = controller.ensemble_entry.values()
        figures.update(spread_mean_kw=entry["spread_mean_kw"], spread_max_kw=entry["spread_max_kw"],
                       dynamics_seed=float(ensemble[int(entry["dynamics_member"])]))
    return figures


def summarise(results: dict[str, dict[str, dict[str, float]]], output: str, requests: list[float]) -> None:
    figures = {}
    for variant, days in results.items():
        for day, values in days.items():
            for name in SUMMARY + tuple(n for n in dict.fromkeys(ENSEMBLE + REGRESSION) if n in values):
                figures[f"{variant}_{day}_{name}"] = figure(values[name], UNITS[name][0])
        names = SUMMARY + (ENSEMBLE if all("spread_mean_kw" in v for v in days.values()) else ())
        names += tuple(n for n in REGRESSION if n not in names and all(n in v for v in days.values()))
        for name in names:
            values = np.array([v[name] for v in days.values()])
            figures[f"{variant}_{name}_mean"] = figure(values.mean(), f"{UNITS[name][0]}; mean of {len(values)} days")
        worst = {"delivered_ratio": min, "tracking_rmse_kw": max, "kh_above_26": max, "decision_p95_s": max}
        for name, pick in worst.items():
            if all(name in v for v in days.values()):
                figures[f"{variant}_{name}_worst"] = figure(pick(v[name] for v in days.values()),
                                                            f"{UNITS[name][0]}; worst of {len(days)} days")
    timed = any("decision_p95_s" in v for days in results.values() for v in days.values())
    write_results(output, figures, f"Large Office, {' and '.join(f'{r:g}' for r in requests)} kW, 14-17 h, validation "
                  f"days of bench/study_gp_baseline.py; load average {os.getloadavg()[2]:.1f} (15 min) at the end "
                  + ("(decision times under nice -n 5 on 2 shared cores)." if timed else "(decision times not reported)."))


def main(variants: list[str], name: str = "gp_mpc_validation", feedback_steps: int | None = None,
         requests: list[float] = (100.0,), move_weights: list[float | None] = (None,), only: list[str] = (),
         decide: list[str] = (), seeds: list[int] = (0,), ensembles: list[list[int]] = (),
         gains: dict[int, float] | None = None, baseline: str | None = None, shed: bool = False) -> None:
    """Every variant x request x move weight x twin seed (or ensemble of seeds) on the validation days (``only``:
    those days alone); a result's name gains ``_r<kW>``, ``_w<weight>``, ``_s<seed>`` when more than the defaults
    are run, and ``_e<seeds>`` for an ensemble."""
    results = {}
    members = [(seed, ()) for seed in seeds] if not ensembles else [(0, tuple(e)) for e in ensembles]
    if gains:
        members = [(seed, ()) for seed in gains]
    for variant in variants:
        for request, weight, (seed, ensemble) in itertools.product(requests, move_weights, members):
            key = variant + (f"_r{request:g}" if list(requests) != [100.0] else "") + (
                f"_w{weight:g}" if weight is not None else "") + ("_" + "+".join(decide) if decide else "") + (
                f"_s{seed}" if list(seeds) != [0] and not ensemble else "") + (
                "_e" + "".join(map(str, ensemble)) if ensemble else "") + (
                f"_s{seed}_g{gains[seed]:g}" if gains else "") + (f"_{baseline}" if baseline else "") + (
                "_shed" if shed else "")
            results[key] = {}
            for month, days in DAYS.items():
                for day in days:
                    if only and day not in only:
                        continue
                    results[key][day] = run_variant(variant, month, day, feedback_steps, request, weight, decide, seed,
                                                    list(ensemble), (gains or {}).get(seed), baseline, shed)
                    print(key, day, json.dumps(results[key][day]), flush=True)
    summarise(results, name, list(requests))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", metavar="VARIANT",
                        choices=[f"{twin}_{update}" for twin in ("fac", "plain", "hvac") for update in ("entry", "begin", "end")],
                        help="<fac|plain|hvac>_<entry|begin|end>")
    parser.add_argument("-o", "--output", default="gp_mpc_validation", help="results name (bench/results/<name>.json)")
    parser.add_argument("--feedback-steps", type=int, help="the MPC file's feedback_steps (default: the file's, 6)")
    parser.add_argument("--request", type=float, nargs="+", default=[100.0], help="requests, kW (default 100)")
    parser.add_argument("--move-weight", type=float, nargs="+", default=[None], help="the MPC file's move_weight (default: the file's)")
    parser.add_argument("--days", nargs="+", default=[], help="only these validation days (YYYY-MM-DD)")
    parser.add_argument("--decide", nargs="+", default=[], help="decide only these of the file's inputs")
    parser.add_argument("--seed", type=int, nargs="+", default=[0],
                        help="excitation seeds of the twins (default 0, bench_gp_mpc's; others trained alike if missing)")
    parser.add_argument("--ensemble", type=int, nargs="+", action="append", default=[], metavar="SEED",
                        help="an ensemble of the twins of these excitation seeds (repeat for several; replaces --seed)")
    parser.add_argument("--response-gain", nargs="+", default=[], metavar="SEED=K",
                        help="run each SEED's twin with [mpc] response_gain = K (replaces --seed and --ensemble)")
    parser.add_argument("--baseline", choices=["twin_regression", "oracle"],
                        help="the event's baseline (twin_regression: fed the long base run's regression, round 13; "
                             "oracle: the base run's power itself, round 14)")
    parser.add_argument("--shed", action="store_true", help="round 16: the decided setpoints move only upward in events")
    arguments = parser.parse_args()
    try:
        gains = {int(s): float(k) for s, k in (item.split("=") for item in arguments.response_gain)}
    except ValueError:
        parser.error(f"--response-gain takes SEED=K items, got {arguments.response_gain}")
    if arguments.feedback_steps is not None and arguments.feedback_steps < 1:
        parser.error("--feedback-steps must be >= 1")
    main(arguments.variants, arguments.output, arguments.feedback_steps, arguments.request, arguments.move_weight,
         arguments.days, arguments.decide, arguments.seed, arguments.ensemble, gains, arguments.baseline, arguments.shed)
