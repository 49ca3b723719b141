"""The 90 % intervals of the CalTRACK methods against eemeter 2.10 and a hand computation."""

import math

import numpy as np
import pandas as pd
import pytest

from bridge.tracking.caltrack import caltrack_savings
from bridge.tracking.caltrack_uncertainty import change_point_uncertainty, hourly_uncertainty, lag1_correlation
from bridge.tracking.guideline14 import TooFewIndependentPoints
from tests.test_tracking_caltrack import daily_use, hourly_office, weather

# eemeter 2.10.11's metered_savings "FSU Error Band" on the data of ``synthetic()``, from
# bench/eemeter2_savings.py (daily: create_caltrack_daily_design_matrix; billing: calendar-month bills) run in
# /work/venv-eemeter2 on CSVs of these series (2026-12-05). Both fitted HDD(54 degF) + CDD(68 degF), as ours.
EEMETER_HALF_WIDTH_KWH = {"caltrack-daily": 202.65007676129198, "caltrack-billing": 173.08137693903095}


def synthetic(reporting_days: int = 365):
    base_t = weather("2025-01-01", 365)
    rep_t = weather("2026-01-01", 365, seed=5)
    rep = 0.9 * daily_use(rep_t, noise=6.0, seed=3)  # 10 % savings
    return daily_use(base_t, noise=6.0), base_t, rep.iloc[:reporting_days * 24], rep_t.iloc[:reporting_days * 24]


@pytest.mark.parametrize("method", ["caltrack-daily", "caltrack-billing"])
def test_daily_and_billing_intervals_are_eemeter_2_10s_scaled_to_the_adjusted_baseline(method):
    """eemeter multiplies the CalTRACK 2.0 4.3.2.4 terms by the baseline period's metered total, the spec (and
    ours) by the adjusted baseline of the reporting periods: every other term is the same, so ours is eemeter's
    times their ratio. The old formula (Guideline 14's 1.26 and n' - p degrees of freedom) gave 182.5 and 189.7 kWh."""
    base, base_t, rep, rep_t = synthetic()
    savings = caltrack_savings(method, base, base_t, rep, rep_t).savings
    expected = EEMETER_HALF_WIDTH_KWH[method] * savings.adjusted_baseline_kwh / base.sum()
    assert savings.avoided_uncertainty_kwh == pytest.approx(expected, rel=1e-9)
    assert savings.uncertainty.terms["P"] == (365 if method == "caltrack-daily" else 12)


def test_daily_interval_grows_with_the_reporting_period():
    """A sum over fewer reporting days is less uncertain (eemeter 2.10's band does the opposite: x P / Q)."""
    halves = [caltrack_savings("caltrack-daily", *synthetic(days)).savings.avoided_uncertainty_kwh
              for days in (30, 91, 365)]
    assert halves[0] < halves[1] < halves[2]
    assert halves[2] / halves[1] == pytest.approx(math.sqrt(365 / 91), rel=0.1)


def test_hourly_interval_by_hand():
    """One month: baseline residuals r = -1, 1, 0, 2, -2, 0 about a metered mean of 11 kWh; rho = Pearson correlation
    of (r_2..r_6) with (r_1..r_5) = -5 / sqrt(8.8 x 10) = -0.53300, n' = 6 (1 - rho) / (1 + rho) = 19.696,
    CV = sqrt(10 / 6) / 11 = 0.117363, t(0.95, m - 1 = 3) = 2.353363, adjusted baseline 4 x 10 kWh:
    1.26 x 2.353363 x 0.117363 x sqrt((6 / 19.696)(1 + 2 / 19.696) / 4) x 40 = 4.031886 kWh. Two such months
    combine in quadrature."""
    hours = pd.date_range("2025-01-01", periods=6, freq="h")
    measured = pd.Series([10, 12, 11, 13, 9, 11.0], hours)
    fitted = pd.Series(11.0, hours)
    adjusted = pd.Series(10.0, pd.date_range("2026-01-01", periods=4, freq="h"))
    assert lag1_correlation(measured - fitted) == pytest.approx(-5 / math.sqrt(88))
    one = hourly_uncertainty({"Jan": (measured, fitted, adjusted)}, avoided_kwh=8.0)
    assert one.half_width_kwh == pytest.approx(4.031886, abs=1e-6) and one.fractional_uncertainty == one.half_width_kwh / 8
    two = hourly_uncertainty({"Jan": (measured, fitted, adjusted), "Feb": (measured, fitted, adjusted)}, 16.0)
    assert two.half_width_kwh == pytest.approx(math.sqrt(2) * 4.031886, abs=1e-6)


def test_hourly_interval_uses_the_baseline_hours_of_each_reporting_month():
    """The February model is fitted on January to March (weights 0.5, 1, 0.5); its interval's terms come from the
    672 February hours alone (opendsm's ``_autocorr_unc_vars``), m from February 2026's."""
    temperature = weather("2025-01-01", 90)
    rng = np.random.default_rng(8)
    use = hourly_office(temperature) * (1 + rng.normal(0, 0.05, len(temperature)))
    reporting = weather("2026-01-01", 59, seed=2)["2026-02"]
    savings = caltrack_savings("caltrack-hourly", use, temperature, hourly_office(reporting, 0.7), reporting).savings
    month = savings.uncertainty.terms["months"]
    assert list(month) == ["Feb"] and month["Feb"]["n"] == 672 and month["Feb"]["m"] == 672
    feb = use["2025-02"]
    assert month["Feb"]["cv_rmse"] > 0.8 * 0.05 * math.sqrt(float(np.mean(feb ** 2))) / float(feb.mean())
    assert savings.avoided_uncertainty_kwh == pytest.approx(month["Feb"]["half_width_kwh"])


def test_lag1_correlation_is_pandas_autocorr():
    r = np.random.default_rng(4).normal(size=50).cumsum()
    assert lag1_correlation(r) == pytest.approx(pd.Series(r).autocorr(1), abs=1e-12)
    assert lag1_correlation(np.ones(5)) == 0.0


@pytest.mark.parametrize("residuals", [[1, 2, 3, 4, 5, 6.0], [1, -1, 1, -1, 1, -1.0]])
def test_residuals_correlated_plus_or_minus_one_give_no_interval_not_an_error(residuals):
    """A Pearson lag-1 correlation of exactly +-1 (a trend, alternating residuals) leaves n' undefined: too few
    independent points (caltrack_savings then reports the savings with a warning), not a MetricsError that fails
    the whole report."""
    hours = pd.date_range("2025-01-01", periods=6, freq="h")
    fitted = pd.Series(11.0, hours)
    measured = fitted + pd.Series(residuals, hours)
    adjusted = pd.Series(10.0, pd.date_range("2026-01-01", periods=4, freq="h"))
    with pytest.raises(TooFewIndependentPoints, match="Jan: the 6 baseline residuals have lag-1 autocorrelation"):
        hourly_uncertainty({"Jan": (measured, fitted, adjusted)}, avoided_kwh=8.0)
    with pytest.raises(TooFewIndependentPoints, match="lag-1 autocorrelation"):
        change_point_uncertainty("daily", measured, fitted, 1, adjusted, 8.0, months=1.0)
