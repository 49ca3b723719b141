"""The rolling Guideline 14 calibration view against hand-computed figures; its log rows and report line."""

import asyncio
import datetime as dt
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.cli import main
from bridge.tracking.anomalies import AnomalyLog
from bridge.tracking.calibration import CalibrationView, RollingCalibration, guideline14_hourly_pass
from bridge.tracking.config import TrackingConfigError, load_tracking_config
from bridge.tracking.guideline14 import cv_rmse_pct, nmbe_pct
from test_tracking_attach import tracking_file

START = dt.datetime(2025, 7, 22)
STEP = dt.timedelta(minutes=10)


def feed_hours(calibration: RollingCalibration, hours: list[list[tuple[float, float | None]]],
               first_hour: int = 0) -> list[CalibrationView]:
    """Feed (twin, live) 10-minute steps hour by hour, then the first step of the next hour (closing the last);
    return the views of the completed hours."""
    views = []
    for h, steps in enumerate(hours, first_hour):
        for i, (predicted, actual) in enumerate(steps):
            view = calibration.update(START + dt.timedelta(hours=h) + STEP * (i + 1), predicted, actual, STEP)
            views += [view] if view else []
    closing = START + dt.timedelta(hours=first_hour + len(hours)) + STEP
    view = calibration.update(closing, 1.0, 1.0, STEP)
    return views + ([view] if view else [])


def constant_hour(predicted: float, actual: float) -> list[tuple[float, float]]:
    return [(predicted, actual)] * 6


def test_hourly_figures_match_guideline14_by_hand():
    # Live hourly means 10, 20, 30 (the first from steps 8/12 alternating), twin 12, 18, 33.
    first = [(12.0, 8.0), (12.0, 12.0)] * 3
    views = feed_hours(RollingCalibration("P", window_h=168, min_hours=2),
                       [first, constant_hour(18, 20), constant_hour(33, 30)])
    assert [v.hours_in_window for v in views] == [1, 2, 3]
    assert [v.time for v in views] == [START + dt.timedelta(hours=h) for h in (1, 2, 3)]
    assert math.isnan(views[0].cv_rmse_pct) and not views[0].passes and "1 of the 2 hours" in views[0].reason
    # Two hours: errors y - yhat = -2, 2; n - p = 1; ybar = 15.
    assert views[1].cv_rmse_pct == pytest.approx(100 * math.sqrt(8 / 1) / 15)
    assert views[1].nmbe_pct == pytest.approx(0.0)
    # Three hours: errors -2, 2, -3; sum of squares 17, n - p = 2, ybar = 20: CV 14.58 %, NMBE -7.5 %.
    assert views[2].cv_rmse_pct == pytest.approx(100 * math.sqrt(17 / 2) / 20)
    assert views[2].nmbe_pct == pytest.approx(-7.5)
    assert views[2].passes and views[2].incomplete_hours == 0


def test_window_evicts_hours_older_than_the_window():
    calibration = RollingCalibration("P", window_h=2, min_hours=2)
    views = feed_hours(calibration, [constant_hour(12, 10), constant_hour(18, 20), constant_hour(33, 30)])
    # The window holds hours 2 and 3 only: errors 2, -3; n - p = 1; ybar = 25.
    assert views[-1].hours_in_window == 2
    assert views[-1].cv_rmse_pct == pytest.approx(100 * math.sqrt(13) / 25)
    assert views[-1].nmbe_pct == pytest.approx(100 * -1 / 25)
    assert sorted(calibration.hours) == [START + dt.timedelta(hours=1), START + dt.timedelta(hours=2)]


def test_window_is_clock_time_so_missing_hours_leave_holes():
    calibration = RollingCalibration("P", window_h=3, min_hours=2)
    feed_hours(calibration, [constant_hour(10, 11), constant_hour(10, 9)])
    views = feed_hours(calibration, [constant_hour(10, 12)], first_hour=4)  # no step at all in hours 2 and 3
    # At the end of hour 4 the window is hours 2-4: hours 0 and 1 are gone, only hour 4 is left.
    assert views[-1].time == START + dt.timedelta(hours=5)
    assert views[-1].hours_in_window == 1 and math.isnan(views[-1].cv_rmse_pct)


def test_an_hour_counts_with_at_least_the_coverage_of_compared_steps():
    # 80 %: with 10-minute steps 5 of 6 (83 %) counts, 4 of 6 (67 %) does not.
    five = [(10.0, 12.0)] * 5 + [(10.0, None)]
    four = [(10.0, 50.0)] * 4 + [(10.0, None), (10.0, float("nan"))]
    views = feed_hours(RollingCalibration("P", window_h=168, min_hours=2, min_coverage_pct=80),
                       [five, four, constant_hour(10, 8)])
    assert [(v.hours_in_window, v.incomplete_hours) for v in views] == [(1, 0), (1, 1), (2, 1)]
    # The counted hours: 12 vs 10 (the mean of its five compared steps), 8 vs 10.
    assert views[-1].cv_rmse_pct == pytest.approx(100 * math.sqrt(8) / 10)
    strict = feed_hours(RollingCalibration("P", window_h=168, min_hours=2, min_coverage_pct=100), [five])
    assert (strict[0].hours_in_window, strict[0].incomplete_hours) == (0, 1)


def test_pass_is_guideline14_hourly_limits():
    assert guideline14_hourly_pass(30.0, 10.0) and guideline14_hourly_pass(30.0, -10.0)
    assert not guideline14_hourly_pass(30.01, 0.0) and not guideline14_hourly_pass(0.0, -10.01)
    # Errors 2, 2 on ybar 10: CV 28.3 % but NMBE 40 %: fails.
    view = feed_hours(RollingCalibration("P", window_h=168, min_hours=2), [constant_hour(8, 10)] * 2)[-1]
    assert view.cv_rmse_pct == pytest.approx(100 * math.sqrt(8) / 10) and view.nmbe_pct == pytest.approx(40.0)
    assert not view.passes


def test_zero_mean_live_value_gives_no_figures_and_says_why():
    view = feed_hours(RollingCalibration("P", window_h=168, min_hours=2), [constant_hour(1, 0)] * 2)[-1]
    assert view.hours_in_window == 2 and math.isnan(view.cv_rmse_pct) and not view.passes
    assert "mean measured value is zero" in view.reason


def test_time_going_back_restarts_the_window():
    calibration = RollingCalibration("P", window_h=168, min_hours=2)
    feed_hours(calibration, [constant_hour(10, 11)] * 3)
    views = feed_hours(calibration, [constant_hour(10, 10)])  # a new run from the start
    assert views[-1].hours_in_window == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 1000), st.floats(1, 1000)), min_size=2, max_size=30),
       st.integers(2, 30))
def test_rolling_figures_equal_guideline14_on_the_windows_hours(hours, window_h):
    """Constant hours: the view equals guideline14's CV(RMSE) and NMBE of the last window_h hours."""
    import pandas as pd

    views = feed_hours(RollingCalibration("P", window_h=window_h, min_hours=2),
                       [constant_hour(p, a) for p, a in hours])
    last = hours[-window_h:]
    assert views[-1].hours_in_window == len(last)
    if len(last) < 2:
        return
    predicted, actual = pd.Series([p for p, _ in last]), pd.Series([a for _, a in last])
    assert views[-1].cv_rmse_pct == pytest.approx(cv_rmse_pct(actual, predicted, 1))
    assert views[-1].nmbe_pct == pytest.approx(nmbe_pct(actual, predicted, 1))


def test_anomaly_log_keeps_views_and_track_anomalies_reports_the_latest(tmp_path, capsys):
    db = tmp_path / "anomalies.sqlite"
    views = feed_hours(RollingCalibration("FacilityPower", window_h=168, min_hours=2),
                       [constant_hour(12, 10), constant_hour(18, 20), constant_hour(33, 30)])
    log = AnomalyLog(db)
    for view in views:
        asyncio.run(log.publish_calibration(view))
    assert log.latest_calibration() == [views[-1]]
    assert main(["track", "anomalies", str(db)]) == 0
    out = capsys.readouterr().out
    assert "latest calibration view" in out
    assert ("2025-07-22 03:00:00 FacilityPower: hourly CV(RMSE) 14.6 %, NMBE -7.5 %, 3 h in the 168 h window "
            "(0 incomplete left out), passes Guideline 14") in out


def test_tracking_file_takes_and_checks_the_calibration_keys(tmp_path):
    path = Path(tracking_file(tmp_path, "opc.tcp://127.0.0.1:1"))
    text = path.read_text()
    config = load_tracking_config(path)
    assert (config.calibration_window_h, config.calibration_min_hours, config.calibration_min_coverage_pct) == (168, 24, 80)
    path.write_text(text.replace("stale_after_s = 60", "stale_after_s = 60\ncalibration_window_h = 48\n"
                                 "calibration_min_hours = 12\ncalibration_min_coverage_pct = 100"))
    config = load_tracking_config(path)
    assert (config.calibration_window_h, config.calibration_min_hours, config.calibration_min_coverage_pct) == (48, 12, 100)
    for bad, message in (("calibration_window_h = 12", "calibration minimum hours must be in 2 .. 12 (the window), got 24"),
                         ("calibration_min_hours = 1", "calibration minimum hours must be in 2 .. 168"),
                         ("calibration_min_coverage_pct = 0", "coverage must be in (0, 100]"),
                         ("calibration_window_h = 24.5", "'calibration_window_h' must be an integer")):
        path.write_text(text.replace("stale_after_s = 60", f"stale_after_s = 60\n{bad}"))
        with pytest.raises(TrackingConfigError) as error:
            load_tracking_config(path)
        assert str(error.value).startswith(f"{path}: [tracking]: ") and message in str(error.value)


def test_tracking_file_takes_and_checks_the_spin_up(tmp_path):
    path = Path(tracking_file(tmp_path, "opc.tcp://127.0.0.1:1"))
    text = path.read_text()
    assert load_tracking_config(path).spin_up_h == 0.0
    path.write_text(text.replace("stale_after_s = 60", "stale_after_s = 60\nspin_up_h = 72"))
    assert load_tracking_config(path).spin_up_h == 72.0
    for bad, message in (("spin_up_h = -1", "spin_up_h must be a number of hours >= 0, got -1"),
                         ("spin_up_h = inf", "'spin_up_h' must be a finite number, got inf"),
                         ('spin_up_h = "3 days"', "'spin_up_h' must be a number")):
        path.write_text(text.replace("stale_after_s = 60", f"stale_after_s = 60\n{bad}"))
        with pytest.raises(TrackingConfigError) as error:
            load_tracking_config(path)
        assert str(error.value).startswith(f"{path}: [tracking]: ") and message in str(error.value)
