"""Evaluation metrics and feature construction on hand-computable series (no EnergyPlus)."""

import numpy as np
import pandas as pd
import pytest

from bridge.twin.evaluate import Forecasts, error_shares, metrics
from bridge.twin.features import FeatureError, FeatureSet, reference_holidays, time_features


def test_metrics_match_hand_computation():
    actual = np.array([10.0, 20.0, 30.0, 40.0])
    mean = np.array([12.0, 18.0, 30.0, 44.0])
    std = np.array([1.0, 1.0, 1.0, 1.0])
    result = metrics(actual, mean, std)
    rmse = np.sqrt((4 + 4 + 0 + 16) / 4)  # errors 2, -2, 0, 4
    assert result["rmse"] == pytest.approx(rmse)
    assert result["mae"] == pytest.approx(2.0)
    assert result["accuracy_mean"] == pytest.approx(1 - rmse / 25.0)
    assert result["accuracy_range"] == pytest.approx(1 - rmse / 30.0)
    assert result["coverage95"] == pytest.approx(0.25)  # only |0| <= 1.96


def test_error_shares_match_hand_computation():
    actual = np.array([[10.0, 20.0], [30.0, 40.0]])
    forecasts = Forecasts(np.zeros((2, 2)), actual, actual + [[2.0, -2.0], [0.0, 4.0]], np.ones((2, 2)))
    shares = error_shares(forecasts, np.array([["day", "night"], ["day", "night"]]))
    assert shares["day"] == pytest.approx({"rmse": np.sqrt(4 / 2), "mse_share": 4 / 24, "rows_share": 0.5})
    assert shares["night"] == pytest.approx({"rmse": np.sqrt(20 / 2), "mse_share": 20 / 24, "rows_share": 0.5})
    with pytest.raises(ValueError, match="shape"):
        error_shares(forecasts, np.array(["day", "night"]))


def test_lags_and_time_features():
    index = pd.date_range("2025-07-04 23:40", periods=4, freq="10min")  # Friday, a holiday
    frame = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "u": [5.0, 6.0, 7.0, 8.0], "w": [0.0] * 4}, index=index)
    features = FeatureSet("y", ("u",), ("w",), output_lags=2, input_lags=1, holidays=reference_holidays(2025))
    table = features.features(frame)
    assert list(table["y[t-1]"].iloc[2:]) == [2.0, 3.0]
    assert list(table["y[t-2]"].iloc[2:]) == [1.0, 2.0]
    assert list(table["u[t-1]"].iloc[1:]) == [5.0, 6.0, 7.0]
    # the 00:00 row covers 23:50-00:00 of the holiday; 00:10 is a Saturday
    assert list(table["workday"]) == [0.0, 0.0, 0.0, 0.0]
    assert list(table["saturday"]) == [0.0, 0.0, 0.0, 1.0]
    X, y = features.design(frame)
    assert len(X) == 2 and list(y) == [3.0, 4.0]


def test_missing_tag_is_named():
    frame = pd.DataFrame({"y": [1.0, 2.0]}, index=pd.date_range("2025-07-01", periods=2, freq="10min"))
    with pytest.raises(FeatureError, match="OutdoorTemp"):
        FeatureSet("y", (), ("OutdoorTemp",)).design(frame)


def test_time_of_day_is_periodic():
    index = pd.date_range("2025-07-01 00:05", periods=3, freq="12h")
    flags = time_features(index)
    assert flags["tod_sin"].iloc[0] == pytest.approx(flags["tod_sin"].iloc[2])


def test_lag_step_spaces_input_and_disturbance_lags():
    index = pd.date_range("2025-07-01", periods=5, freq="10min")
    frame = pd.DataFrame({"y": np.arange(5.0), "u": np.arange(10.0, 15.0), "w": np.arange(20.0, 25.0)}, index=index)
    features = FeatureSet("y", ("u",), ("w",), output_lags=1, input_lags=1, disturbance_lags=2, lag_step=2)
    assert features.max_lag == 4
    table = features.features(frame)
    assert table["u[t-2]"].iloc[4] == 12.0 and table["w[t-4]"].iloc[4] == 20.0 and table["y[t-1]"].iloc[4] == 3.0
    assert len(features.design(frame)[0]) == 1


def test_excitation_keeps_the_building_schedule():
    """Occupied setpoints vary within comfort bands; nights, Sundays and holidays hold the model's setbacks."""
    import dataclasses
    import datetime as dt

    from bridge.config import load_config
    from bridge.twin.collect import ExcitationController

    config = load_config(__import__("pathlib").Path(__file__).resolve().parents[1] / "sims/large_office.toml")
    period = dataclasses.replace(config.period, start=dt.date(2025, 7, 1), end=dt.date(2025, 7, 14))
    schedule = ExcitationController(config.buildings[0].tagmap, seed=3).schedule(period)
    hour, weekday = schedule.index.hour, schedule.index.day_of_week
    occupied = ((weekday < 5) & (hour >= 6) & (hour < 22)) | ((weekday == 5) & (hour >= 6) & (hour < 18))
    occupied &= schedule.index.normalize() != "2025-07-04"
    night = schedule[~occupied]
    assert (night["CoolingSetpoint"] == 26.7).all() and (night["HeatingSetpoint"] == 15.6).all()
    assert (night["SupplyAirTempSetpoint"] == 12.8).all() and (night["ChilledWaterSetpoint"] == 6.7).all()
    day = schedule[occupied]
    assert day["CoolingSetpoint"].between(22, 26).all() and day["CoolingSetpoint"].nunique() > 10
    assert day["SupplyAirTempSetpoint"].between(11, 15).all()
    assert day["ChilledWaterSetpoint"].between(5.5, 9).all()
    assert (day["HeatingSetpoint"] <= day["CoolingSetpoint"] - 1).all()


@pytest.mark.parametrize("day, holiday", [("2026-01-01", True), ("2026-11-26", True), ("2026-07-03", False)])
def test_reference_holidays_follow_the_years_of_the_rows(day, holiday, tmp_path):
    """A model fitted on July 2025 treats the reference holidays of 2026 as holidays, also after save/load."""
    from bridge.twin.gp import GPModel, TwinModel
    from bridge.twin.persist import load_model, save_model

    assert (day in reference_holidays(2026)) == holiday  # New Year, Thanksgiving; 3 July is a Friday
    rng = np.random.default_rng(0)
    index = pd.date_range("2025-07-01", periods=200, freq="10min")
    history = pd.DataFrame({"y": rng.normal(size=200), "w": rng.normal(size=200)}, index=index)
    features = FeatureSet("y", (), ("w",), reference_holidays=True)
    twin = TwinModel({"y": GPModel(features, n_hyper=50, max_iter=5, calibrate=False).fit(history)})
    loaded = load_model(save_model(twin, tmp_path / "model.npz")).models["y"].features
    serving = pd.DataFrame({"y": 0.0, "w": 0.0}, index=pd.date_range(f"{day} 12:00", periods=2, freq="10min"))
    for rule in (features, loaded):
        assert list(rule.features(serving)["workday"]) == [float(not holiday)] * 2
        assert rule.is_holiday(pd.Timestamp(day).date()) == holiday


def test_old_feature_sets_keep_their_holiday_list():
    """Without the rule (model files written before it) only the listed dates are holidays."""
    features = FeatureSet("y", (), ("w",), holidays=reference_holidays(2025))
    assert features.is_holiday(pd.Timestamp("2025-01-01").date())
    assert not features.is_holiday(pd.Timestamp("2026-01-01").date())


def test_gap_makes_lags_reaching_into_it_incomplete():
    index = pd.date_range("2025-07-01 00:10", periods=8, freq="10min").delete(4)  # 00:50 missing
    frame = pd.DataFrame({"y": np.arange(7.0), "u": np.arange(10.0, 17.0), "w": 0.0}, index=index)
    features = FeatureSet("y", ("u",), ("w",), output_lags=1, input_lags=1)
    table = features.features(frame)
    assert list(table.index) == list(index)
    assert np.isnan(table.loc["2025-07-01 01:00", "y[t-1]"]) and np.isnan(table.loc["2025-07-01 01:00", "u[t-1]"])
    assert table.loc["2025-07-01 01:10", "u[t-1]"] == 14.0
    X, y = features.design(frame)
    assert list(y) == [1.0, 2.0, 3.0, 5.0, 6.0]  # not the first row, nor the one after the gap
    assert table["tod_sin"].to_numpy() == pytest.approx(time_features(index)["tod_sin"].to_numpy())


@pytest.mark.parametrize("times, message", [
    (["00:10", "00:20", "00:20", "00:30"], r"2025-07-01 00:20:00 is duplicated"),
    (["00:10", "00:20", "00:30", "00:15"], r"2025-07-01 00:15:00 is earlier"),
    (["00:10", "00:20", "00:30", "00:45"], r"2025-07-01 00:45:00 is off the grid of 0 days 00:10:00")])
def test_irregular_timestamps_are_refused_naming_the_time(times, message):
    index = pd.DatetimeIndex([f"2025-07-01 {t}" for t in times])
    frame = pd.DataFrame({"y": 1.0, "w": 0.0}, index=index)
    with pytest.raises(FeatureError, match=message):
        FeatureSet("y", (), ("w",), output_lags=1).design(frame)


def test_non_numeric_value_is_named_with_column_and_time():
    index = pd.date_range("2025-07-01", periods=4, freq="10min")
    frame = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "w": [0.0, 1.0, "n/a", 3.0]}, index=index)
    with pytest.raises(FeatureError, match=r"column 'w' holds 'n/a' at 2025-07-01 00:20:00"):
        FeatureSet("y", (), ("w",)).design(frame)
    frame = pd.DataFrame({"y": [1.0, "bad", 3.0, 4.0], "w": 0.0}, index=index)
    with pytest.raises(FeatureError, match=r"column 'y' holds 'bad' at 2025-07-01 00:10:00"):
        FeatureSet("y", (), ("w",)).design(frame)
