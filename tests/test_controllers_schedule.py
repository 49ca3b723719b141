"""Schedule rules and schedule files (fast, no engine)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from controllers.base import ControllerConfigError, InputRange
from controllers.schedule import ScheduleController, load_schedule

EXAMPLE = Path(__file__).resolve().parent.parent / "controllers" / "examples" / "small_office_schedule.toml"
INPUTS = {"CoolingSetpoint": InputRange("CoolingSetpoint", 18.0, 32.0, "degC"),
          "HeatingSetpoint": InputRange("HeatingSetpoint", 10.0, 24.0, "degC")}
TUESDAY = dt.date(2025, 7, 1)
SATURDAY = dt.date(2025, 7, 5)


def at(day: dt.date, clock: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(clock))


@pytest.fixture
def schedule():
    """The example's rules on the simulation clock (its daylight saving shift is tested on its own)."""
    return dataclasses.replace(load_schedule(EXAMPLE), daylight_saving=None)


def test_example_follows_the_building_clock_in_summer_only():
    """The DOE models' schedules run one hour early in simulation (standard) time from the 2nd
    Sunday of March to the 1st Sunday of November; so does the example."""
    example = load_schedule(EXAMPLE)
    assert example.setpoints(at(TUESDAY, "05:00")) == {"CoolingSetpoint": 24.0, "HeatingSetpoint": 21.0}
    assert example.setpoints(at(TUESDAY, "21:00"))["CoolingSetpoint"] == 29.0
    assert example.setpoints(at(TUESDAY, "14:00"))["CoolingSetpoint"] == 26.0  # the 15-17 h DR event, clock time
    december = dt.date(2025, 12, 2)
    assert example.setpoints(at(december, "05:30"))["CoolingSetpoint"] == pytest.approx(26.5)  # ramp, standard time
    assert example.setpoints(at(december, "21:00"))["CoolingSetpoint"] == 24.0


@pytest.mark.parametrize("value, message", [("2nd Sunday in March", "expected \\[first day, last day\\]"),
                                            (["2nd Sunday in Marsh", "11/2"], "cannot read the date '2nd Sunday in Marsh'")])
def test_bad_daylight_saving_is_refused_naming_the_file(tmp_path, value, message):
    bad = tmp_path / "dst.toml"
    text = EXAMPLE.read_text().replace('daylight_saving = ["2nd Sunday in March", "1st Sunday in November"]',
                                       f"daylight_saving = {value!r}".replace("'", '"'))
    bad.write_text(text)
    with pytest.raises(ControllerConfigError, match=f"{bad}: daylight_saving: {message}"):
        load_schedule(bad)


def test_occupied_setback_and_weekend(schedule):
    assert schedule.setpoints(at(TUESDAY, "10:00")) == {"CoolingSetpoint": 24.0, "HeatingSetpoint": 21.0}
    assert schedule.setpoints(at(TUESDAY, "02:00")) == {"CoolingSetpoint": 29.0, "HeatingSetpoint": 15.6}
    assert schedule.setpoints(at(TUESDAY, "22:00")) == {"CoolingSetpoint": 29.0, "HeatingSetpoint": 15.6}
    assert schedule.setpoints(at(SATURDAY, "12:00"))["CoolingSetpoint"] == 24.0  # no DR on Saturdays
    assert schedule.setpoints(at(SATURDAY, "18:00"))["CoolingSetpoint"] == 29.0
    assert schedule.setpoints(at(dt.date(2025, 7, 6), "12:00"))["CoolingSetpoint"] == 29.0  # Sunday


def test_holiday_is_setback_all_day(schedule):
    assert schedule.setpoints(at(dt.date(2025, 7, 4), "10:00"))["CoolingSetpoint"] == 29.0  # a Friday


def test_start_up_ramp_is_linear_from_setback(schedule):
    assert schedule.setpoints(at(TUESDAY, "04:50"))["CoolingSetpoint"] == 29.0
    assert schedule.setpoints(at(TUESDAY, "05:00"))["CoolingSetpoint"] == 29.0
    assert schedule.setpoints(at(TUESDAY, "05:30"))["CoolingSetpoint"] == pytest.approx(26.5)
    assert schedule.setpoints(at(TUESDAY, "05:30"))["HeatingSetpoint"] == pytest.approx(18.3)
    assert schedule.setpoints(at(TUESDAY, "06:00"))["CoolingSetpoint"] == 24.0


def test_demand_response_event_with_precooling(schedule):
    assert schedule.setpoints(at(TUESDAY, "13:50"))["CoolingSetpoint"] == 24.0
    assert schedule.setpoints(at(TUESDAY, "14:00"))["CoolingSetpoint"] == 23.0  # pre-cooling
    assert schedule.setpoints(at(TUESDAY, "15:00"))["CoolingSetpoint"] == 26.0  # +2 K
    assert schedule.setpoints(at(TUESDAY, "16:50"))["CoolingSetpoint"] == 26.0
    assert schedule.setpoints(at(TUESDAY, "17:00"))["CoolingSetpoint"] == 24.0
    assert schedule.setpoints(at(TUESDAY, "15:00"))["HeatingSetpoint"] == 21.0  # no offset given


def test_event_on_dates_only(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[setback]\nCoolingSetpoint = 28.0\n[[events]]\ndates = ["2025-07-02"]\nstart = "15:00"\n'
                    'end = "17:00"\noffsets = { CoolingSetpoint = 2.0 }\n')
    schedule = load_schedule(path)
    assert schedule.setpoints(at(TUESDAY, "16:00")) == {"CoolingSetpoint": 28.0}
    assert schedule.setpoints(at(dt.date(2025, 7, 2), "16:00")) == {"CoolingSetpoint": 30.0}


def test_controller_checks_tags_and_ranges(schedule):
    controller = ScheduleController(schedule)
    controller.check(INPUTS)
    assert controller.decide(at(TUESDAY, "15:10"), {}) == {"CoolingSetpoint": 26.0, "HeatingSetpoint": 21.0}
    with pytest.raises(ControllerConfigError, match=r"'HeatingSetpoint' is not an input tag"):
        ScheduleController(schedule).check({"CoolingSetpoint": INPUTS["CoolingSetpoint"]})
    narrow = INPUTS | {"CoolingSetpoint": InputRange("CoolingSetpoint", 20.0, 25.0, "degC")}
    with pytest.raises(ControllerConfigError, match=r"\[setback\]: CoolingSetpoint = 29 is outside .* \[20, 25\]"):
        schedule.check(narrow)


def test_event_offset_beyond_range_is_named(tmp_path):
    path = tmp_path / "dr.toml"
    path.write_text('[setback]\nCoolingSetpoint = 31.0\n[[events]]\nstart = "15:00"\nend = "17:00"\n'
                    'offsets = { CoolingSetpoint = 2.0 }\n')
    with pytest.raises(ControllerConfigError, match=r"with events\[0\]\.offsets: CoolingSetpoint = 33 is outside"):
        load_schedule(path).check(INPUTS)


@pytest.mark.parametrize("text, message", [
    ('[setback]\nCoolingSetpoint = 28.0\n[[occupied]]\ndays = ["mon"]\nstart = "25:00"\nend = "18:00"\n'
     'setpoints = { CoolingSetpoint = 24.0 }\n', r"occupied\[0\]\.start: '25:00' is not a time of day"),
    ('[setback]\nCoolingSetpoint = 28.0\n[[occupied]]\ndays = ["monday", "funday"]\nstart = "06:00"\n'
     'end = "18:00"\nsetpoints = { CoolingSetpoint = 24.0 }\n', r"occupied\[0\]\.days: unknown day 'funday'"),
    ('[setback]\nCoolingSetpoint = 28.0\n[[occupied]]\ndays = ["mon"]\nstart = "18:00"\nend = "06:00"\n'
     'setpoints = { CoolingSetpoint = 24.0 }\n', r"occupied\[0\]: end '06:00' must be after start"),
    ('[setback]\nCoolingSetpoint = 28.0\nHeatingSetpoint = 15.0\n[[occupied]]\ndays = ["mon"]\nstart = "06:00"\n'
     'end = "18:00"\nsetpoints = { CoolingSetpoint = 24.0 }\n',
     r"occupied\[0\]: \[setpoints\]: must name the same tags"),
    ('[setback]\nCoolingSetpoint = "cold"\n', r"\[setback\]: 'CoolingSetpoint' must be a number, got 'cold'"),
    ('[setback]\nCoolingSetpoint = 28.0\n[[events]]\nstart = "15:00"\nend = "17:00"\n'
     'offsets = { FanSpeed = 1.0 }\n', r"events\[0\]: \[offsets\]: tags \['FanSpeed'\] are not in \[setback\]"),
    ('[setback]\nCoolingSetpoint = 28.0\nholidays = ["07-32"]\n', r"\[setback\]: 'holidays' must be a number"),
    ('holidays = ["07-32"]\n[setback]\nCoolingSetpoint = 28.0\n', r"bad.toml: holidays: '07-32' is not a holiday"),
    ('[setback]\nCoolingSetpoint = 28.0\n[[occupied]]\ndays = ["mon"]\nstart = "00:30"\nend = "06:00"\n'
     'ramp_minutes = 60\nsetpoints = { CoolingSetpoint = 24.0 }\n', r"ramp_minutes 60 reaches back past midnight"),
    ('[setbak]\nCoolingSetpoint = 28.0\n', r"unknown keys \['setbak'\]"),
    ('[setback\n', r"not valid TOML"),
])
def test_bad_schedule_files_are_named(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ControllerConfigError, match=message) as error:
        load_schedule(path)
    assert str(path) in str(error.value)
