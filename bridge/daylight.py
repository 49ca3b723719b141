"""Daylight saving time of an EnergyPlus model: its building clock against the simulation clock.

EnergyPlus's simulation time (the bridge's SimTime) is local *standard* time all year. A model
with ``RunPeriodControl:DaylightSavingTime`` evaluates its schedules one hour later on the days
of that period (a daily indicator: the whole day shifts), so an "Until: 06:00" HVAC schedule
starts the fans at 05:00 simulation time in July. Whatever reasons in the building's own hours
(an operator's occupied period, an excitation that must match the HVAC schedule) converts with
``clock_time``. Date fields are read as EnergyPlus writes them: "2nd Sunday in March", "Last
Sunday in October", "3/10", "March 10" or "10 March".
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from pathlib import Path

from bridge.errors import TwinbridgeError
from bridge.idf import Idf

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ORDINALS = {"1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "last": -1}


class DaylightError(TwinbridgeError, ValueError):
    """A daylight saving date EnergyPlus's rules cannot read; the message names the model and field."""


def daylight_saving_rule(model: Path) -> tuple[str, str] | None:
    """The (start, end) date fields of the model's RunPeriodControl:DaylightSavingTime, as written
    (e.g. "2nd Sunday in March"), checked to be readable; None when the model has none."""
    found = Idf.read(model).of_class("RunPeriodControl:DaylightSavingTime")
    if not found:
        return None
    fields = found[0].fields
    if len(fields) < 2:
        raise DaylightError(f"{model}: RunPeriodControl:DaylightSavingTime needs a start and an end date")
    rule = fields[0], fields[1]
    try:
        period_in(rule, 2025)
    except ValueError as exc:
        raise DaylightError(f"{model}: RunPeriodControl:DaylightSavingTime: {exc}") from None
    return rule


def period_in(rule: tuple[str, str] | None, year: int) -> tuple[dt.date, dt.date] | None:
    """(first, last day) of a daylight saving ``rule`` (two dates in EnergyPlus's forms) in ``year``."""
    return None if rule is None else (parse_day(rule[0], year), parse_day(rule[1], year))


@functools.lru_cache(maxsize=256)  # the schedule controller asks for its two dates at every step
def parse_day(text: str, year: int) -> dt.date:
    """A date in one of EnergyPlus's forms ("2nd Sunday in March", "Last Sunday in October",
    "3/10", "March 10", "10 March") in ``year``."""
    words = text.strip().lower().split()
    try:
        if len(words) == 4 and words[0] in ORDINALS and words[1] in WEEKDAYS and words[2] == "in":
            return nth_weekday(year, MONTHS.index(words[3]) + 1, WEEKDAYS.index(words[1]), ORDINALS[words[0]])
        if len(words) == 1 and re.fullmatch(r"\d{1,2}/\d{1,2}", words[0]):
            month, day = (int(part) for part in words[0].split("/"))
            return dt.date(year, month, day)
        if len(words) == 2:
            month_word, day_word = words if words[0] in MONTHS else reversed(words)
            return dt.date(year, MONTHS.index(month_word) + 1, int(day_word))
    except (ValueError, OverflowError):  # OverflowError: a day number too large for a date
        pass
    raise ValueError(f"cannot read the date {text!r} (expected e.g. '2nd Sunday in March', '3/10' or 'March 10')")


def clock_time(standard: dt.datetime, period: tuple[dt.date, dt.date] | None) -> dt.datetime:
    """The building's clock time of a simulation (standard) time: one hour later on the days
    ``period`` covers (first and last day included), unchanged when ``period`` is None."""
    if period is not None and period[0] <= standard.date() <= period[1]:
        return standard + dt.timedelta(hours=1)
    return standard


def simulation_time(clock: dt.datetime, period: tuple[dt.date, dt.date] | None) -> dt.datetime:
    """The simulation (standard) time of a building clock time: the inverse of ``clock_time``."""
    earlier = clock - dt.timedelta(hours=1)
    if period is not None and period[0] <= earlier.date() <= period[1]:
        return earlier
    return clock


def nth_weekday(year: int, month: int, weekday: int, n: int) -> dt.date:
    """The n-th (1-5, or -1 for the last) ``weekday`` (Monday = 0) of a month: how EnergyPlus
    names floating dates (daylight saving, special days)."""
    if n == -1:
        following = dt.date(year + month // 12, month % 12 + 1, 1)
        last = following - dt.timedelta(days=1)
        return last - dt.timedelta(days=(last.weekday() - weekday) % 7)
    first = dt.date(year, month, 1)
    day = first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    if day.month != month:
        raise ValueError(f"no {n}th weekday {weekday} in {year}-{month:02d}")
    return day
