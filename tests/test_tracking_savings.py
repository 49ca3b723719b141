"""Savings and their uncertainty on synthetic data, checked by hand."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from bridge.cli import main
from bridge.tracking.report import write_report
from bridge.tracking.savings import (BaselineFit, SavingsError, TowtModel, avoided_energy, hourly_energy_kwh,
                                     simulated_baseline)


def test_avoided_energy_is_adjusted_baseline_minus_measured(tmp_path):
    index = pd.date_range("2025-08-01", periods=10, freq="h")
    result = avoided_energy(pd.Series(10.0, index), pd.Series(8.0, index), "synthetic")
    assert result.adjusted_baseline_kwh == 100 and result.measured_kwh == 80
    assert result.avoided_kwh == 20 and result.savings_fraction == pytest.approx(0.2)
    assert result.series["cumulative_avoided_kwh"].iloc[-1] == 20
    assert result.uncertainty is None
    paths = write_report(result, tmp_path, extra={"calibration": {"hourly": {"cv_rmse_pct": 10}}})
    assert all(p.is_file() for p in paths.values())
    assert "avoided energy | 20.0 kWh" in paths["markdown"].read_text()


def test_hours_missing_meter_samples_give_no_false_savings(tmp_path):
    # Meter = model at every 10-minute step, but the meter loses 4 of 6 samples 10-16 h on July days.
    index = pd.date_range("2025-07-01 00:10", "2025-09-01 00:00", freq="10min")
    run = pd.DataFrame({"FacilityPower": 50 + 10 * np.sin(np.arange(len(index)) / 20)}, index=index)
    gap = (index.month == 7) & (index.hour >= 10) & (index.hour < 16) & (index.minute % 30 != 0)
    measured = hourly_energy_kwh(run[~gap], "FacilityPower")
    result = avoided_energy(simulated_baseline(run, "FacilityPower"), measured, "simulation")
    assert result.avoided_kwh == pytest.approx(0.0, abs=1e-6)  # 6,126 kWh when partial hours were summed
    assert result.incomplete_periods == 31 * 6 and len(result.series) == 62 * 24 - 31 * 6
    assert result.summary()["incomplete_periods"] == 186
    assert "186 left out as incomplete" in write_report(result, tmp_path)["markdown"].read_text()
    with pytest.raises(SavingsError, match="no complete periods"):
        avoided_energy(simulated_baseline(run, "FacilityPower"), measured * np.nan, "simulation")


def test_uncertainty_uses_the_baseline_fit():
    index = pd.date_range("2025-08-01", periods=50, freq="h")
    fit = BaselineFit(cv_rmse_pct=10.0, rho=0.0, n=100, n_params=1)
    result = avoided_energy(pd.Series(10.0, index), pd.Series(8.0, index), "synthetic", fit, confidence=0.9)
    # same numbers as the hand computation in test_tracking_guideline14: 14.94 % of 100 kWh
    assert result.uncertainty.fractional_uncertainty == pytest.approx(0.14941, abs=2e-4)
    assert result.avoided_uncertainty_kwh == pytest.approx(14.941, abs=0.02)


def test_savings_are_reported_without_uncertainty_when_n_eff_does_not_exceed_the_parameters(tmp_path):
    # hourly TOWT: 172 parameters; 672 baseline hours with rho = 0.9 are n' = 35.4 independent points
    index = pd.date_range("2025-08-01", periods=50, freq="h")
    fit = BaselineFit(cv_rmse_pct=10.0, rho=0.9, n=672, n_params=172)
    result = avoided_energy(pd.Series(10.0, index), pd.Series(8.0, index), "towt", fit)
    assert result.avoided_kwh == 100 and result.uncertainty is None and result.avoided_uncertainty_kwh is None
    assert "n' - p = -136.63 <= 0" in result.uncertainty_warning and "172 parameters" in result.uncertainty_warning
    assert result.summary()["uncertainty_warning"] == result.uncertainty_warning
    assert f"**Warning**: {result.uncertainty_warning}" in write_report(result, tmp_path)["markdown"].read_text()


def test_mv_report_towt_prints_the_uncertainty_warning(tmp_path, capsys):
    hours = pd.date_range("2025-06-02 01:00", periods=24 * 21, freq="h")  # end-stamped hourly power
    rng = np.random.default_rng(1)
    temperature = 22 + 6 * np.sin(2 * np.pi * (hours.hour - 9) / 24) + 3 * np.sin(np.arange(len(hours)) / 100)
    power = 40 + 2 * np.maximum(temperature - 18, 0) + np.cumsum(rng.normal(0, 1, len(hours)))  # random-walk noise
    frame = pd.DataFrame({"FacilityPower": power, "OutdoorTemp": temperature}, index=pd.Index(hours, name="time"))
    frame[:24 * 14].to_csv(tmp_path / "pre.csv")
    (frame[24 * 14:] * [0.9, 1.0]).to_csv(tmp_path / "post.csv")
    code = main(["mv", "report", "--method", "towt", "--baseline-measured", str(tmp_path / "pre.csv"),
                 "--measured", str(tmp_path / "post.csv"), "--out", str(tmp_path / "report")])
    printed = capsys.readouterr()
    assert code == 0 and json.loads(printed.out)["avoided_uncertainty_kwh"] is None
    assert "warning: savings uncertainty not computed: n' - p =" in printed.err
    assert json.loads((tmp_path / "report" / "savings.json").read_text())["uncertainty_warning"].startswith("savings")


def test_simulated_baseline_converts_power_to_hourly_energy():
    index = pd.date_range("2025-08-01 00:10", periods=12, freq="10min")  # end-of-step stamps, two hours
    run = pd.DataFrame({"FacilityPower": [6.0] * 6 + [12.0] * 6}, index=index)
    hourly = simulated_baseline(run, "FacilityPower")
    assert list(hourly) == [pytest.approx(6.0), pytest.approx(12.0)]
    assert list(hourly.index.hour) == [0, 1]
    with pytest.raises(SavingsError, match="no column 'Nope'"):
        hourly_energy_kwh(run, "Nope")


def test_towt_recovers_a_change_point_load_and_the_savings():
    hours = pd.date_range("2025-06-01", periods=24 * 28, freq="h")
    rng = np.random.default_rng(3)
    temperature = pd.Series(22 + 8 * np.sin(np.arange(len(hours)) / 24 * 2 * np.pi) + rng.normal(0, 2, len(hours)),
                            hours)
    occupied = ((hours.day_of_week < 5) & (hours.hour >= 8) & (hours.hour < 18)).astype(float)
    energy = pd.Series(20 + 15 * occupied + 2.0 * np.maximum(temperature - 24, 0), hours)
    model = TowtModel(knots_c=[24.0]).fit(energy[: 24 * 21], temperature[: 24 * 21])
    assert model.fit_stats.cv_rmse_pct < 1e-6 and model.fit_stats.n_params == 170
    reporting = hours[24 * 21:]
    predicted = model.predict(temperature[reporting])
    assert np.allclose(predicted, energy[reporting])
    result = avoided_energy(predicted, energy[reporting] * 0.9, "towt", None)
    assert result.savings_fraction == pytest.approx(0.1)
    with pytest.raises(SavingsError, match="one week"):
        TowtModel().fit(energy[:100], temperature[:100])


def test_towt_refuses_to_predict_hour_of_week_slots_the_baseline_never_saw(caplog):
    hours = pd.date_range("2025-06-02", periods=24 * 10, freq="h")  # from a Monday: one Thursday only
    temperature = pd.Series(22 + 5 * np.sin(np.arange(len(hours)) / 4), hours)
    energy = 100.0 + 2 * temperature
    outage = (hours.day_of_week == 3) & (hours.hour >= 9) & (hours.hour < 15)  # meter outage Thu 09-15 h
    with caplog.at_level(logging.WARNING, logger="bridge.tracking.savings"):
        model = TowtModel().fit(energy[~outage], temperature[~outage])
    later_thursday = pd.date_range("2025-06-19 06:00", periods=12, freq="h")
    with pytest.raises(SavingsError, match="slots Thu 09:00, Thu 10:00, Thu 11:00, Thu 12:00, Thu 13:00, Thu 14:00,"):
        model.predict(pd.Series(22.0, later_thursday))  # predicted 44 kWh there instead of 144 before
    seen = later_thursday[(later_thursday.hour < 9) | (later_thursday.hour >= 15)]
    assert np.allclose(model.predict(pd.Series(22.0, seen)), 144.0)
    assert "6 hour-of-week slots (Thu 09:00, Thu 10:00, Thu 11:00, Thu 12:00, Thu 13:00, Thu 14:00)" in caplog.text


def test_mv_report_names_the_unseen_slots_without_a_traceback(tmp_path, capsys):
    hours = pd.date_range("2025-06-02 01:00", periods=24 * 10, freq="h")  # end-stamped: one Thursday
    frame = pd.DataFrame({"FacilityPower": 100.0, "OutdoorTemp": 22 + 5 * np.sin(np.arange(len(hours)) / 4)},
                         index=pd.Index(hours, name="time"))
    frame[~((hours.day_of_week == 3) & (hours.hour == 10))].to_csv(tmp_path / "pre.csv")  # Thu 09-10 h missing
    frame.shift(freq="14D").to_csv(tmp_path / "post.csv")
    code = main(["mv", "report", "--method", "towt", "--baseline-measured", str(tmp_path / "pre.csv"),
                 "--measured", str(tmp_path / "post.csv"), "--out", str(tmp_path / "report")])
    assert code == 2
    assert "error: TOWT baseline has no data for hour-of-week slots Thu 09:00," in capsys.readouterr().err
