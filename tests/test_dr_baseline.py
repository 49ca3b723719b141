"""Utility baselines ("X of Y" with a day-of adjustment) and the per-event report, against hand-computed
examples; properties of the baseline (a constant load is its own baseline; scaling the load scales it)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from bridge.errors import TwinbridgeError
from bridge.tracking.dr_baseline import BaselineError, x_of_y_baseline
from bridge.tracking.dr_event import EventReportError, event_report
from devtools.fuzz import examples

EVENT = ("2025-07-23 14:00", "2025-07-23 17:00")  # a Wednesday; hourly intervals ending 15, 16, 17
# the 10 weekdays before it, most recent first (no holiday in between)
WEEKDAYS = ["07-22", "07-21", "07-18", "07-17", "07-16", "07-15", "07-14", "07-11", "07-10", "07-09", "07-08"]


def hourly(levels: dict[str, float], default: float = 100.0, weekend: float = 50.0, event_day: dict | None = None):
    """Hourly power Jul 1-23: each day flat at its level (``levels`` by MM-DD, weekdays ``default``,
    weekends ``weekend``); on the event day, hours ending h at ``event_day[h]`` (else ``default``)."""
    index = pd.date_range("2025-07-01 01:00", "2025-07-24 00:00", freq="h")
    day = (index - pd.Timedelta(hours=1)).normalize()  # the interval ending at 00:00 belongs to the day before
    values = np.where(day.day_of_week >= 5, weekend, default).astype(float)
    for mmdd, level in levels.items():
        values[day == pd.Timestamp(f"2025-{mmdd}")] = level
    power = pd.Series(values, index=index)
    for hour, value in (event_day or {}).items():
        power[pd.Timestamp("2025-07-23") + pd.Timedelta(hours=hour)] = value
    return power


def test_ten_of_ten_averages_the_ten_latest_eligible_weekdays_skipping_excluded_days():
    # Jul 22 at 200 kW, Jul 16 (an earlier event) at 1000 kW, weekends at 50: excluded Jul 16, the ten
    # days are Jul 22 .. Jul 8 without it: (9 x 100 + 200) / 10 = 110 kW
    power = hourly({"07-22": 200.0, "07-16": 1000.0})
    baseline = x_of_y_baseline(power, *EVENT, excluded=["2025-07-16"], adjustment=None)
    assert baseline.kw.tolist() == pytest.approx([110.0] * 3)
    assert list(baseline.kw.index.hour) == [15, 16, 17]
    assert len(baseline.days) == 10 and dt.date(2025, 7, 16) not in baseline.days and dt.date(2025, 7, 8) in baseline.days
    # not excluded, Jul 16 counts and Jul 8 drops out: (8 x 100 + 200 + 1000) / 10 = 200 kW
    assert x_of_y_baseline(power, *EVENT, adjustment=None).kw.tolist() == pytest.approx([200.0] * 3)


def test_high_five_of_ten_keeps_the_days_of_highest_event_load():
    levels = {mmdd: 10.0 * (i + 1) for i, mmdd in enumerate(WEEKDAYS[:10])}  # 10 .. 100 kW
    baseline = x_of_y_baseline(hourly(levels), *EVENT, x=5, y=10, adjustment=None)
    assert baseline.kw.tolist() == pytest.approx([80.0] * 3)  # (60 + 70 + 80 + 90 + 100) / 5
    assert baseline.days == tuple(dt.date(2025, 7, int(d[3:])) for d in sorted(WEEKDAYS[5:10]))


@pytest.mark.parametrize("kind, morning, expected, capped", [
    # the 3 h ending 1 h before 14:00: hours ending 11, 12, 13; baseline there 110 kW
    ("multiplicative", 121.0, 121.0, False),  # x 1.1
    ("multiplicative", 165.0, 132.0, True),  # x 1.5, capped at x 1.2
    ("multiplicative", 55.0, 88.0, True),  # x 0.5, capped at x 0.8
    ("additive", 121.0, 121.0, False),  # + 11 kW
    ("additive", 165.0, 132.0, True),  # + 55 kW, capped at + 20 % of 110 = 22 kW
    ("additive", 99.0, 99.0, False),  # - 11 kW
])
def test_day_of_adjustment_and_its_cap(kind, morning, expected, capped):
    power = hourly({"07-22": 200.0}, event_day={11: morning, 12: morning, 13: morning, 14: 999.0})  # 14: the gap hour
    baseline = x_of_y_baseline(power, *EVENT, adjustment=kind)
    assert baseline.kw.tolist() == pytest.approx([expected] * 3)
    assert baseline.adjustment.capped is capped
    assert baseline.adjustment.baseline_kw == pytest.approx(110.0) and baseline.adjustment.measured_kw == pytest.approx(morning)


def test_margin_extends_the_baseline_around_the_event_with_the_same_adjustment():
    power = hourly({}, event_day={11: 110.0, 12: 110.0, 13: 110.0})
    baseline = x_of_y_baseline(power, *EVENT, margin=dt.timedelta(hours=2))
    assert list(baseline.kw.index.hour) == [13, 14, 15, 16, 17, 18, 19]
    assert baseline.kw.tolist() == pytest.approx([110.0] * 7)


def test_too_few_eligible_days_is_a_clear_error():
    power = hourly({})["2025-07-15":]  # weekdays Jul 15-22 only: 6 of them
    with pytest.raises(BaselineError, match=r"needs 10 eligible days .* found 6: 2025-07-22, 2025-07-21") as error:
        x_of_y_baseline(power, *EVENT)
    assert isinstance(error.value, TwinbridgeError)
    with pytest.raises(BaselineError, match="1 <= X <= Y"):
        x_of_y_baseline(power, *EVENT, x=6, y=5)
    with pytest.raises(BaselineError, match="not on the meter's"):
        x_of_y_baseline(power, "2025-07-23 14:30", "2025-07-23 17:00", x=3, y=3)


def test_a_missing_adjustment_window_makes_the_day_ineligible_not_the_baseline_wrong():
    power = hourly({"07-22": 200.0}).drop(pd.Timestamp("2025-07-22 12:00"))  # Jul 22 lacks an adjustment hour
    baseline = x_of_y_baseline(power, *EVENT, adjustment=None)
    assert dt.date(2025, 7, 22) in baseline.days  # the unadjusted baseline does not use that hour
    baseline = x_of_y_baseline(power, *EVENT, adjustment="additive", excluded=())
    assert dt.date(2025, 7, 22) not in baseline.days and baseline.kw.tolist() == pytest.approx([100.0] * 3)


@settings(max_examples=examples(30), deadline=None)
@given(level=st.floats(1.0, 5000.0), kind=st.sampled_from(["multiplicative", "additive", None]),
       y=st.integers(1, 8), data=st.data())
def test_a_constant_load_is_its_own_baseline(level, kind, y, data):
    x = data.draw(st.integers(1, y))
    power = pd.Series(level, index=pd.date_range("2025-07-01 00:15", "2025-07-24", freq="15min"))
    baseline = x_of_y_baseline(power, *EVENT, x=x, y=y, adjustment=kind)
    assert np.allclose(baseline.kw.to_numpy(), level)


@settings(max_examples=examples(30), deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), scale=st.floats(0.01, 100.0),
       kind=st.sampled_from(["multiplicative", "additive", None]), x=st.integers(1, 5))
def test_scaling_the_load_scales_the_baseline(seed, scale, kind, x):
    loads = np.random.default_rng(seed).uniform(10.0, 1000.0, 23 * 24)  # any hourly load, Jul 1-23
    power = pd.Series(loads, index=pd.date_range("2025-07-01 01:00", periods=23 * 24, freq="h"))
    one = x_of_y_baseline(power, *EVENT, x=x, y=5, adjustment=kind)
    scaled = x_of_y_baseline(power * scale, *EVENT, x=x, y=5, adjustment=kind)
    assert np.allclose(scaled.kw.to_numpy(), scale * one.kw.to_numpy(), rtol=1e-9)
    assert scaled.days == one.days


def test_event_report_against_a_hand_computed_event():
    index = pd.date_range("2025-07-23 11:00", "2025-07-23 21:00", freq="h")
    baseline = pd.Series(100.0, index=index)
    power = baseline.copy()
    power[["2025-07-23 13:00", "2025-07-23 14:00"]] = [110.0, 130.0]  # pre-cooling: +10, +30 kW
    power[["2025-07-23 15:00", "2025-07-23 16:00", "2025-07-23 17:00"]] = [60.0, 70.0, 80.0]  # shed 40, 30, 20
    power[["2025-07-23 18:00", "2025-07-23 19:00"]] = [150.0, 100.0]  # rebound +50, 0
    temps = pd.DataFrame({"Zone": 24.0, "Other": 22.0}, index=index)
    temps.loc["2025-07-23 13:00":"2025-07-23 16:00", "Zone"] = [25.0, 27.0, 26.5, 19.0]  # 0 + 1 + 0.5 + 1 K h
    temps.loc["2025-07-23 20:00", "Zone"] = 30.0  # after the rebound window: not counted
    report = event_report(power, *EVENT, 30.0, baseline, temps, {"Zone": (20.0, 26.0), "Other": (20.0, 26.0)},
                          decision_seconds=[1.0, 2.0, 3.0, 4.0, 100.0])
    assert report.delivered_kw == pytest.approx(30.0) and report.delivered_ratio == pytest.approx(1.0)
    assert report.tracking_rmse_kw == pytest.approx(np.sqrt(200 / 3))  # -10, 0, +10 kW around 70 kW
    assert (report.pre_event_energy_kwh, report.pre_event_peak_kw) == pytest.approx((40.0, 30.0))
    assert (report.rebound_energy_kwh, report.rebound_peak_kw) == pytest.approx((50.0, 50.0))
    assert report.comfort_kh == pytest.approx({"Zone": 2.5, "Other": 0.0})
    assert (report.decision_p50_s, report.decision_p95_s, report.decision_max_s) == pytest.approx((3.0, 80.8, 100.0))
    figures = report.as_figures("mpc_")
    assert figures["mpc_delivered_ratio"] == {"value": pytest.approx(1.0), "unit": "delivered / requested", "target": ">= 0.9"}
    assert figures["mpc_comfort_Zone"]["value"] == pytest.approx(2.5) and "mpc_decision_time_p95" in figures
    # the rise of a window's peak: its peak minus the baseline's peak there (the baseline peaks at 13:00)
    peaked = baseline.copy()
    peaked["2025-07-23 13:00"] = 125.0
    report = event_report(power, *EVENT, 30.0, peaked, baseline_name="twin")
    assert (report.pre_event_peak_rise_kw, report.pre_event_peak_kw) == pytest.approx((130.0 - 125.0, 30.0))
    assert report.rebound_peak_rise_kw == pytest.approx(50.0)
    record = report.as_record()
    assert record["baseline_name"] == "twin" and record["begin"] == "2025-07-23T14:00:00"
    assert record["decision_p95_s"] is None  # no decisions: NaN as null


def test_event_report_needs_a_baseline_over_every_window():
    index = pd.date_range("2025-07-23 11:00", "2025-07-23 21:00", freq="h")
    power = pd.Series(100.0, index=index)
    with pytest.raises(EventReportError, match=r"2 h after the event .* no baseline at 2025-07-23 18:00"):
        event_report(power, *EVENT, 30.0, power["2025-07-23 12:00":"2025-07-23 17:00"])
    report = event_report(power, *EVENT, 30.0, power)
    assert report.decisions == 0 and "decision_time_p95" not in report.as_figures()
