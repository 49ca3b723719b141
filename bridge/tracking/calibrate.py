"""Calibrating an EnergyPlus model to measured data (ASHRAE Guideline 14-2014, calibrated simulation).

``Target`` holds the measured data (hourly interval energy, or bills) split into calibration periods and
hold-out periods; hold-out data is never seen by the search, only reported beside it. ``calibrate``:

1. **Screening** (Morris elementary effects, SALib; Morris 1991, Campolongo et al. 2007):
   ``morris_trajectories * (k + 1)`` runs over the parameters' ranges. A parameter's effect is its
   mu* on each aggregate of the calibration data (hourly data: the mean weekday and weekend profile, 48
   values, and each calendar month's energy; bills: each bill) in percent of that aggregate, the
   largest over the aggregates. A parameter whose effect is below ``screening_threshold_pct`` cannot be
   constrained by the data: it stays at its nominal value and is reported **unidentifiable**.
2. **Optimisation** of the sensitive parameters (scipy ``least_squares``, trust-region reflective, within
   the ranges) of the calibration residuals (predicted - measured) / mean measured: hourly energies for
   interval data (so CV(RMSE) and NMBE both fall), bill energies for bills. It starts from the best
   screening run; each Jacobian is k forward differences run in parallel (``workers`` EnergyPlus
   processes). The search stops when the calibration data's CV(RMSE) and |NMBE| are below
   ``stop_fraction`` of Guideline 14's limits at every granularity the data has (margin), when the
   optimiser converges, or at ``max_simulations``.
3. **Identifiability** after the fit: the standard error of each fitted parameter from the Jacobian,
   covariance s^2 (J'J)^-1 (s^2 the residual variance, raised by n / n' for the residuals' lag-1
   autocorrelation as in Guideline 14's Annex B): a parameter whose estimate correlates with
   another's beyond |r| = 0.95 (the data fixes only their combination, e.g. lighting and plug loads from
   monthly bills), or whose 2 se exceed 10 % of its range, is reported **poorly constrained**. When the
   search stopped at the margin rather than at the optimum, a "calibrated" parameter says so: its value
   is part of a combination meeting the criteria, not a converged estimate.

Metrics are Guideline 14's (``guideline14``, p = 1): hourly and monthly (calendar months of interval data,
or billing periods) CV(RMSE) and NMBE with pass/fail, on the calibration and the hold-out periods.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.errors import TwinbridgeError
from bridge.tracking.calibration_params import CalibrationFile
from bridge.tracking.guideline14 import (
    CRITERIA_PCT,
    CalibrationResult,
    MetricsError,
    calibration,
    cv_rmse_pct,
    effective_points,
    lag1_autocorrelation,
    nmbe_pct,
)
from bridge.tracking.meterdata import Bill
from bridge.tracking.simulate import Run, simulate_many

log = logging.getLogger(__name__)
Periods = Sequence[tuple[dt.date, dt.date]]  # inclusive day ranges
Simulator = Callable[[Sequence[Run], int], list[pd.Series]]


class CalibrationError(TwinbridgeError, ValueError):
    """Data or settings a calibration cannot work with; the message says which."""


def in_periods(days: pd.DatetimeIndex, periods: Periods) -> np.ndarray:
    """Which of ``days`` (midnights) fall in any of the inclusive day ranges ``periods``."""
    mask = np.zeros(len(days), bool)
    for start, end in periods:
        mask |= (days >= pd.Timestamp(start)) & (days <= pd.Timestamp(end))
    return mask


def month_periods(year: int, months: Sequence[int]) -> list[tuple[dt.date, dt.date]]:
    """Whole calendar months of ``year`` as inclusive day ranges (hold-out months)."""
    periods = []
    for month in months:
        if not 1 <= month <= 12:
            raise CalibrationError(f"hold-out month must be 1..12, got {month}")
        nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
        periods.append((dt.date(year, month, 1), nxt - dt.timedelta(days=1)))
    return periods


@dataclass
class Target:
    """Measured data to calibrate to: ``hourly_kwh`` (interval data, kWh per hour labelled by its start) or
    ``bills``; ``holdout`` day ranges are kept from the search."""

    hourly_kwh: pd.Series | None = None
    bills: Sequence[Bill] | None = None
    holdout: Periods = ()

    def __post_init__(self) -> None:
        if (self.hourly_kwh is None) == (self.bills is None):
            raise CalibrationError("give either interval data or bills to calibrate to")
        if self.hourly_kwh is not None:
            days = self.hourly_kwh.index.normalize()
            self._held = in_periods(days, self.holdout)
        else:
            starts = pd.DatetimeIndex([pd.Timestamp(b.start) for b in self.bills])  # type: ignore[union-attr]
            ends = pd.DatetimeIndex([pd.Timestamp(b.end) for b in self.bills])  # type: ignore[union-attr]
            self._held = in_periods(starts, self.holdout) | in_periods(ends, self.holdout)
        if self._held.all():
            raise CalibrationError("every measured period is held out: nothing left to calibrate to")

    @property
    def start(self) -> dt.date:
        return (self.hourly_kwh.index[0].date() if self.hourly_kwh is not None else self.bills[0].start)  # type: ignore[index]

    @property
    def end(self) -> dt.date:
        return (self.hourly_kwh.index[-1].date() if self.hourly_kwh is not None else self.bills[-1].end)  # type: ignore[index]

    def observed(self, predicted_hourly: pd.Series) -> tuple[pd.Series, pd.Series]:
        """(measured, predicted) per observation: hours of interval data, or bills (kWh, by period start)."""
        if self.hourly_kwh is not None:
            return self.hourly_kwh, predicted_hourly.reindex(self.hourly_kwh.index)
        index = pd.DatetimeIndex([pd.Timestamp(b.start) for b in self.bills])  # type: ignore[union-attr]
        measured = pd.Series([b.kwh for b in self.bills], index=index)  # type: ignore[union-attr]
        predicted = pd.Series([float(predicted_hourly.reindex(b.hours()).sum(min_count=len(b.hours())))
                               for b in self.bills], index=index)  # type: ignore[union-attr]
        return measured, predicted

    def residuals(self, predicted_hourly: pd.Series) -> np.ndarray:
        """(predicted - measured) / mean measured over the calibration observations (the search's objective)."""
        measured, predicted = self.observed(predicted_hourly)
        y, yhat = measured[~self._held].to_numpy(float), predicted[~self._held].to_numpy(float)
        if np.isnan(yhat).any():
            raise CalibrationError("the simulation does not cover every measured hour")
        return (yhat - y) / y.mean()

    def aggregates(self, predicted_hourly: pd.Series) -> np.ndarray:
        """What screening measures effects on: the mean weekday/weekend profile (48) and month sums of the
        calibration hours, or the calibration bills."""
        _, predicted = self.observed(predicted_hourly)
        predicted = predicted[~self._held]
        if self.bills is not None:
            return predicted.to_numpy(float)
        index = predicted.index
        profile = predicted.groupby([index.day_of_week >= 5, index.hour]).mean().to_numpy(float)
        return np.concatenate([profile, predicted.resample("MS").sum().to_numpy(float)])

    def metrics(self, predicted_hourly: pd.Series, held_out: bool = False) -> dict[str, dict]:
        """Guideline 14 figures per granularity on the calibration (or hold-out) periods; a granularity the
        data cannot give is ``{"error": ..., "passes": False}``."""
        measured, predicted = self.observed(predicted_hourly)
        mask = self._held if held_out else ~self._held
        y, yhat = measured[mask], predicted[mask]
        out: dict[str, dict] = {}
        granularities = ("monthly",) if self.bills is not None else ("hourly", "monthly")
        for granularity in granularities:
            try:
                out[granularity] = (_bill_metrics(y, yhat) if self.bills is not None
                                    else calibration(y, yhat, granularity)).to_dict()
            except MetricsError as exc:
                out[granularity] = {"error": str(exc), "passes": False}
        return out


def _bill_metrics(measured: pd.Series, predicted: pd.Series) -> CalibrationResult:
    """Guideline 14 monthly figures over billing periods (p = 1)."""
    if len(measured) < 2:
        raise MetricsError(f"need at least two bills, got {len(measured)}")
    cv_limit, nmbe_limit = CRITERIA_PCT["monthly"]
    return CalibrationResult("monthly", len(measured), 0, 1, cv_rmse_pct(measured, predicted),
                             nmbe_pct(measured, predicted), cv_limit, nmbe_limit, str(measured.index[0]),
                             str(measured.index[-1]))


def meets(metrics: dict[str, dict], fraction: float = 1.0) -> bool:
    """Every granularity the data gives within ``fraction`` of Guideline 14's limits (one at least: interval
    data shorter than two whole months gives hourly figures only)."""
    computed = [m for m in metrics.values() if "error" not in m]
    return bool(computed) and all(m["cv_rmse_pct"] <= fraction * m["cv_rmse_limit_pct"]
                                  and abs(m["nmbe_pct"]) <= fraction * m["nmbe_limit_pct"] for m in computed)


class _Stop(Exception):
    """The search is done (criteria met with margin, or the budget spent)."""


@dataclass
class Evaluation:
    simulation: int  # 1-based count of this run in the search
    wall_s: float
    values: dict[str, float]
    cost: float  # sum of squared normalised calibration residuals
    metrics: dict[str, dict]
    phase: str  # "screening" or "optimisation"


@dataclass
class CalibrationOutcome:
    values: dict[str, float]
    edits: list[dict]
    status: dict[str, str]  # parameter -> calibrated / unidentifiable (...) / poorly constrained (...)
    screening_effect_pct: dict[str, float]
    standard_error: dict[str, float]
    calibration_metrics: dict[str, dict]
    holdout_metrics: dict[str, dict]
    holdout: list[tuple[str, str]]
    simulations: int
    wall_s: float
    first_pass: dict[str, dict]  # granularity -> {"simulations", "wall_s"} when the calibration data first passed
    stopped: str
    history: list[Evaluation] = field(default_factory=list)
    predicted: pd.Series | None = None

    @property
    def passes(self) -> bool:
        return meets(self.calibration_metrics) and meets(self.holdout_metrics)

    def unidentifiable(self) -> list[str]:
        return [name for name, status in self.status.items() if status.startswith("unidentifiable")]

    def to_dict(self) -> dict:
        return {"values": self.values, "edits": self.edits, "status": self.status,
                "screening_effect_pct": self.screening_effect_pct, "standard_error": self.standard_error,
                "calibration": self.calibration_metrics, "holdout": self.holdout_metrics,
                "holdout_periods": self.holdout, "simulations": self.simulations, "wall_s": round(self.wall_s, 1),
                "first_pass": self.first_pass, "stopped": self.stopped, "passes": self.passes,
                "convergence": [{"simulation": e.simulation, "wall_s": round(e.wall_s, 1), "cost": e.cost,
                                 "phase": e.phase} for e in self.history]}


class _Search:
    """Runs, caches and records the evaluations of one calibration."""

    def __init__(self, model: Path, weather: Path, spec: CalibrationFile, target: Target, simulator: Simulator):
        self.model, self.weather, self.spec, self.target, self.simulator = model, weather, spec, target, simulator
        self.settings = spec.search
        self.history: list[Evaluation] = []
        self.cache: dict[tuple, tuple[Evaluation, pd.Series]] = {}
        self.first_pass: dict[str, dict] = {}
        self.started = time.monotonic()
        self.phase = "screening"
        self.jacobian: tuple[dict[str, float], np.ndarray] | None = None  # the last one: (at values, J)

    def run(self, values: dict[str, float]) -> Run:
        return Run(self.model, self.weather, self.target.start, self.target.end, tuple(self.spec.edits(values)),
                   self.settings.timesteps_per_hour)

    def evaluate(self, batch: list[dict[str, float]]) -> list[tuple[Evaluation, pd.Series]]:
        """Simulate the not yet simulated points of ``batch`` (in parallel); their evaluations in order."""
        keys = [tuple(round(v[p.name], 9) for p in self.spec.parameters) for v in batch]
        todo = [(key, values) for key, values in dict(zip(keys, batch)).items() if key not in self.cache]
        room = self.settings.max_simulations - len(self.history)
        if len(todo) > room:
            todo = todo[:max(room, 0)]
            if not todo:
                raise _Stop("max_simulations reached")
        series = self.simulator([self.run(values) for _, values in todo], self.settings.workers)
        for (key, values), predicted in zip(todo, series):
            evaluation = Evaluation(len(self.history) + 1, time.monotonic() - self.started, dict(values),
                                    float(np.sum(self.target.residuals(predicted) ** 2)),
                                    self.target.metrics(predicted), self.phase)
            self.history.append(evaluation)
            log.info("calibration %s run %d (%.0f s): cost %.4g, %s", self.phase, evaluation.simulation, evaluation.wall_s,
                     evaluation.cost, ", ".join(f"{g} CV(RMSE) {m['cv_rmse_pct']:.1f} % NMBE {m['nmbe_pct']:+.1f} %"
                                                for g, m in evaluation.metrics.items() if "error" not in m))
            for granularity, m in evaluation.metrics.items():
                if granularity not in self.first_pass and meets({granularity: m}):
                    self.first_pass[granularity] = {"simulations": evaluation.simulation,
                                                    "wall_s": round(evaluation.wall_s, 1)}
            self.cache[key] = (evaluation, predicted)
        if any(key not in self.cache for key in keys):
            raise _Stop("max_simulations reached")
        return [self.cache[key] for key in keys]


def screen(search: _Search) -> tuple[dict[str, float], dict[str, float]]:
    """Morris screening: (effect % per parameter, the best screening run's values)."""
    try:
        from SALib.analyze import morris as morris_analyze
        from SALib.sample import morris as morris_sample
    except ImportError:
        raise CalibrationError("calibration screens with SALib: pip install -e '.[calibrate]'") from None

    parameters = search.spec.parameters
    problem = {"num_vars": len(parameters), "names": [p.name for p in parameters],
               "bounds": [[0.0, 1.0]] * len(parameters)}
    units = morris_sample.sample(problem, search.settings.morris_trajectories, num_levels=4,
                                 seed=search.settings.seed)
    points = [{p.name: p.from_unit(u) for p, u in zip(parameters, row)} for row in units]
    results = search.evaluate(points)
    outputs = np.array([search.target.aggregates(predicted) for _, predicted in results])
    effects = np.zeros(len(parameters))
    for j in range(outputs.shape[1]):
        scale = abs(outputs[:, j].mean())
        if scale == 0 or np.ptp(outputs[:, j]) == 0:
            continue
        analysis = morris_analyze.analyze(problem, units, outputs[:, j], num_levels=4, num_resamples=10,
                                          seed=search.settings.seed)
        effects = np.maximum(effects, 100 * np.asarray(analysis["mu_star"]) / scale)
    best = min(results, key=lambda item: item[0].cost)[0]
    return {p.name: float(e) for p, e in zip(parameters, effects)}, best.values


def calibrate(model: Path, weather: Path, spec: CalibrationFile, target: Target,
              simulator: Simulator = simulate_many) -> CalibrationOutcome:
    """Calibrate ``model`` (with ``weather`` of the metered period) to ``target`` (module docstring)."""
    from scipy.optimize import least_squares

    search = _Search(Path(model), Path(weather), spec, target, simulator)
    settings, parameters = spec.search, spec.parameters
    stopped = "optimiser converged"
    effects: dict[str, float] = {p.name: math.nan for p in parameters}
    sensitive: list = []
    try:
        effects, best_screen = screen(search)
        sensitive = [p for p in parameters if effects[p.name] >= settings.screening_threshold_pct]
        search.phase = "optimisation"
        base = {p.name: p.nominal for p in parameters}

        def values_of(x: np.ndarray) -> dict[str, float]:
            return {**base, **{p.name: p.from_unit(u) for p, u in zip(sensitive, x)}}

        def residuals(x: np.ndarray) -> np.ndarray:
            evaluation, predicted = search.evaluate([values_of(x)])[0]
            if meets(evaluation.metrics, settings.stop_fraction):
                raise _Stop("criteria met with margin")
            return target.residuals(predicted)

        def jac(x: np.ndarray) -> np.ndarray:
            steps = [0.04 if u + 0.04 <= 1 else -0.04 for u in x]
            points = [x.copy() for _ in x]
            for i, point in enumerate(points):
                point[i] += steps[i]
            results = search.evaluate([values_of(x)] + [values_of(point) for point in points])
            r0 = target.residuals(results[0][1])
            matrix = np.column_stack([(target.residuals(p) - r0) / s for (_, p), s in zip(results[1:], steps)])
            search.jacobian = (values_of(x), matrix)
            return matrix

        if sensitive:
            x0 = np.array([min(max(p.to_unit(best_screen[p.name]), 0.0), 1.0) for p in sensitive])
            residuals(x0)  # the start (the insensitive parameters nominal) may meet the criteria already
            least_squares(residuals, x0, jac=jac, bounds=(0.0, 1.0), method="trf", xtol=1e-3, ftol=1e-4,
                          max_nfev=settings.max_simulations)
        else:
            search.evaluate([base])
            stopped = "no parameter is sensitive: the nominal model"
    except _Stop as reason:
        stopped = str(reason)
    best, predicted = _best(search, {p.name: p.nominal for p in parameters})
    values = best.values
    jacobian = _jacobian_at(search, sensitive, values, target) if sensitive else None
    se, status = _identifiability(parameters, sensitive, effects, settings.screening_threshold_pct, jacobian,
                                  target.residuals(predicted))
    if stopped != "optimiser converged":
        status = {name: f"calibrated ({stopped}: not a converged estimate)" if text == "calibrated" else text
                  for name, text in status.items()}
    return CalibrationOutcome(
        values=values, edits=spec.edits(values), status=status, screening_effect_pct=effects, standard_error=se,
        calibration_metrics=target.metrics(predicted), holdout_metrics=target.metrics(predicted, held_out=True),
        holdout=[(str(a), str(b)) for a, b in target.holdout], simulations=len(search.history),
        wall_s=time.monotonic() - search.started, first_pass=search.first_pass, stopped=stopped,
        history=search.history, predicted=predicted)


def _best(search: _Search, nominal: dict[str, float]) -> tuple[Evaluation, pd.Series]:
    """The lowest-cost optimisation run (insensitive parameters at their nominal values); the nominal model
    when the search never got there, or the best screening run when even that is over budget."""
    optimised = [item for item in search.cache.values() if item[0].phase == "optimisation"]
    if not optimised:
        search.phase = "optimisation"
        try:
            optimised = search.evaluate([nominal])
        except _Stop:
            optimised = list(search.cache.values())
    return min(optimised, key=lambda item: item[0].cost)


def _jacobian_at(search: _Search, sensitive: list, values: dict[str, float], target: Target) -> np.ndarray:
    """The Jacobian (unit parameter scale) of the calibration residuals: the optimiser's last one, else
    forward differences at ``values`` (k more runs, beyond ``max_simulations``)."""
    if search.jacobian is not None:
        return search.jacobian[1]
    search.settings = replace(search.settings, max_simulations=len(search.history) + len(sensitive) + 1)
    steps = [0.04 if p.to_unit(values[p.name]) + 0.04 <= 1 else -0.04 for p in sensitive]
    moved = [dict(values, **{p.name: p.from_unit(p.to_unit(values[p.name]) + step)}) for p, step in zip(sensitive, steps)]
    results = search.evaluate([values, *moved])
    r0 = target.residuals(results[0][1])
    return np.column_stack([(target.residuals(r[1]) - r0) / step for r, step in zip(results[1:], steps)])


MAX_CORRELATION = 0.95  # |r| of two fitted parameters' estimates above which neither is reported as found
MAX_SE_FRACTION = 0.10  # 2 se above this fraction of a parameter's range: not found


def _most_correlated(covariance: np.ndarray | None, i: int, sensitive: list) -> tuple[str, float]:
    """The other fitted parameter whose estimate is most correlated with parameter ``i``'s, and r."""
    if covariance is None or len(sensitive) < 2:
        return "", 0.0
    sd = np.sqrt(np.clip(np.diag(covariance), 1e-300, None))
    r = covariance[i] / (sd[i] * sd)
    r[i] = 0.0
    j = int(np.argmax(np.abs(r)))
    return sensitive[j].name, float(r[j])


def _identifiability(parameters, sensitive, effects, threshold, jacobian, residuals) -> tuple[dict, dict]:
    """Standard error (parameter units) and a status per parameter (module docstring, step 3)."""
    se: dict[str, float] = {}
    status: dict[str, str] = {}
    covariance = None
    if jacobian is not None and len(residuals) > len(sensitive) + 2:
        # autocorrelated residuals count as n' = n (1 - rho) / (1 + rho) independent ones (Guideline 14 Annex B)
        n = len(residuals)
        rho = min(max(lag1_autocorrelation(residuals), 0.0), 0.99)
        s2 = float(np.sum(residuals ** 2)) / (n - len(sensitive)) * n / effective_points(n, rho)
        try:
            covariance = s2 * np.linalg.inv(jacobian.T @ jacobian)
        except np.linalg.LinAlgError:
            covariance = None
    for p in parameters:
        if p not in sensitive:
            se[p.name] = math.nan
            status[p.name] = (f"unidentifiable: screening effect {effects[p.name]:.2g} % < {threshold:g} % "
                              "(left at its nominal value)")
            continue
        i = sensitive.index(p)
        unit_se = math.sqrt(covariance[i, i]) if covariance is not None and covariance[i, i] >= 0 else math.inf
        se[p.name] = unit_se * (p.high - p.low)
        partner, r = _most_correlated(covariance, i, sensitive)
        if abs(r) > MAX_CORRELATION:
            status[p.name] = f"poorly constrained: correlated with {partner} (r = {r:+.3f}), the data fixes only their combination"
        elif 2 * unit_se > MAX_SE_FRACTION:
            status[p.name] = f"poorly constrained: 2 se = {2 * se[p.name]:.3g} > {MAX_SE_FRACTION:.0%} of its range"
        else:
            status[p.name] = "calibrated"
    return se, status
