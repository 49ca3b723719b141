"""Holiday rules (bridge/holidays.py): EnergyPlus's special-day forms evaluated per year, in schedule files
and in the GP-MPC's x_of_y exclusion (fast, no engine)."""

from __future__ import annotations

import calendar
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import reference_model
from bridge.holidays import REFERENCE_HOLIDAYS, HolidayError, holiday_dates
from bridge.idf import Idf
from bridge.tracking.dr_baseline import x_of_y_baseline
from bridge.twin.features import reference_holidays
from controllers.base import ControllerConfigError
from controllers.gp_mpc import CurtailmentEvent, x_of_y_excluded
from controllers.schedule import load_schedule
from devtools.fuzz import examples

EXAMPLES = REPO / "controllers" / "examples"
SCHEDULES = ("large_office_base_schedule.toml", "large_office_schedule.toml", "small_office_schedule.toml")
WEEKDAYS = tuple(calendar.day_name)  # Monday first, as dt.date.weekday()
MONTHS = tuple(calendar.month_name)[1:]
ORDINALS = {"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "Last": -1}


def dates(*rules: str, year: int = 2025) -> list[dt.date]:
    return sorted(holiday_dates(rules, year))


def test_floating_holidays_by_hand():
    """US federal holidays of 2025-2026 read off a calendar."""
    assert dates("Last Monday in May") == [dt.date(2025, 5, 26)]  # Memorial Day
    assert dates("4th Thursday in November") == [dt.date(2025, 11, 27)]  # Thanksgiving
    assert dates("3rd Monday in January", year=2026) == [dt.date(2026, 1, 19)]  # Martin Luther King Jr. Day
    assert dates("1st Monday in September") == [dt.date(2025, 9, 1)]  # Labor Day
    assert dates("2nd monday in OCTOBER") == [dt.date(2025, 10, 13)]  # case-insensitive, as EnergyPlus


def test_fixed_date_forms_and_years():
    """"MM-DD" and EnergyPlus's month-day forms every year; "YYYY-MM-DD" in its year only; Feb 29 in leap years."""
    for year in (2025, 2026):
        assert dates("07-04", "July 4", "4 July", "7/4", year=year) == [dt.date(year, 7, 4)]
    assert dates("2025-12-25") == [dt.date(2025, 12, 25)] and dates("2025-12-25", year=2026) == []
    assert dates("02-29", "February 29", year=2024) == [dt.date(2024, 2, 29)] and dates("02-29", "February 29") == []


def test_examples_list_the_reference_models_own_holidays():
    """The three example schedules' holidays, and bridge/twin's reference_holidays, are the DOE models'
    RunPeriodControl:SpecialDays (their start dates, as the IDF writes them) in every year."""
    special = Idf.read(reference_model("large_office")).of_class("RunPeriodControl:SpecialDays")
    model = tuple(day.fields[1] for day in special if day.fields[3].lower() == "holiday")
    assert len(model) == 10 and set(model) == set(REFERENCE_HOLIDAYS)
    for name in SCHEDULES:
        schedule = load_schedule(EXAMPLES / name)
        for year in (2024, 2025, 2026):
            days = [dt.date(year, 1, 1) + dt.timedelta(days=k) for k in range(365)]
            assert {day for day in days if schedule.is_holiday(day)} == holiday_dates(model, year), (name, year)
    assert reference_holidays(2025) == tuple(day.isoformat() for day in dates(*model))


def test_base_schedule_sets_back_on_memorial_day():
    """The model runs Memorial Day as a holiday; so does the base schedule now (it wrote occupied setpoints)."""
    schedule = load_schedule(EXAMPLES / "large_office_base_schedule.toml")
    assert schedule.base_setpoints(dt.datetime(2025, 5, 26, 10)) == schedule.setback
    assert schedule.base_setpoints(dt.datetime(2025, 5, 27, 10)) != schedule.setback


def test_x_of_y_leaves_out_memorial_day():
    """Regression (issue 16, docs/controllers.md round 11): a 10 of 10 baseline for Tuesday Jun 3 2025
    from the GP-MPC's exclusion and its base schedule file averaged Memorial Day (May 26, the model's
    holiday: 508 kW against 1,400 over the event hours) into its days; it now leaves it out."""
    schedule = load_schedule(EXAMPLES / "large_office_base_schedule.toml")
    index = pd.date_range("2025-04-01 00:10", "2025-06-03 23:50", freq="10min")
    power = pd.Series(np.where(index.day_of_week < 5, 1400.0, 300.0), index=index)
    power[(index - pd.Timedelta(minutes=10)).date == dt.date(2025, 5, 26)] = 508.0
    event = CurtailmentEvent(dt.datetime(2025, 6, 3, 13), dt.datetime(2025, 6, 3, 16), 100.0, "x_of_y")
    excluded = x_of_y_excluded(event, (event,), schedule)
    assert dt.date(2025, 5, 26) in excluded
    baseline = x_of_y_baseline(power, event.begin, event.end, 10, 10, excluded)
    assert dt.date(2025, 5, 26) not in baseline.days
    assert baseline.days[0] == dt.date(2025, 5, 19) and len(baseline.days) == 10
    assert (baseline.kw == 1400.0).all()


@settings(max_examples=examples(50), deadline=None)
@given(st.sampled_from(list(ORDINALS)), st.integers(0, 6), st.integers(1, 12), st.integers(1900, 2200),
       st.sampled_from([str, str.lower, str.upper]))
def test_weekday_rules_name_a_day_of_their_month(ordinal, weekday, month, year, case):
    """"<1st-4th|Last> <Weekday> in <Month>": one date, in its month, on its weekday; the n-th is in the
    month's n-th week, the last within the month's last 7 days."""
    (day,) = holiday_dates((case(f"{ordinal} {WEEKDAYS[weekday]} in {MONTHS[month - 1]}"),), year)
    assert (day.year, day.month, day.weekday()) == (year, month, weekday)
    last = calendar.monthrange(year, month)[1]
    if ORDINALS[ordinal] == -1:
        assert day.day > last - 7
    else:
        assert (day.day - 1) // 7 == ORDINALS[ordinal] - 1


@settings(max_examples=examples(50), deadline=None)
@given(st.integers(1, 12), st.integers(1, 31), st.integers(1900, 2200), st.booleans())
def test_month_day_rules(month, day, year, month_first):
    """"<Month> <day>" / "<day> <Month>": that date each year it exists in; refused if no year has it."""
    rule = f"{MONTHS[month - 1]} {day}" if month_first else f"{day} {MONTHS[month - 1]}"
    if day > calendar.monthrange(2024, month)[1]:
        with pytest.raises(HolidayError, match=rule):
            holiday_dates((rule,), year)
    elif day > calendar.monthrange(year, month)[1]:
        assert holiday_dates((rule,), year) == frozenset()  # February 29 of a common year
    else:
        assert holiday_dates((rule,), year) == {dt.date(year, month, day)}


@settings(max_examples=examples(50), deadline=None)
@given(st.text(max_size=40), st.integers(1900, 2200))
def test_any_text_is_a_date_of_the_year_or_the_clear_error(text, year):
    try:
        found = holiday_dates((text,), year)
    except HolidayError as exc:
        assert repr(text) in str(exc)
    else:
        assert all(day.year == year for day in found)


@settings(max_examples=examples(50), deadline=None)
@given(st.sampled_from(list(ORDINALS)), st.integers(0, 6), st.integers(1, 12),
       st.integers(0, 3), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789/-", min_size=1, max_size=10))
def test_a_rule_with_a_word_replaced_by_garbage_is_refused(ordinal, weekday, month, position, garbage):
    words = [ordinal, WEEKDAYS[weekday], "in", MONTHS[month - 1]]
    vocabulary = {word.lower() for word in (*ORDINALS, *WEEKDAYS, *MONTHS, "in", "5th")}
    if garbage in vocabulary:
        return
    words[position] = garbage
    rule = " ".join(words)
    with pytest.raises(HolidayError, match="is not a holiday"):
        holiday_dates((rule,), 2025)


@pytest.mark.parametrize("entry, message", [
    ('"Last Funday in May"', "'Last Funday in May' is not a holiday: expected 'MM-DD'"),
    ('"5th Monday in March"', "'5th Monday in March': most years have no 5th Monday in March; use 'Last Monday in March'"),
    ('"May 32"', "'May 32' is not a holiday"),
    ('"2025-02-29"', "'2025-02-29' is not a date"),
    ("7", "7 is not a holiday: expected a string"),
    ('["07-04"]', r"\['07-04'\] is not a holiday: expected a string"),
])
def test_bad_holiday_entries_name_file_key_and_entry(tmp_path, entry, message):
    path = tmp_path / "bad.toml"
    path.write_text(f'holidays = ["07-04", {entry}]\n[setback]\nCoolingSetpoint = 28.0\n')
    with pytest.raises(ControllerConfigError, match=f"^{path}: holidays: {message}"):
        load_schedule(path)


def test_a_toml_date_is_a_holiday_of_its_year(tmp_path):
    path = tmp_path / "dates.toml"
    path.write_text('holidays = [2025-12-24, "Last Monday in May"]\n[setback]\nCoolingSetpoint = 28.0\n')
    schedule = load_schedule(path)
    assert schedule.is_holiday(dt.date(2025, 12, 24)) and not schedule.is_holiday(dt.date(2026, 12, 24))
    assert schedule.is_holiday(dt.date(2026, 5, 25))
