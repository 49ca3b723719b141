"""Study: the after-hours rule's window and thresholds (bridge/tracking/after_hours.py; issue 14: every fault of
bench_tracking within 60 steps, HVAC-early in winter took 126 under the deviation rules alone).

Same pair and series as ``bench_alert_rules`` (its cache, runs/alert_rules/): the DOE Small Office on Las Vegas
TMY3 at Chicago's site, fault-free and with each of the three faults from day 3, against the dry mirrored twin;
10-minute steps, 30 days, the first day spin-up, 1 % meter noise (seed 7, the same draws as bench_alert_rules);
the occupancy is the Small Office's (tagmaps/small_office.toml: weekdays 06-22, Saturdays 06-18, DST).

Written down before any candidate was scored, and before any validation period was looked at with the rule:

- **Periods**: rule-setting summer (2025-07-22) and winter (2025-01-15), bench_alert_rules' own; validation
  spring (04-09), autumn (09-24), june (06-04), november (11-05), never used for a choice here.
- **Candidates**: window_steps in {3, 6, 12, 18}; warning_kw in {0.2, 0.3, 0.4, 0.5, 0.75, 1.0}; alert_kw in
  {0.3, 0.4, 0.5, 0.75, 1.0, 1.5}, alert_kw > warning_kw; clear_steps 3.
- **Criterion** (rule-setting periods only):
  1. admissible: on both fault-free pairs the after-hours rule raises no warning and no alert, and
     warning_kw >= 2 M and alert_kw >= 3 M, where M is the largest fault-free window-mean excess (live - twin,
     noise included, unoccupied steps) of the two periods at that window: a margin for seasons not seen;
  2. among the admissible, the smallest worst-case (summer, winter) steps from the onset to the first alert of
     HVAC-early under the default deviation rules and the after-hours rule together; then the smallest
     worst-case steps to its first warning; then the smallest worst-case steps to alert over all three faults;
  3. ties: the larger alert_kw, then the larger warning_kw, then the shorter window.
- **Report**: the chosen rule on every period: false alerts and warnings per 30 days (the after-hours rule
  alone, and with the default deviation rules), steps to warning and alert per fault (together, and the
  after-hours rule alone).

    PYTHONPATH=$PWD python bench/bench_after_hours.py [--periods summer winter spring autumn june november]

Writes bench/results/after_hours.json (the choice's inputs: M per window, the candidates' ranks; and, added
after the validation was scored and used for no choice, ``diagnosis.*``: whether any threshold could separate
HVAC-early's first morning from the fault-free nights in each period).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_alert_rules import DAYS, FAULT_DAY, PERIODS, period_of, simulated  # noqa: E402
from bench.bench_live_twin import tracked  # noqa: E402
from bench.bench_tracking import FAULT_FREE, NOISE, figures_of  # noqa: E402
from bench.results_io import figure, write_results  # noqa: E402
from bridge.tracking.after_hours import GRANULARITY, AfterHoursDetector, AfterHoursRule  # noqa: E402
from bridge.tracking.deviation import GRANULARITIES, Alert  # noqa: E402
from devtools.livetwin import SPIN_UP_DAYS, onset_of, twin_occupancy  # noqa: E402

RULE_PERIODS = ("summer", "winter")
WINDOWS = (3, 6, 12, 18)
WARNINGS_KW = (0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
ALERTS_KW = (0.3, 0.4, 0.5, 0.75, 1.0, 1.5)
MARGIN_WARNING, MARGIN_ALERT = 2.0, 3.0
HVAC = "hvac_start_2h_early"
TWIN = "twin"  # the dry twin of bench_alert_rules


def noisy(live: list[tuple[dt.datetime, float]], seed: int = 7) -> list[tuple[dt.datetime, float]]:
    """The live series with bench_live_twin's meter noise (the draws ``tracked`` makes)."""
    rng = np.random.default_rng(seed)
    return [(t, v * (1 + rng.normal(0, NOISE))) for t, v in live]


def after_hours_alerts(live: list, twin: list, name: str, rule: AfterHoursRule) -> tuple[list[Alert], float]:
    """(alerts of the after-hours rule alone on an already noisy ``live``, the largest window-mean excess)."""
    detector, alerts, largest = AfterHoursDetector(name, rule), [], -np.inf
    for (t, predicted), (_, actual) in zip(twin, live):
        alerts += detector.update(t, predicted, actual)
        if detector.latest_kw == detector.latest_kw:
            largest = max(largest, detector.latest_kw)
            detector.latest_kw = float("nan")
    return alerts, largest


def largest_excess(period: "Period", case: str, window: int, after: dt.datetime, until: dt.datetime) -> float:
    """The largest window-mean excess (kW) of ``case`` at ``window`` steps over windows ending in (after, until]."""
    detector, largest = AfterHoursDetector(case, AfterHoursRule(twin_occupancy(), 1e6, 2e6, window)), -np.inf
    for (t, predicted), (_, actual) in zip(period.twin, period.live[case]):
        detector.update(t, predicted, actual)
        if after < t <= until and detector.latest_kw == detector.latest_kw:
            largest = max(largest, detector.latest_kw)
        detector.latest_kw = float("nan")
    return largest


def diagnosis(period: "Period") -> dict[str, dict]:
    """Post hoc, after the validation was scored, not used for any choice: per window, the largest fault-free
    excess after the first night past the spin-up (from noon of day 2) and the largest excess of HVAC-early
    within the 60 steps after the onset. A threshold can catch the one and stay silent on the other only when
    the second is above the first."""
    figures = {}
    end = period.twin[-1][0]
    for window in WINDOWS:
        clean = largest_excess(period, FAULT_FREE, window, period.onset - dt.timedelta(hours=12), end)
        early = largest_excess(period, HVAC, window, period.onset, period.onset + 60 * dt.timedelta(minutes=10))
        figures[f"diagnosis.{period.name}.window_{window}.fault_free_largest_excess_kw"] = figure(clean, "kW", "")
        figures[f"diagnosis.{period.name}.window_{window}.hvac_early_first_60_steps_largest_excess_kw"] = figure(
            early, "kW", "")
    return figures


class Period:
    """One period's series, its default-rule alerts and onset."""

    def __init__(self, name: str, power: dict[str, list]):
        self.name, period = name, period_of(name)
        _, self.onset = onset_of(period, FAULT_DAY)
        self.skip = SPIN_UP_DAYS * 24 * period.timesteps_per_hour
        lives = {case.removeprefix("live_"): values for case, values in power.items() if case.startswith("live_")}
        self.default = {case: tracked(values, power[TWIN], case, self.skip) for case, values in lives.items()}
        self.twin = power[TWIN][self.skip:]  # after the spin-up; the noise drawn from there, as in ``tracked``
        self.live = {case: noisy(values[self.skip:]) for case, values in lives.items()}

    def scored(self, rule: AfterHoursRule) -> tuple[dict, dict, dict]:
        """(figures with the default rules and ``rule`` together, figures of ``rule`` alone, largest excess per case)."""
        alone, largest = {}, {}
        for case, live in self.live.items():
            alone[case], largest[case] = after_hours_alerts(live, self.twin, case, rule)
        together = {case: self.default[case] + alone[case] for case in self.live}
        days = DAYS - SPIN_UP_DAYS
        return (figures_of(together, self.onset, days, (*GRANULARITIES, GRANULARITY)),
                figures_of(alone, self.onset, days, (GRANULARITY,)), largest)


def candidates() -> list[AfterHoursRule]:
    occupancy = twin_occupancy()
    return [AfterHoursRule(occupancy, warning, alert, window)
            for window, warning, alert in itertools.product(WINDOWS, WARNINGS_KW, ALERTS_KW) if alert > warning]


def worst(figures: list[dict], key: str) -> float:
    """The worst (largest) steps over periods; never raised counts as infinite."""
    values = [f[key]["value"] for f in figures]
    return max(np.inf if v is None else v for v in values)


def choose(periods: list[Period]) -> tuple[AfterHoursRule, dict[int, float], list[tuple]]:
    """The criterion of the docstring on the rule-setting ``periods``: (chosen rule, M per window, ranked rows)."""
    largest = {}  # M per window: fault-free, over the rule periods
    for window in WINDOWS:
        probe = AfterHoursRule(twin_occupancy(), 1e6, 2e6, window)
        largest[window] = max(p.scored(probe)[2][FAULT_FREE] for p in periods)
    ranked = []
    faults = [case for case in periods[0].live if case != FAULT_FREE]
    for rule in candidates():
        scores = [p.scored(rule) for p in periods]
        alone = [s[1] for s in scores]
        false = sum(f["fault_free_false_alerts_per_30_days"]["value"] + f["fault_free_false_warnings_per_30_days"]["value"]
                    for f in alone)
        margin = (rule.warning_kw >= MARGIN_WARNING * largest[rule.window_steps]
                  and rule.alert_kw >= MARGIN_ALERT * largest[rule.window_steps])
        if false or not margin:
            continue
        together = [s[0] for s in scores]
        key = (worst(together, f"{HVAC}_steps_to_alert"), worst(together, f"{HVAC}_steps_to_warning"),
               max(worst(together, f"{case}_steps_to_alert") for case in faults),
               -rule.alert_kw, -rule.warning_kw, rule.window_steps)
        ranked.append((key, rule))
    ranked.sort(key=lambda row: row[0])
    if not ranked:
        raise SystemExit("no admissible candidate")
    return ranked[0][1], largest, ranked


async def main(periods: list[str]) -> None:
    loaded = {name: Period(name, await simulated(name)) for name in periods}
    rule, largest, ranked = choose([loaded[name] for name in RULE_PERIODS])
    print(f"chosen: window {rule.window_steps} steps, warning {rule.warning_kw} kW, alert {rule.alert_kw} kW")
    for key, candidate in ranked[:10]:
        print(f"  {candidate.window_steps:2d} {candidate.warning_kw:5.2f} {candidate.alert_kw:5.2f} {key[:3]}")
    figures = {f"rule_setting.largest_fault_free_excess_kw.window_{w}": figure(m, "kW", "") for w, m in largest.items()}
    figures |= {"chosen.window_steps": figure(rule.window_steps, "steps", ""),
                "chosen.warning_kw": figure(rule.warning_kw, "kW", ""), "chosen.alert_kw": figure(rule.alert_kw, "kW", ""),
                "rule_setting.admissible_candidates": figure(len(ranked), "candidates", "")}
    for name in periods:
        together, alone, excess = loaded[name].scored(rule)
        figures[f"{name}.largest_fault_free_excess_kw"] = figure(excess[FAULT_FREE], "kW", "")
        for label, scored in (("with_default_rules", together), ("after_hours_alone", alone)):
            for key, value in scored.items():
                if value["value"] is None:
                    figures[f"{name}.{label}.{key}"] = {"value": None, "unit": value["unit"], "target": value["target"]}
                else:
                    figures[f"{name}.{label}.{key}"] = figure(value["value"], value["unit"], value["target"])
                print(f"{name:9s} {label:20s} {key:48s} {value['value']}")
    for name in periods:
        figures |= diagnosis(loaded[name])
    write_results("after_hours", figures, notes=(
        f"Periods {', '.join(periods)} ({DAYS} days from {', '.join(str(PERIODS[p]) for p in periods)}, faults from day "
        f"{FAULT_DAY}, day 1 spin-up); the rule chosen on {' and '.join(RULE_PERIODS)} only by the criterion of the "
        "bench's docstring; the others validate it. 'with_default_rules': the default deviation rules (step 6, hourly "
        "warning 3 h) and the after-hours rule together (steps: the first raised at any granularity); "
        f"'after_hours_alone': the new rule only. 'diagnosis.*': post hoc, after the validation was scored (not used for "
        "the choice): per window, the largest fault-free excess from noon of day 2 and HVAC-early's largest in its "
        f"first 60 steps. Load average at the end {os.getloadavg()[0]:.1f}."))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", nargs="+", choices=tuple(PERIODS), default=list(PERIODS))
    asyncio.run(main(parser.parse_args().periods))
