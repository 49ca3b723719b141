"""ASHRAE Guideline 14-2014 metrics against values computed by hand."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from bridge.cli import main
from bridge.tracking.guideline14 import (MetricsError, calibration, cv_rmse_pct, effective_points,
                                         fractional_savings_uncertainty, lag1_autocorrelation, nmbe_pct)

INDEX = pd.date_range("2025-01-01", periods=4, freq="h")
MEASURED = pd.Series([10.0, 12.0, 14.0, 16.0], INDEX)


def test_cv_rmse_and_nmbe_use_n_minus_p():
    predicted = pd.Series([9.0, 11.0, 13.0, 15.0], INDEX)  # every residual y - yhat = +1
    # sum of squares 4, n - p = 3, mean 13
    assert cv_rmse_pct(MEASURED, predicted) == pytest.approx(100 * math.sqrt(4 / 3) / 13)
    assert nmbe_pct(MEASURED, predicted) == pytest.approx(100 * 4 / (3 * 13))  # 10.256 %: under-prediction > 0
    assert cv_rmse_pct(MEASURED, predicted, n_params=0) == pytest.approx(100 * math.sqrt(4 / 4) / 13)


def test_unbiased_model_has_zero_nmbe():
    predicted = pd.Series([11.0, 11.0, 15.0, 15.0], INDEX)
    assert nmbe_pct(MEASURED, predicted) == pytest.approx(0.0)
    assert cv_rmse_pct(MEASURED, predicted) == pytest.approx(100 * math.sqrt(4 / 3) / 13)


def test_hourly_calibration_sums_steps_and_checks_limits():
    index = pd.date_range("2025-01-01 00:00", periods=24 * 6, freq="10min")
    measured = pd.Series(1.0, index)
    good = calibration(measured, measured * 1.02, "hourly")
    assert good.n == 24 and good.passes
    assert good.nmbe_pct == pytest.approx(100 * (-0.02 * 6 * 24) / (23 * 6), rel=1e-9)
    bad = calibration(measured, measured * 1.2, "hourly")
    assert not bad.passes and bad.nmbe_pct < -10


def test_monthly_limits_are_stricter_than_hourly():
    index = pd.date_range("2025-01-01", "2025-12-31 23:00", freq="h")
    measured = pd.Series(1.0, index)
    result = calibration(measured, measured * 1.07, "monthly")  # NMBE about -7.6 % with n - p = 11
    assert result.n == 12 and result.nmbe_pct == pytest.approx(-100 * 0.07 * 12 / 11)
    assert not result.passes
    assert calibration(measured, measured * 1.07, "hourly").passes


def test_periods_missing_samples_are_left_out_and_counted():
    # 10-minute energy of a perfect model over July-September; the meter loses 4 of the 6 samples of every
    # hour 10-16 h on July days. Summed as if whole, those hours (and July) would show a false bias.
    index = pd.date_range("2025-07-01", "2025-09-30 23:50", freq="10min")
    predicted = pd.Series(8.0 + np.sin(np.arange(len(index)) / 20), index)
    gap = (index.month == 7) & (index.hour >= 10) & (index.hour < 16) & (index.minute % 30 != 0)
    measured = predicted[~gap]
    monthly = calibration(measured, predicted, "monthly")
    assert monthly.cv_rmse_pct == pytest.approx(0.0) and monthly.nmbe_pct == pytest.approx(0.0) and monthly.passes
    assert (monthly.n, monthly.incomplete_periods, monthly.start) == (2, 1, "2025-08-01 00:00:00")
    hourly = calibration(measured, predicted, "hourly")
    assert hourly.cv_rmse_pct == pytest.approx(0.0)
    assert (hourly.n, hourly.incomplete_periods) == (92 * 24 - 31 * 6, 31 * 6)
    with pytest.raises(MetricsError, match="no complete monthly periods"):
        calibration(measured[measured.index.month == 7], predicted, "monthly")


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(MetricsError, match="granularity"):
        calibration(MEASURED, MEASURED, "daily")
    with pytest.raises(MetricsError, match="no timestamps"):
        cv_rmse_pct(MEASURED, pd.Series([1.0], pd.DatetimeIndex(["2030-01-01"])))
    with pytest.raises(MetricsError, match="parameters"):
        cv_rmse_pct(MEASURED, MEASURED, n_params=4)


def test_fractional_savings_uncertainty_by_hand():
    # cv 10 %, savings 20 %, n = 100 baseline, m = 50 reporting, no autocorrelation, 90 % confidence:
    # t(0.95, 99) = 1.6604; 1.26 * 1.6604 * 0.1 * sqrt(1 * (1 + 2/100) / 50) / 0.2 = 0.14941
    u = fractional_savings_uncertainty(0.10, 0.20, 100, 50, rho=0.0, confidence=0.9)
    assert u.t_stat == pytest.approx(1.6604, abs=1e-4)
    assert u.fractional_uncertainty == pytest.approx(0.14941, abs=2e-4)


def test_autocorrelation_reduces_effective_points():
    assert effective_points(100, 0.5) == pytest.approx(100 * 0.5 / 1.5)
    correlated = fractional_savings_uncertainty(0.10, 0.20, 100, 50, rho=0.5)
    independent = fractional_savings_uncertainty(0.10, 0.20, 100, 50, rho=0.0)
    assert correlated.n_effective == pytest.approx(33.333, abs=1e-3)
    assert correlated.fractional_uncertainty > independent.fractional_uncertainty
    assert lag1_autocorrelation([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]) == pytest.approx(-5 / 6)


def test_mv_calibrate_fails_when_a_granularity_cannot_be_computed(tmp_path):
    three_days = pd.date_range("2025-07-22 00:10", periods=3 * 144, freq="10min")  # no whole month
    run = pd.DataFrame({"FacilityPower": 50 + np.sin(np.arange(len(three_days)) / 20)},
                       index=pd.Index(three_days, name="time"))
    run.to_csv(tmp_path / "meter.csv")
    run.to_csv(tmp_path / "model.csv")
    run.shift(freq="30D").to_csv(tmp_path / "other_month.csv")

    def calibrate(predicted: str) -> tuple[int, dict]:
        code = main(["mv", "calibrate", "--measured", str(tmp_path / "meter.csv"), "--predicted",
                     str(tmp_path / predicted), "--json", str(tmp_path / "g14.json")])
        return code, json.loads((tmp_path / "g14.json").read_text())

    code, results = calibrate("model.csv")  # hourly passes, monthly has no complete month
    assert results["hourly"]["passes"] and "no complete monthly periods" in results["monthly"]["error"]
    assert code == 1 and results["monthly"]["passes"] is False
    code, results = calibrate("other_month.csv")  # nothing shared: nothing computed
    assert code == 1 and all("error" in r and r["passes"] is False for r in results.values())
