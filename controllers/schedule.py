"""Schedule controller: setpoints by time of day, day of week and holidays, plus demand-response events.

Rules live in a TOML file (see controllers/examples/small_office_schedule.toml and docs/controllers.md)::

    holidays = ["07-04", "2025-12-25", "Last Monday in May"]   # setback all day (bridge/holidays.py's forms)

    [setback]                                  # outside occupied periods; names every controlled tag
    CoolingSetpoint = 29.0
    HeatingSetpoint = 15.6

    [[occupied]]
    days = ["mon", "tue", "wed", "thu", "fri"]
    start = "06:00"
    end = "22:00"
    ramp_minutes = 60                          # start-up: move linearly from setback in the hour before
    setpoints = { CoolingSetpoint = 24.0, HeatingSetpoint = 21.0 }

    [[events]]                                 # demand response: offsets added to the setpoints
    name = "DR"
    dates = ["07-02"]                          # or days = [...]; neither: every day
    start = "15:00"
    end = "17:00"
    offsets = { CoolingSetpoint = 2.0 }
    precool_minutes = 60                       # optional pre-cooling before the event
    precool_offsets = { CoolingSetpoint = -1.0 }

Times are the bridge's simulation time (Control.SimTime: local standard time, never wall time),
or, with ``daylight_saving = ["2nd Sunday in March", "1st Sunday in November"]`` (the model's
RunPeriodControl:DaylightSavingTime dates, in EnergyPlus's forms), the building's clock time: one
hour later on the days of that period, as the model's own schedules are (bridge/daylight.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.daylight import clock_time, period_in, simulation_time
from bridge.holidays import FORMS, HolidayError, holiday_dates
from bridge.tomlfile import Table, read_toml
from controllers.base import ControllerConfigError, InputRange

log = logging.getLogger(__name__)

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")
DATE = re.compile(r"^(\d{4}-)?\d{2}-\d{2}$")


@dataclass(frozen=True)
class OccupiedPeriod:
    days: frozenset[int]  # 0 = Monday
    start_min: int  # minutes after midnight
    end_min: int
    ramp_min: int
    setpoints: dict[str, float]
    where: str


@dataclass(frozen=True)
class DemandResponseEvent:
    name: str
    dates: frozenset[str]  # "MM-DD" or "YYYY-MM-DD"
    days: frozenset[int]
    start_min: int
    end_min: int
    offsets_k: dict[str, float]
    precool_min: int
    precool_offsets_k: dict[str, float]
    where: str

    def on(self, day: dt.date) -> bool:
        if self.dates:
            return _date_matches(day, self.dates)
        return not self.days or day.weekday() in self.days

    def offsets_at(self, time: dt.datetime) -> dict[str, float]:
        if not self.on(time.date()):
            return {}
        minute = _minute_of_day(time)
        if self.start_min <= minute < self.end_min:
            return self.offsets_k
        if self.start_min - self.precool_min <= minute < self.start_min:
            return self.precool_offsets_k
        return {}


@dataclass(frozen=True)
class Schedule:
    setback: dict[str, float]
    occupied: tuple[OccupiedPeriod, ...]
    holidays: tuple[str, ...]  # rules of bridge/holidays.py ("MM-DD", "YYYY-MM-DD", "Last Monday in May" ...)
    events: tuple[DemandResponseEvent, ...]
    path: str = ""
    daylight_saving: tuple[str, str] | None = None  # (first, last day) in EnergyPlus's date forms

    def clock_time(self, time: dt.datetime) -> dt.datetime:
        """The building's clock time of simulation time ``time`` (unchanged without daylight saving)."""
        return clock_time(time, period_in(self.daylight_saving, time.year))

    def simulation_time(self, clock: dt.datetime) -> dt.datetime:
        """The simulation time of the building's clock time ``clock`` (the inverse of ``clock_time``)."""
        return simulation_time(clock, period_in(self.daylight_saving, clock.year))

    @property
    def tags(self) -> list[str]:
        return list(self.setback)

    def is_holiday(self, day: dt.date) -> bool:
        """Whether ``day`` (the building's clock) is one of the holidays: the rules matched in its year."""
        return day in holiday_dates(self.holidays, day.year)

    def base_setpoints(self, time: dt.datetime) -> dict[str, float]:
        """Occupied, ramping or setback setpoints at clock time ``time``, before demand-response offsets."""
        if self.is_holiday(time.date()):
            return dict(self.setback)
        minute = _minute_of_day(time)
        periods = [p for p in self.occupied if time.weekday() in p.days]
        for period in periods:
            if period.start_min <= minute < period.end_min:
                return dict(period.setpoints)
        for period in periods:
            ramp_start = period.start_min - period.ramp_min
            if ramp_start <= minute < period.start_min:
                fraction = (minute - ramp_start) / period.ramp_min
                return {tag: low + (period.setpoints[tag] - low) * fraction for tag, low in self.setback.items()}
        return dict(self.setback)

    def setpoints(self, time: dt.datetime) -> dict[str, float]:
        """Setpoints at ``time`` (simulation calendar time), demand-response offsets included."""
        time = self.clock_time(time)
        values = self.base_setpoints(time)
        for event in self.events:
            for tag, offset in event.offsets_at(time).items():
                values[tag] += offset
        return values

    def check(self, inputs: Mapping[str, InputRange]) -> None:
        """Every tag must be a browsed input; every setpoint, with any one event's offsets, within its EURange."""
        for tag in self.tags:
            if tag not in inputs:
                raise ControllerConfigError(f"{self.path}: [setback]: {tag!r} is not an input tag of the building "
                                            f"(inputs: {sorted(inputs)})")
        bases = [("[setback]", self.setback)] + [(f"{p.where}.setpoints", p.setpoints) for p in self.occupied]
        for where, values in bases:
            _check_range(self.path, where, values, inputs)
            for event in self.events:
                for kind, offsets in (("offsets", event.offsets_k), ("precool_offsets", event.precool_offsets_k)):
                    shifted = {tag: values[tag] + offsets.get(tag, 0.0) for tag in values}
                    _check_range(self.path, f"{where} with {event.where}.{kind}", shifted, inputs)


class ScheduleController:
    """Writes the schedule's setpoints at every step; ignores the outputs."""

    def __init__(self, schedule: Schedule):
        self.schedule = schedule

    def check(self, inputs: Mapping[str, InputRange]) -> None:
        self.schedule.check(inputs)
        self._ranges = dict(inputs)

    def decide(self, sim_time: dt.datetime, outputs: Mapping[str, float]) -> dict[str, float]:
        values = self.schedule.setpoints(sim_time)
        for tag, value in values.items():
            limits = self._ranges[tag]
            if not limits.contains(value):  # only overlapping events can add up beyond the checked range
                log.warning("%s: %s = %g at %s is outside [%g, %g]; clamped", self.schedule.path, tag, value,
                            sim_time, limits.low, limits.high)
                values[tag] = min(max(value, limits.low), limits.high)
        return values


def load_schedule(path: str | Path) -> Schedule:
    """Read and check a schedule file; raise ControllerConfigError naming the file and key."""
    path = Path(path)
    data = Table(read_toml(path, ControllerConfigError, "schedule file"), str(path), ControllerConfigError)
    data.check_keys({"holidays", "setback", "occupied", "events", "daylight_saving"})
    setback = _setpoints(data.table("setback"))
    if not setback:
        raise ControllerConfigError(f"{path}: [setback] must give a value for every controlled tag")
    tags = set(setback)
    occupied = tuple(_occupied(entry, tags, f"occupied[{i}]") for i, entry in enumerate(data.tables("occupied")))
    events = tuple(_event(entry, tags, f"events[{i}]") for i, entry in enumerate(data.tables("events")))
    return Schedule(setback, occupied, _holidays(data), events, str(path), _daylight_saving(data))


def _holidays(data: Table) -> tuple[str, ...]:
    """The file's ``holidays`` entries (bridge/holidays.py's rules; a TOML date is its ISO text), each checked."""
    holidays = []
    for item in data.array("holidays", []):
        text = item.isoformat() if type(item) is dt.date else item
        if not isinstance(text, str):
            raise ControllerConfigError(f"{data.where}: holidays: {item!r} is not a holiday: expected a string, "
                                        f"{FORMS}")
        holidays.append(text)
    try:
        holiday_dates(tuple(holidays), 2024)
    except HolidayError as exc:
        raise ControllerConfigError(f"{data.where}: holidays: {exc}") from None
    return tuple(holidays)


def _daylight_saving(data: Table) -> tuple[str, str] | None:
    value = data.values.get("daylight_saving")
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(text, str) for text in value):
        raise ControllerConfigError(f"{data.where}: daylight_saving: expected [first day, last day] like "
                                    f"['2nd Sunday in March', '1st Sunday in November'], got {value!r}")
    try:
        period_in((value[0], value[1]), 2025)
    except ValueError as exc:
        raise ControllerConfigError(f"{data.where}: daylight_saving: {exc}") from None
    return value[0], value[1]


def _window(entry: Table, required: tuple[str, ...]) -> tuple[int, int]:
    """Check the required keys are there; (start, end) of the entry's time window, end after start."""
    for key in required:
        if key not in entry.values:
            raise ControllerConfigError(f"{entry.where}: missing {key!r}")
    start, end = (_clock(entry.text(key), f"{entry.where}.{key}") for key in ("start", "end"))
    if end <= start:
        raise ControllerConfigError(f"{entry.where}: end {entry.values['end']!r} must be after start "
                                    f"{entry.values['start']!r}")
    return start, end


def _occupied(entry: Table, tags: set[str], name: str) -> OccupiedPeriod:
    entry.check_keys({"days", "start", "end", "ramp_minutes", "setpoints"})
    start, end = _window(entry, ("days", "start", "end", "setpoints"))
    ramp = _minutes(entry, "ramp_minutes")
    if ramp > start:
        raise ControllerConfigError(f"{entry.where}: ramp_minutes {ramp} reaches back past midnight "
                                    f"(start {entry.values['start']})")
    table = entry.table("setpoints")
    setpoints = _setpoints(table)
    if set(setpoints) != tags:
        raise ControllerConfigError(f"{table.where}: must name the same tags as [setback] {sorted(tags)}, "
                                    f"got {sorted(setpoints)}")
    return OccupiedPeriod(_days(entry.array("days"), f"{entry.where}.days"), start, end, ramp, setpoints, name)


def _event(entry: Table, tags: set[str], name: str) -> DemandResponseEvent:
    entry.check_keys({"name", "dates", "days", "start", "end", "offsets", "precool_minutes", "precool_offsets"})
    if "dates" in entry.values and "days" in entry.values:
        raise ControllerConfigError(f"{entry.where}: give 'dates' or 'days', not both")
    start, end = _window(entry, ("start", "end", "offsets"))
    precool = _minutes(entry, "precool_minutes")
    if precool > start:
        raise ControllerConfigError(f"{entry.where}: precool_minutes {precool} reaches back past midnight")
    offsets, precool_offsets = (_offsets(entry.table(key), tags) for key in ("offsets", "precool_offsets"))
    if precool_offsets and not precool:
        raise ControllerConfigError(f"{entry.where}: precool_offsets given but precool_minutes is 0")
    return DemandResponseEvent(entry.text("name", name), _dates(entry.array("dates", []), f"{entry.where}.dates"),
                               _days(entry.array("days", []), f"{entry.where}.days"), start, end, offsets, precool,
                               precool_offsets, name)


def _setpoints(table: Table) -> dict[str, float]:
    """The table's ``tag = value`` entries (every value a number)."""
    return {tag: table.number(tag) for tag in table.values}


def _offsets(table: Table, tags: set[str]) -> dict[str, float]:
    """An event's ``tag = offset`` table (kelvin), every tag one of ``tags`` (those of [setback])."""
    offsets = _setpoints(table)
    unknown = set(offsets) - tags
    if unknown:
        raise ControllerConfigError(f"{table.where}: tags {sorted(unknown)} are not in [setback] {sorted(tags)}")
    return offsets


def _clock(value: str, where: str) -> int:
    match = CLOCK.match(value)
    if not match:
        raise ControllerConfigError(f"{where}: expected a time of day 'HH:MM', got {value!r}")
    hours, minutes = int(match[1]), int(match[2])
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ControllerConfigError(f"{where}: {value!r} is not a time of day (00:00 .. 24:00)")
    return hours * 60 + minutes


def _minutes(entry: Table, key: str) -> int:
    """The entry's whole number of minutes ``key`` (0 if not given)."""
    value = entry.integer(key, 0)
    if value < 0:
        raise ControllerConfigError(f"{entry.where}.{key}: expected a whole number of minutes >= 0, got {value!r}")
    return value


def _days(value: list, where: str) -> frozenset[int]:
    days = set()
    for day in value:
        name = str(day).lower()[:3]
        if name not in DAYS:
            raise ControllerConfigError(f"{where}: unknown day {day!r} (use {', '.join(DAYS)})")
        days.add(DAYS.index(name))
    return frozenset(days)


def _dates(value: list, where: str) -> frozenset[str]:
    for item in value:
        text = str(item)
        try:
            dt.date.fromisoformat(text if len(text) == 10 else f"2024-{text}")  # 2024: Feb 29 is a valid MM-DD
        except ValueError:
            raise ControllerConfigError(f"{where}: {item!r} is not a date 'MM-DD' or 'YYYY-MM-DD'") from None
        if not DATE.match(text):
            raise ControllerConfigError(f"{where}: {item!r} is not a date 'MM-DD' or 'YYYY-MM-DD'")
    return frozenset(str(item) for item in value)


def _date_matches(day: dt.date, dates: frozenset[str]) -> bool:
    return day.isoformat() in dates or day.strftime("%m-%d") in dates


def _minute_of_day(time: dt.datetime) -> float:
    return time.hour * 60 + time.minute + time.second / 60


def _check_range(path: str, where: str, values: Mapping[str, float], inputs: Mapping[str, InputRange]) -> None:
    for tag, value in values.items():
        limits = inputs[tag]
        if not limits.contains(value):
            raise ControllerConfigError(f"{path}: {where}: {tag} = {value:g} is outside the tag's EURange "
                                        f"[{limits.low:g}, {limits.high:g}] {limits.unit}")
