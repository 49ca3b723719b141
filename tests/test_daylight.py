"""Daylight saving time of a model: dates as EnergyPlus writes them, and the building's clock."""

import datetime as dt

import pytest

from bridge.config import reference_model
from bridge.daylight import DaylightError, clock_time, daylight_saving_rule, parse_day, period_in, simulation_time
from bridge.tagmap import load_tagmap
from bridge.twin.collect import ExcitationController, ExcitationError
from conftest import TAGMAPS


@pytest.mark.parametrize("text, day", [("2nd Sunday in March", dt.date(2025, 3, 9)),
                                       ("1st Sunday in November", dt.date(2025, 11, 2)),
                                       ("Last Sunday in October", dt.date(2025, 10, 26)),
                                       ("3/10", dt.date(2025, 3, 10)), ("March 10", dt.date(2025, 3, 10)),
                                       ("10 march", dt.date(2025, 3, 10))])
def test_dates_in_energyplus_forms(text, day):
    assert parse_day(text, 2025) == day


@pytest.mark.parametrize("text", ["5th Friday in February", "Sunday in March", "13/40", "soon"])
def test_unreadable_date_is_refused_with_the_text(text):
    with pytest.raises(ValueError, match=f"cannot read the date '{text}'"):
        parse_day(text, 2025)


def test_reference_model_period_and_clock_time():
    period = period_in(daylight_saving_rule(reference_model("large_office")), 2025)
    assert period == (dt.date(2025, 3, 9), dt.date(2025, 11, 2))
    assert clock_time(dt.datetime(2025, 7, 1, 5, 30), period) == dt.datetime(2025, 7, 1, 6, 30)
    assert clock_time(dt.datetime(2025, 7, 1, 23, 30), period) == dt.datetime(2025, 7, 2, 0, 30)
    assert clock_time(dt.datetime(2025, 12, 1, 5, 30), period) == dt.datetime(2025, 12, 1, 5, 30)
    assert clock_time(dt.datetime(2025, 7, 1, 5, 30), None) == dt.datetime(2025, 7, 1, 5, 30)


def test_model_without_daylight_saving_and_a_bad_date(tmp_path):
    plain = tmp_path / "plain.idf"
    plain.write_text("Version,25.2;\n")
    assert daylight_saving_rule(plain) is None
    bad = tmp_path / "bad.idf"
    bad.write_text("Version,25.2;\nRunPeriodControl:DaylightSavingTime, 2nd Sunday in Marsh, 1st Sunday in November;\n")
    with pytest.raises(DaylightError, match=rf"{bad}: RunPeriodControl:DaylightSavingTime: cannot read the date '2nd Sunday in Marsh'"):
        daylight_saving_rule(bad)


def test_excitation_occupied_hours_follow_the_building_clock():
    """The DOE models run their HVAC 06-22 h clock time, 05-21 h simulation time in July."""
    tagmap = load_tagmap(TAGMAPS / "large_office.toml")
    summer = ExcitationController(tagmap, daylight_saving=("2nd Sunday in March", "1st Sunday in November"))
    plain = ExcitationController(tagmap)
    tuesday = dt.date(2025, 7, 1)
    assert summer.occupied(dt.datetime.combine(tuesday, dt.time(5, 0)))
    assert not summer.occupied(dt.datetime.combine(tuesday, dt.time(21, 0)))
    assert not plain.occupied(dt.datetime.combine(tuesday, dt.time(5, 0)))
    assert plain.occupied(dt.datetime.combine(tuesday, dt.time(21, 0)))


def test_simulation_time_inverts_clock_time():
    period = (dt.date(2025, 3, 9), dt.date(2025, 11, 2))
    for standard in (dt.datetime(2025, 7, 1, 13, 0), dt.datetime(2025, 7, 1, 23, 30), dt.datetime(2025, 12, 1, 9, 0)):
        assert simulation_time(clock_time(standard, period), period) == standard
    assert simulation_time(dt.datetime(2025, 7, 2, 0, 30), period) == dt.datetime(2025, 7, 1, 23, 30)


def test_excitation_applies_the_daylight_saving_rule_in_every_year():
    """A collection across New Year (Dec 2025 - Apr 2026) follows 2026's daylight saving from
    8 March 2026: 05:30 standard time on Tuesday 10 March is 06:30 on the building's clock."""
    tagmap = load_tagmap(TAGMAPS / "large_office.toml")
    excitation = ExcitationController(tagmap, daylight_saving=("2nd Sunday in March", "1st Sunday in November"))
    assert excitation.occupied(dt.datetime(2026, 3, 10, 5, 30))
    assert not excitation.occupied(dt.datetime(2026, 3, 3, 5, 30))
    assert daylight_saving_rule(reference_model("large_office")) == ("2nd Sunday in March", "1st Sunday in November")


def test_excitation_refuses_an_unreadable_daylight_saving_rule():
    tagmap = load_tagmap(TAGMAPS / "large_office.toml")
    with pytest.raises(ExcitationError, match="daylight_saving must be .*'2nd Sunday in Marsh'"):
        ExcitationController(tagmap, daylight_saving=("2nd Sunday in Marsh", "1st Sunday in November"))
