"""Avoided energy: adjusted baseline minus measured, by two methods, with Guideline 14 uncertainty.

avoided_energy_kwh = adjusted_baseline_kwh - measured_kwh, summed over the reporting period
(ASHRAE Guideline 14-2014, 4.1; IPMVP "avoided energy"). The baseline is adjusted to the
reporting period's conditions by either

1. **calibrated simulation** (Guideline 14 whole-building calibrated simulation path): the frozen
   Baseline model run with the reporting period's weather; pass that run's outputs (a DataFrame,
   for example ``bridge.historian.load_history``) to ``simulated_baseline``; or
2. **weather regression** (Guideline 14 whole-building path): ``TowtModel``, a TOWT-like model
   (time-of-week-and-temperature, after LBNL's TOWT): hourly energy regressed on 168 hour-of-week
   indicators plus a piecewise-linear (change-point) function of outdoor temperature, fitted by
   least squares on the baseline period and predicted with the reporting period's temperatures.

The uncertainty of the savings uses the baseline model's fit: CV(RMSE) and residual
autocorrelation over the baseline period (``BaselineFit``) in the fractional savings uncertainty
formula of Guideline 14-2014 Annex B (``guideline14.fractional_savings_uncertainty``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from bridge.errors import TwinbridgeError
from bridge.tracking.guideline14 import (
    MetricsError,
    SavingsUncertainty,
    TooFewIndependentPoints,
    complete_period_sums,
    cv_rmse_pct,
    fractional_savings_uncertainty,
    lag1_autocorrelation,
    median_step,
)

if TYPE_CHECKING:
    from bridge.tracking.caltrack_uncertainty import CaltrackUncertainty

log = logging.getLogger(__name__)
HOURS_PER_WEEK = 168
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class SavingsError(TwinbridgeError, ValueError):
    """Inputs that cannot give a savings figure; the message says which and why."""


def step_hours(index: pd.DatetimeIndex) -> float:
    """Length of one interval of a regular time index, in hours (median spacing)."""
    return median_step(index) / pd.Timedelta(hours=1)


def power_to_energy_kwh(power_kw: pd.Series) -> pd.Series:
    """Energy per interval (kWh) of a mean-power series (kW) stamped at the end of each interval."""
    return power_kw * step_hours(power_kw.index)


def column_energy_kwh(run: pd.DataFrame, column: str, kind: str = "power_kw") -> pd.Series:
    """Energy per interval from one column of a run's outputs: ``kind`` "power_kw" or "energy_kwh"."""
    if column not in run.columns:
        raise SavingsError(f"no column {column!r} in the run's outputs (has {list(run.columns)})")
    if kind not in ("power_kw", "energy_kwh"):
        raise SavingsError(f"kind must be 'power_kw' or 'energy_kwh', got {kind!r}")
    series = run[column].astype(float)
    return power_to_energy_kwh(series) if kind == "power_kw" else series


@dataclass(frozen=True)
class BaselineFit:
    """How well a baseline model fits its baseline period (inputs to the savings uncertainty)."""

    cv_rmse_pct: float
    rho: float  # lag-1 autocorrelation of the residuals
    n: int  # baseline points
    n_params: int

    @classmethod
    def of(cls, measured: pd.Series, predicted: pd.Series, n_params: int = 1) -> "BaselineFit":
        both = pd.concat({"y": measured, "yhat": predicted}, axis=1, join="inner").dropna()
        if len(both) < 3:
            raise SavingsError("baseline fit needs at least 3 periods present in both series")
        return cls(cv_rmse_pct(both["y"], both["yhat"], n_params), lag1_autocorrelation(both["y"] - both["yhat"]),
                   len(both), n_params)


@dataclass(frozen=True)
class SavingsResult:
    method: str
    adjusted_baseline_kwh: float
    measured_kwh: float
    avoided_kwh: float
    savings_fraction: float
    uncertainty: SavingsUncertainty | CaltrackUncertainty | None  # Guideline 14 (TOWT, simulation) or CalTRACK's
    series: pd.DataFrame  # adjusted_baseline_kwh, measured_kwh, avoided_kwh, cumulative_avoided_kwh
    incomplete_periods: int = 0  # shared periods left out: a value missing in one series or both
    uncertainty_warning: str | None = None  # why the uncertainty is None although the baseline fit is known

    @property
    def avoided_uncertainty_kwh(self) -> float | None:
        """Half-width of the confidence band on the avoided energy, kWh."""
        return None if self.uncertainty is None else abs(self.avoided_kwh) * self.uncertainty.fractional_uncertainty

    def summary(self) -> dict:
        return {
            "method": self.method,
            "start": str(self.series.index[0]), "end": str(self.series.index[-1]), "periods": len(self.series),
            "incomplete_periods": self.incomplete_periods,
            "adjusted_baseline_kwh": self.adjusted_baseline_kwh, "measured_kwh": self.measured_kwh,
            "avoided_kwh": self.avoided_kwh, "savings_fraction": self.savings_fraction,
            "avoided_uncertainty_kwh": self.avoided_uncertainty_kwh,
            "uncertainty": None if self.uncertainty is None else self.uncertainty.to_dict(),
            "uncertainty_warning": self.uncertainty_warning,
        }


def avoided_energy(adjusted_baseline_kwh: pd.Series, measured_kwh: pd.Series, method: str,
                   baseline_fit: BaselineFit | None = None, confidence: float = 0.9) -> SavingsResult:
    """Avoided energy over the periods with a value in both series, with its uncertainty when the fit is known.

    A period present in both series but without a value in one (NaN: an incomplete period, see
    ``hourly_energy_kwh``) is left out and counted in ``incomplete_periods``. With ``baseline_fit`` the
    fractional savings uncertainty of Guideline 14-2014 Annex B is computed with m = number of
    reporting periods compared (use the same interval as the baseline fit). When the baseline has too few
    independent points for its model (n' - p <= 0) the savings are still given, the uncertainty is None
    and ``uncertainty_warning`` says why.
    """
    shared = pd.concat({"adjusted_baseline_kwh": adjusted_baseline_kwh, "measured_kwh": measured_kwh},
                       axis=1, join="inner")
    frame = shared.dropna()
    if frame.empty:
        raise SavingsError(f"adjusted baseline and measured energy share no complete periods ({len(shared)} shared "
                           "periods, all missing a value in one series or both)")
    frame["avoided_kwh"] = frame["adjusted_baseline_kwh"] - frame["measured_kwh"]
    frame["cumulative_avoided_kwh"] = frame["avoided_kwh"].cumsum()
    baseline = float(frame["adjusted_baseline_kwh"].sum())
    avoided = float(frame["avoided_kwh"].sum())
    if baseline == 0:
        raise SavingsError("adjusted baseline energy is zero over the reporting period")
    fraction = avoided / baseline
    uncertainty, warning = None, None
    if baseline_fit is not None and avoided != 0:
        try:
            uncertainty = fractional_savings_uncertainty(
                baseline_fit.cv_rmse_pct / 100, fraction, baseline_fit.n, len(frame), baseline_fit.rho,
                baseline_fit.n_params, confidence)
        except TooFewIndependentPoints as exc:
            warning = f"savings uncertainty not computed: {exc}"
        except MetricsError as exc:
            raise SavingsError(f"savings uncertainty: {exc}") from None
    return SavingsResult(method, baseline, float(frame["measured_kwh"].sum()), avoided, fraction, uncertainty, frame,
                         len(shared) - len(frame), warning)


def simulated_baseline(baseline_run: pd.DataFrame, column: str, kind: str = "power_kw",
                       interval: str = "h") -> pd.Series:
    """Adjusted baseline (kWh per ``interval``) from the frozen Baseline model run with the reporting weather.

    An interval missing a step of the run is NaN (not summed as if whole), as in ``hourly_energy_kwh``."""
    energy = column_energy_kwh(baseline_run, column, kind)
    return _to_interval(energy, interval)


def _to_interval(energy_kwh: pd.Series, interval: str) -> pd.Series:
    """Sum end-stamped interval energies into periods labelled by their start; NaN for a period missing samples."""
    shifted = energy_kwh.copy()
    shifted.index = shifted.index - pd.Timedelta(microseconds=1)
    return complete_period_sums(shifted, interval)


def hourly_energy_kwh(run: pd.DataFrame, column: str, kind: str = "power_kw") -> pd.Series:
    """Hourly energy (kWh, labelled by hour start) of one column of a run; NaN for an hour missing a sample.

    An hour is complete when it holds one value per step of the run (its median spacing), see
    ``guideline14.complete_period_sums``."""
    return _to_interval(column_energy_kwh(run, column, kind), "h")


def hourly_mean(series: pd.Series) -> pd.Series:
    """Hourly mean of an end-stamped series (for outdoor temperature), labelled by hour start."""
    shifted = series.astype(float).copy()
    shifted.index = shifted.index - pd.Timedelta(microseconds=1)
    return shifted.resample("h").mean().dropna()


def hour_of_week(index: pd.DatetimeIndex) -> np.ndarray:
    """Hour-of-week slot of each time: 0 for Monday 00:00-01:00 to 167 for Sunday 23:00-24:00."""
    return np.asarray(index.day_of_week * 24 + index.hour)


def slot_names(slots: Iterable[int]) -> str:
    """Hour-of-week slots as weekday and hour start, e.g. "Thu 09:00, Thu 10:00"."""
    return ", ".join(f"{WEEKDAYS[slot // 24]} {slot % 24:02d}:00" for slot in slots)


class TowtModel:
    """TOWT-like weather-regression baseline: hour-of-week indicators + piecewise-linear temperature.

    ``fit(energy_kwh, temperature_c)`` takes hourly series (labelled by hour start);
    ``predict(temperature_c)`` gives the baseline energy for the hours of a temperature series.
    Temperature knots (change points) default to 5 equally spaced points within the baseline's range.
    An hour-of-week slot without baseline data has no coefficient: ``fit`` logs a warning naming such
    slots (``unseen_slots``) and ``predict`` refuses a period that needs one.
    """

    def __init__(self, knots_c: list[float] | None = None):
        self.knots_c = knots_c
        self.coef: np.ndarray | None = None
        self.fit_stats: BaselineFit | None = None
        self.unseen_slots: list[int] = []  # hour-of-week slots absent from the baseline data

    def _design(self, index: pd.DatetimeIndex, temperature_c: np.ndarray) -> np.ndarray:
        slots = hour_of_week(index)
        columns = [(slots == h).astype(float) for h in range(HOURS_PER_WEEK)]
        # Continuous piecewise-linear temperature response: T, then one hinge max(T - k, 0) per knot.
        columns.append(temperature_c)
        columns += [np.maximum(temperature_c - knot, 0.0) for knot in self.knots_c]
        return np.column_stack(columns)

    def fit(self, energy_kwh: pd.Series, temperature_c: pd.Series) -> "TowtModel":
        frame = pd.concat({"e": energy_kwh, "t": temperature_c}, axis=1, join="inner").dropna()
        if len(frame) < 24 * 7:
            raise SavingsError(f"TOWT baseline needs at least one week of hourly data, got {len(frame)} hours")
        if self.knots_c is None:
            low, high = np.percentile(frame["t"], [5, 95])
            self.knots_c = list(np.linspace(low, high, 5)[1:-1])
        self.unseen_slots = sorted(set(range(HOURS_PER_WEEK)) - set(hour_of_week(pd.DatetimeIndex(frame.index))))
        if self.unseen_slots:
            log.warning("TOWT baseline has no data for %d hour-of-week slots (%s): predicting those hours will fail",
                        len(self.unseen_slots), slot_names(self.unseen_slots))
        x = self._design(pd.DatetimeIndex(frame.index), frame["t"].to_numpy(float))
        self.coef, _, rank, _ = np.linalg.lstsq(x, frame["e"].to_numpy(float), rcond=None)
        fitted = pd.Series(x @ self.coef, index=frame.index)
        self.fit_stats = BaselineFit.of(frame["e"], fitted, n_params=int(rank))
        return self

    def predict(self, temperature_c: pd.Series) -> pd.Series:
        if self.coef is None:
            raise SavingsError("TowtModel.predict before fit")
        t = temperature_c.dropna()
        needed_unseen = sorted(set(self.unseen_slots) & set(hour_of_week(pd.DatetimeIndex(t.index))))
        if needed_unseen:
            raise SavingsError(f"TOWT baseline has no data for hour-of-week slots {slot_names(needed_unseen)}, "
                               "which the prediction period needs: extend the baseline period to cover them "
                               "or leave those hours out of the prediction")
        return pd.Series(self._design(pd.DatetimeIndex(t.index), t.to_numpy(float)) @ self.coef, index=t.index)
