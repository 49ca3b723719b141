"""Calibration metrics and savings uncertainty of ASHRAE Guideline 14-2014.

Definitions (Guideline 14-2014, section 4.3.2 / 5.3.2.4 and Annex B), with measured values y_i,
model predictions yhat_i, n compared periods, p model parameters and ybar the mean measured value:

    CV(RMSE) = 100 * sqrt( sum (y_i - yhat_i)^2 / (n - p) ) / ybar          [%]
    NMBE     = 100 * sum (y_i - yhat_i) / ((n - p) * ybar)                   [%]

A positive NMBE means the model under-predicts. For a calibrated simulation the guideline's
degrees-of-freedom convention is n - p with p = 1 (the default here); pass ``n_params`` for a
regression model with more parameters.

Calibration criteria for calibrated simulation (Guideline 14-2014, 5.3.2.4.2):
monthly data CV(RMSE) <= 15 % and |NMBE| <= 5 %; hourly data CV(RMSE) <= 30 % and |NMBE| <= 10 %.

Savings uncertainty (Guideline 14-2014, Annex B; Reddy and Claridge 2000), fractional savings
uncertainty at confidence level c:

    dE_save / E_save = 1.26 * t * CV * sqrt( (n / n') * (1 + 2 / n') * (1 / m) ) / F

with CV the baseline model's CV(RMSE) as a fraction, n baseline points, m reporting points,
F = E_save / E_baseline the savings fraction, n' = n (1 - rho) / (1 + rho) the number of
independent baseline points given the lag-1 autocorrelation rho of the baseline residuals, and
t the two-sided Student t statistic at confidence c with n' - p degrees of freedom.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from bridge.errors import TwinbridgeError

#: (max CV(RMSE) %, max |NMBE| %) per data granularity, Guideline 14-2014 5.3.2.4.2.
CRITERIA_PCT: dict[str, tuple[float, float]] = {"monthly": (15.0, 5.0), "hourly": (30.0, 10.0)}
RESAMPLE_RULE = {"monthly": "MS", "hourly": "h"}


class MetricsError(TwinbridgeError, ValueError):
    """Series that cannot be compared; the message says why."""


class TooFewIndependentPoints(MetricsError):
    """n' - p <= 0: the baseline's independent points do not outnumber the model's parameters."""


@dataclass(frozen=True)
class CalibrationResult:
    """Guideline 14 goodness of fit of a model against meter data over one period."""

    granularity: str  # "monthly" or "hourly"
    n: int  # compared periods
    incomplete_periods: int  # shared periods left out: samples missing (or doubled) in one series or both
    n_params: int
    cv_rmse_pct: float
    nmbe_pct: float
    cv_rmse_limit_pct: float
    nmbe_limit_pct: float
    start: str
    end: str

    @property
    def passes(self) -> bool:
        return self.cv_rmse_pct <= self.cv_rmse_limit_pct and abs(self.nmbe_pct) <= self.nmbe_limit_pct

    def to_dict(self) -> dict:
        return {**asdict(self), "passes": self.passes}


def _aligned(measured: pd.Series, predicted: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(measured, pd.Series) or not isinstance(predicted, pd.Series):
        raise MetricsError("measured and predicted must be pandas Series")
    both = pd.concat({"y": measured, "yhat": predicted}, axis=1, join="inner").dropna()
    if both.empty:
        raise MetricsError("measured and predicted share no timestamps with values")
    return both["y"].to_numpy(float), both["yhat"].to_numpy(float)


def cv_rmse_pct(measured: pd.Series, predicted: pd.Series, n_params: int = 1) -> float:
    """Coefficient of variation of the RMSE, % (Guideline 14-2014, n - p convention)."""
    y, yhat = _aligned(measured, predicted)
    dof = _dof(len(y), n_params)
    return 100.0 * math.sqrt(float(np.sum((y - yhat) ** 2)) / dof) / _mean(y)


def nmbe_pct(measured: pd.Series, predicted: pd.Series, n_params: int = 1) -> float:
    """Normalized mean bias error, % (Guideline 14-2014, n - p convention); > 0 = model under-predicts."""
    y, yhat = _aligned(measured, predicted)
    return 100.0 * float(np.sum(y - yhat)) / (_dof(len(y), n_params) * _mean(y))


def _dof(n: int, n_params: int) -> int:
    if n_params < 0:
        raise MetricsError(f"n_params must be >= 0, got {n_params}")
    if n - n_params < 1:
        raise MetricsError(f"need more compared periods ({n}) than model parameters ({n_params})")
    return n - n_params


def _mean(y: np.ndarray) -> float:
    ybar = float(np.mean(y))
    if ybar == 0:
        raise MetricsError("mean measured value is zero: CV(RMSE) and NMBE are undefined")
    return ybar


def median_step(index: pd.DatetimeIndex) -> pd.Timedelta:
    """Length of one interval of a regular time index: the median spacing of its timestamps."""
    if len(index) < 2:
        raise MetricsError("need at least two timestamps to know the interval length")
    return pd.Series(index).diff().median()


def samples_per_period(period_starts: pd.DatetimeIndex, rule: str, step: pd.Timedelta) -> np.ndarray:
    """Number of steps of length ``step`` in each period of a resample ``rule`` starting at ``period_starts``."""
    lengths = (period_starts + to_offset(rule)) - period_starts
    counts = np.asarray(lengths / step, float)
    if not np.allclose(counts, np.round(counts)):
        raise MetricsError(f"the data's step ({step}, median spacing) does not divide a {rule!r} period evenly: "
                           "put the data on a regular step that does first")
    return np.round(counts).astype(int)


def complete_period_sums(energy_kwh: pd.Series, rule: str) -> pd.Series:
    """Energy per period of a resample ``rule`` (kWh, labelled by period start), NaN for an incomplete period.

    A period is complete when it holds exactly one value per step of the series (its median spacing):
    a period with a sample missing (or doubled) is not summed as if it were whole.
    """
    bins = energy_kwh.resample(rule)
    counts = bins.count()
    expected = samples_per_period(pd.DatetimeIndex(counts.index), rule, median_step(energy_kwh.index))
    return bins.sum().where(counts.to_numpy() == expected)


def calibration(measured_kwh: pd.Series, predicted_kwh: pd.Series, granularity: str = "hourly",
                n_params: int = 1) -> CalibrationResult:
    """Guideline 14 calibration check of a model against meter data.

    Both series hold energy per interval (kWh) indexed by time at any resolution at or below the
    requested one; they are summed to calendar months or clock hours first, then CV(RMSE) and NMBE
    are compared with the guideline's limits. Only periods complete in both series are compared
    (``complete_period_sums``); the shared periods left out are counted in ``incomplete_periods``.
    """
    if granularity not in CRITERIA_PCT:
        raise MetricsError(f"granularity must be one of {sorted(CRITERIA_PCT)}, got {granularity!r}")
    for name, series in (("measured", measured_kwh), ("predicted", predicted_kwh)):
        if not isinstance(series, pd.Series) or not isinstance(series.index, pd.DatetimeIndex):
            raise MetricsError(f"{name} must be a pandas Series indexed by time")
    rule = RESAMPLE_RULE[granularity]
    shared = pd.concat({"y": complete_period_sums(measured_kwh, rule),
                        "yhat": complete_period_sums(predicted_kwh, rule)}, axis=1, join="inner")
    common = shared.dropna()
    if common.empty:
        raise MetricsError(f"measured and predicted share no complete {granularity} periods "
                           f"({len(shared)} shared periods, all missing samples in one series or both)")
    incomplete = len(shared) - len(common)
    try:
        cv, nmbe = cv_rmse_pct(common["y"], common["yhat"], n_params), nmbe_pct(common["y"], common["yhat"], n_params)
    except MetricsError as exc:
        raise MetricsError(f"{granularity}: {exc} ({incomplete} incomplete periods left out)") from None
    cv_limit, nmbe_limit = CRITERIA_PCT[granularity]
    return CalibrationResult(
        granularity=granularity, n=len(common), incomplete_periods=incomplete, n_params=n_params,
        cv_rmse_pct=cv, nmbe_pct=nmbe, cv_rmse_limit_pct=cv_limit, nmbe_limit_pct=nmbe_limit,
        start=str(common.index[0]), end=str(common.index[-1]),
    )


def autocorrelation_residuals(residuals: pd.Series | np.ndarray) -> np.ndarray:
    """The residuals without NaN, as floats; MetricsError when fewer than 3 are left for an autocorrelation."""
    r = np.asarray(residuals, float)
    r = r[~np.isnan(r)]
    if len(r) < 3:
        raise MetricsError(f"need at least 3 residuals for an autocorrelation, got {len(r)}")
    return r


def lag1_autocorrelation(residuals: pd.Series | np.ndarray) -> float:
    """Lag-1 autocorrelation coefficient rho of a residual series (Guideline 14-2014, Annex B)."""
    r = autocorrelation_residuals(residuals)
    d = r - r.mean()
    denominator = float(np.sum(d * d))
    return 0.0 if denominator == 0 else float(np.sum(d[1:] * d[:-1]) / denominator)


def effective_points(n: int, rho: float) -> float:
    """n' = n (1 - rho) / (1 + rho): independent points among n autocorrelated ones (Annex B)."""
    if not -1 < rho < 1:
        raise MetricsError(f"autocorrelation must be in (-1, 1), got {rho}")
    return n * (1 - rho) / (1 + rho)


@dataclass(frozen=True)
class SavingsUncertainty:
    """Guideline 14-2014 Annex B fractional savings uncertainty of a savings estimate."""

    formula: ClassVar[str] = "ASHRAE Guideline 14-2014 Annex B fractional savings uncertainty"
    confidence: float
    n_baseline: int
    n_effective: float
    m_reporting: int
    rho: float
    t_stat: float
    cv_rmse: float  # fraction
    savings_fraction: float
    fractional_uncertainty: float  # dE_save / E_save, fraction

    def to_dict(self) -> dict:
        return asdict(self)

    def table_rows(self) -> list[str]:
        """Markdown rows of the terms (for bridge/tracking/report.py)."""
        return [f"| baseline CV(RMSE), n, n', rho, t | {self.cv_rmse:.1%}, {self.n_baseline}, {self.n_effective:.1f}, "
                f"{self.rho:.2f}, {self.t_stat:.2f} |"]


def fractional_savings_uncertainty(cv_rmse: float, savings_fraction: float, n_baseline: int, m_reporting: int,
                                   rho: float = 0.0, n_params: int = 1,
                                   confidence: float = 0.9) -> SavingsUncertainty:
    """Fractional savings uncertainty (Guideline 14-2014 Annex B, see module docstring).

    ``cv_rmse`` is the baseline model's CV(RMSE) as a fraction (0.12 for 12 %), ``savings_fraction``
    E_save / E_baseline over the reporting period, ``rho`` the lag-1 autocorrelation of the baseline
    model residuals. The result's ``fractional_uncertainty`` times the savings gives the +/- band.
    """
    if savings_fraction == 0:
        raise MetricsError("savings fraction is zero: the fractional uncertainty is undefined")
    if not 0 < confidence < 1:
        raise MetricsError(f"confidence must be between 0 and 1, got {confidence}")
    if n_baseline < 2 or m_reporting < 1:
        raise MetricsError(f"need n_baseline >= 2 and m_reporting >= 1, got {n_baseline}, {m_reporting}")
    n_eff = effective_points(n_baseline, rho)
    dof = n_eff - n_params
    if dof <= 0:
        raise TooFewIndependentPoints(
            f"n' - p = {dof:.2f} <= 0: the {n_baseline} baseline points, with lag-1 autocorrelation {rho:.2f} of "
            f"the residuals, count as n' = {n_eff:.1f} independent points, no more than the model's {n_params} "
            "parameters; an uncertainty needs more baseline data or a model with fewer parameters")
    from scipy import stats  # here: importing scipy.stats costs ~0.4 s, and the bridge imports this module at start-up

    t_stat = float(stats.t.ppf(0.5 + confidence / 2, dof))
    fsu = 1.26 * t_stat * cv_rmse * math.sqrt((n_baseline / n_eff) * (1 + 2 / n_eff) / m_reporting) / savings_fraction
    return SavingsUncertainty(confidence, n_baseline, n_eff, m_reporting, rho, t_stat, cv_rmse,
                              savings_fraction, abs(fsu))
