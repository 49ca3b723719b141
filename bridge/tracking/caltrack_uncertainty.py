"""Savings uncertainty of the CalTRACK methods: the half-width of the avoided energy's confidence interval (kWh).

**Daily and billing** (CalTRACK methods 2.0, 4.3.2.4: ASHRAE Guideline 14-2014 Annex B with the empirical factor
of Sun and Baltazar (2013) in place of Guideline 14's 1.26)::

    dU = t * (a M^2 + b M + d) * CV * sqrt( (P / P') * (1 + 2 / P') / Q ) * U_baseline,Q

    CV  = sqrt( sum_p (U_p - Uhat_p)^2 / (P - c) ) / Ubar          (4.3.2.2)
    P'  = P (1 - rho) / (1 + rho)

with P baseline periods (days or bills; U_p their metered kWh, Uhat_p the model's), c explanatory variables (not
counting the intercept: 0 to 2), Ubar the mean of U_p, rho the lag-1 autocorrelation of the residuals, t the
two-sided Student t at the confidence level with P - c degrees of freedom (4.3.2.4.2), M the months and Q the
periods of the reporting period, U_baseline,Q the adjusted baseline (predicted kWh) summed over the Q periods
(4.3.2.4.5: the savings fraction F is the savings over the predicted baseline use, so dU = FSU * U_save =
FSU * F * U_baseline,Q); (a, b, d) = (-0.00024, 0.03535, 1.00286) for daily and (-0.00022, 0.03306, 0.94054)
for billing data. As eemeter 2.10's ``metered_savings`` (the reference implementation, checked to 1e-9 kWh in
bench/bench_savings.py): rho is the Pearson correlation of consecutive residuals (pandas ``Series.autocorr``),
M = Q / 30 for daily data and the reporting span in days / 30, rounded, for billing data. Two differences, both
where eemeter departs from the spec: U_baseline,Q here is the predicted baseline of the reporting periods, where
eemeter multiplies by the baseline period's metered total P * Ubar (equal only when the two periods are alike:
eemeter's band grows as the reporting period shrinks); and Q for billing data is the number of bills compared
(eemeter: the span in days / 30, rounded).

**Hourly** (CalTRACK 2.0 gives no hourly formula; opendsm 1.x's ``HourlyCaltrackModel``, the reference
implementation: Guideline 14-2014 Annex B per calendar month k of the reporting period, the months combined in
quadrature)::

    dU_k = 1.26 * t * (RMSE_k / ybar_k) * sqrt( (n_k / n'_k) * (1 + 2 / n'_k) / m_k ) * U_baseline,k
    dU   = sqrt( sum_k dU_k^2 )

with n_k the baseline hours of month k, RMSE_k = sqrt(mean of their squared residuals) under month k's model
(fitted on months k-1, k, k+1 with weights 0.5, 1, 0.5, so no residual degrees of freedom of month k alone are
defined: no n - p correction, as opendsm), ybar_k their mean metered use, n'_k from the lag-1 autocorrelation of
those residuals, m_k the reporting hours of month k, t two-sided with m_k - 1 degrees of freedom (opendsm's
choice) and U_baseline,k the adjusted baseline of month k. When the whole-year model predicts (reporting
temperatures beyond the baseline's, CalTRACK 3.7.5.2) the whole year is one group. One difference from opendsm:
it multiplies by the metered reporting use, not the adjusted baseline, which makes its band narrower by the
savings fraction F; Annex B's F, like CalTRACK's 4.3.2.4.5, is the savings over the baseline use.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from bridge.tracking.guideline14 import (
    MetricsError,
    TooFewIndependentPoints,
    autocorrelation_residuals,
    effective_points,
)

#: Sun and Baltazar (2013) coefficients (a, b, d) of CalTRACK 2.0, 4.3.2.4.6, per data kind.
SUN_BALTAZAR = {"daily": (-0.00024, 0.03535, 1.00286), "billing": (-0.00022, 0.03306, 0.94054)}
GUIDELINE14_FACTOR = 1.26  # Annex B's approximation factor, used for hourly data


@dataclass(frozen=True)
class CaltrackUncertainty:
    """The half-width of a CalTRACK savings figure's confidence interval and the terms it came from."""

    formula: str
    confidence: float
    half_width_kwh: float
    fractional_uncertainty: float  # half-width / |avoided energy|
    terms: dict  # the formula's inputs (per month for hourly data)

    def to_dict(self) -> dict:
        return asdict(self)

    def table_rows(self) -> list[str]:
        """Markdown rows of the terms (for bridge/tracking/report.py)."""
        return [f"| {name} | {_fmt(value)} |" for name, value in self.terms.items() if not isinstance(value, dict)]


def _fmt(value) -> str:
    if not isinstance(value, float):
        return str(value)
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4g}"


def lag1_correlation(residuals: pd.Series | np.ndarray) -> float:
    """rho: the Pearson correlation of consecutive residuals (pandas ``Series.autocorr(1)``, as eemeter and
    opendsm estimate it); 0 when either side is constant (no correlation to measure)."""
    r = autocorrelation_residuals(residuals)
    a, b = r[1:] - r[1:].mean(), r[:-1] - r[:-1].mean()
    denominator = math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b)))
    return 0.0 if denominator == 0 else float(np.sum(a * b)) / denominator


def _effective_points(n: int, rho: float, where: str) -> float:
    """``effective_points``; TooFewIndependentPoints (no interval, a warning) when the residuals' Pearson lag-1
    correlation is +-1 (a trend, or alternating residuals), where n' = n (1 - rho) / (1 + rho) is 0 or unbounded."""
    if not -1 < rho < 1:
        raise TooFewIndependentPoints(f"{where}the {n} baseline residuals have lag-1 autocorrelation {rho:g}: their "
                                      "number of independent points n' = n (1 - rho) / (1 + rho) is not defined")
    return effective_points(n, rho)


def _t(confidence: float, dof: float) -> float:
    from scipy import stats  # here: importing scipy.stats costs ~0.4 s at start-up

    return float(stats.t.ppf(0.5 + confidence / 2, dof))


def _fraction(half_width: float, avoided_kwh: float) -> float:
    return half_width / abs(avoided_kwh)


def change_point_uncertainty(kind: str, measured_kwh: pd.Series, fitted_kwh: pd.Series, n_explanatory: int,
                             adjusted_kwh: pd.Series, avoided_kwh: float, months: float,
                             confidence: float = 0.9) -> CaltrackUncertainty:
    """Daily or billing ``kind``: CalTRACK 2.0 4.3.2.4 (module docstring). ``measured_kwh`` and ``fitted_kwh`` are
    the baseline periods' metered and modelled kWh, ``adjusted_kwh`` the predicted kWh of the Q reporting periods
    compared, ``months`` M."""
    if kind not in SUN_BALTAZAR:
        raise MetricsError(f"kind must be one of {sorted(SUN_BALTAZAR)}, got {kind!r}")
    both = pd.concat({"y": measured_kwh, "yhat": fitted_kwh}, axis=1, join="inner").dropna()
    residuals = (both["y"] - both["yhat"]).to_numpy(float)
    p, q = len(residuals), len(adjusted_kwh)
    dof = p - n_explanatory
    if dof < 1 or q < 1:
        raise TooFewIndependentPoints(f"{p} baseline periods for {n_explanatory} explanatory variables and {q} "
                                      "reporting periods: no savings uncertainty")
    ybar = float(both["y"].mean())
    if ybar == 0:
        raise MetricsError("mean baseline use is zero: CV(RMSE) is undefined")
    cv = math.sqrt(float(np.sum(residuals ** 2)) / dof) / ybar
    rho = lag1_correlation(residuals)
    p_eff = _effective_points(p, rho, "")
    t = _t(confidence, dof)
    a, b, d = SUN_BALTAZAR[kind]
    factor = a * months ** 2 + b * months + d
    baseline = float(adjusted_kwh.sum())
    half = t * factor * cv * math.sqrt((p / p_eff) * (1 + 2 / p_eff) / q) * baseline
    return CaltrackUncertainty(
        f"CalTRACK 2.0 4.3.2.4 ({kind}): t (a M^2 + b M + d) CV sqrt((P/P')(1 + 2/P')/Q) U_baseline,Q",
        confidence, half, _fraction(half, avoided_kwh),
        {"P": p, "c": n_explanatory, "P'": p_eff, "rho": rho, "t": t, "cv_rmse": cv, "M": months,
         "sun_baltazar_factor": factor, "Q": q, "adjusted_baseline_kwh": baseline})


def hourly_uncertainty(groups: dict[str, tuple[pd.Series, pd.Series, pd.Series]], avoided_kwh: float,
                       confidence: float = 0.9) -> CaltrackUncertainty:
    """Hourly: Guideline 14 Annex B per group, combined in quadrature (module docstring). ``groups`` maps a label
    (a month, or "all" for the whole-year model) to (baseline metered kWh, baseline modelled kWh, adjusted
    baseline kWh of the reporting hours compared), each an hourly series."""
    months, total = {}, 0.0
    for label, (measured, fitted, adjusted) in groups.items():
        both = pd.concat({"y": measured, "yhat": fitted}, axis=1, join="inner").dropna()
        residuals = (both["y"] - both["yhat"]).to_numpy(float)
        n, m = len(residuals), len(adjusted)
        if m < 2:
            raise TooFewIndependentPoints(f"{label}: {m} reporting hour(s), a t statistic needs 2")
        ybar = float(both["y"].mean()) if n else 0.0
        if ybar == 0:
            raise MetricsError(f"{label}: no baseline use to scale the uncertainty by")
        rho = lag1_correlation(residuals)
        n_eff = _effective_points(n, rho, f"{label}: ")
        cv = math.sqrt(float(np.mean(residuals ** 2))) / ybar
        t = _t(confidence, m - 1)
        half = GUIDELINE14_FACTOR * t * cv * math.sqrt((n / n_eff) * (1 + 2 / n_eff) / m) * float(adjusted.sum())
        months[label] = {"n": n, "n'": n_eff, "rho": rho, "cv_rmse": cv, "m": m, "t": t,
                         "adjusted_baseline_kwh": float(adjusted.sum()), "half_width_kwh": half}
        total += half ** 2
    half = math.sqrt(total)
    return CaltrackUncertainty(
        "Guideline 14-2014 Annex B per calendar month (opendsm's hourly): 1.26 t CV sqrt((n/n')(1 + 2/n')/m) "
        "U_baseline, months in quadrature", confidence, half, _fraction(half, avoided_kwh),
        {"groups": len(months), "months": months})
