"""regression_baseline (bridge/tracking/dr_baseline.py) on a small synthetic history with a hand-checkable answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bridge.tracking.dr_baseline import BaselineError, regression_baseline

STEP = pd.Timedelta(hours=1)
EVENT_DAY = pd.Timestamp("2025-06-11")  # a Wednesday
BEGIN, END, ENTRY = (EVENT_DAY + pd.Timedelta(hours=h) for h in (14, 17, 11))


def synthetic(first: str = "2025-06-01") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly measurements from ``first`` to the event day's entry: power = 100 + 2 x temperature kW on
    weekdays (+5 kW on the event day), 50 kW more on Jun 9 (an earlier event) and 300 kW less at weekends;
    temperature and humidity random. The forecast: 20 degC, 50 % after entry."""
    rng = np.random.default_rng(3)
    times = pd.date_range(pd.Timestamp(first) + STEP, ENTRY, freq=STEP)
    temperature, humidity = rng.uniform(10, 30, len(times)), rng.uniform(30, 90, len(times))
    power = 100 + 2 * temperature
    day = (times - STEP).normalize()
    power = power + np.where(day == pd.Timestamp("2025-06-09"), 50, 0) - np.where(day.dayofweek >= 5, 300, 0) \
        + np.where(day == EVENT_DAY, 5, 0)
    measured = pd.DataFrame({"power": power, "temperature": temperature, "humidity": humidity}, index=times)
    after = pd.date_range(ENTRY + STEP, END + pd.Timedelta(hours=4), freq=STEP)
    return measured, pd.DataFrame({"temperature": 20.0, "humidity": 50.0}, index=after)


def test_the_fit_of_the_eligible_weekdays_plus_the_day_of_offset():
    measured, forecast = synthetic()
    baseline = regression_baseline(measured, forecast, BEGIN, END, ENTRY, days=5, excluded=["2025-06-09"])
    # Jun 9 excluded, the weekend skipped: the five weekdays before, each fitted exactly by 100 + 2 T
    assert [str(d) for d in baseline.days] == ["2025-06-03", "2025-06-04", "2025-06-05", "2025-06-06", "2025-06-10"]
    # the day ran 5 kW above the fit over the 3 h to entry: 100 + 2 x 20 + 5 = 145 kW over the event
    assert baseline.adjustment.offset_kw == pytest.approx(5.0)
    assert list(baseline.kw.index) == list(pd.date_range(BEGIN + STEP, END, freq=STEP))
    np.testing.assert_allclose(baseline.kw.to_numpy(), 145.0, atol=1e-6)
    wider = regression_baseline(measured, forecast, BEGIN, END, ENTRY, days=5, excluded=["2025-06-09"],
                                margin=pd.Timedelta(hours=2))
    assert len(wider.kw) == 7 and wider.kw.index[0] == BEGIN - pd.Timedelta(hours=1)
    # a margin reaching back over the adjustment window (to entry): one value per interval, the same fit
    overlapping = regression_baseline(measured, forecast, BEGIN, END, ENTRY, days=5, excluded=["2025-06-09"],
                                      margin=pd.Timedelta(hours=4))
    assert overlapping.kw.index[0] == ENTRY and len(overlapping.kw) == 11 and overlapping.kw.index.is_unique
    assert overlapping.kw[ENTRY] == pytest.approx(measured["power"][ENTRY])  # the day's own 100 + 2 T + 5
    # Jun 9 (50 kW above) left in: no longer an exact fit of the same five days
    assert regression_baseline(measured, forecast, BEGIN, END, ENTRY, days=5).days[-2] == pd.Timestamp("2025-06-09").date()


def test_too_little_history_is_a_clear_error():
    measured, forecast = synthetic(first="2025-06-05")
    with pytest.raises(BaselineError, match=r"needs 5 eligible days .* found 3: 2025-06-10, 2025-06-06, 2025-06-05"):
        regression_baseline(measured, forecast, BEGIN, END, ENTRY, days=5, excluded=["2025-06-09"])
    with pytest.raises(BaselineError, match="forecast"):
        regression_baseline(measured, forecast.drop(columns="humidity"), BEGIN, END, ENTRY, days=3)


def test_early_morning_rows_of_a_day_after_one_not_chosen_keep_their_6_h_mean():
    """The 6 h mean temperature of a history row comes from the measured weather, not from the chosen days
    alone: Jun 10's and Jun 3's hours before 06:00 (after Jun 9, excluded, and Jun 2, not needed) are history
    too, so the fit of the 03:00-05:00 adjustment window is exact on all five days (145 kW over the event)."""
    measured, _ = synthetic()
    begin, end, entry = (EVENT_DAY + pd.Timedelta(hours=h) for h in (6, 8, 5))
    forecast = pd.DataFrame({"temperature": 20.0, "humidity": 50.0},
                            index=pd.date_range(entry + STEP, end + pd.Timedelta(hours=4), freq=STEP))
    baseline = regression_baseline(measured, forecast, begin, end, entry, days=5, excluded=["2025-06-09"])
    assert baseline.days[0] == pd.Timestamp("2025-06-03").date()
    assert baseline.adjustment.offset_kw == pytest.approx(5.0)
    np.testing.assert_allclose(baseline.kw.to_numpy(), 145.0, atol=1e-6)
