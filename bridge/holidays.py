"""Holidays as rules, evaluated per year: a date every year, a date of one year, or EnergyPlus's special days.

A schedule's ``holidays`` (controllers/schedule.py) are read here, so that a controller's holidays
can be the model's own: the DOE reference models declare theirs as ``RunPeriodControl:SpecialDays``
of type Holiday, with start dates in EnergyPlus's forms ("Last Monday in May", "4th Thursday in
November", "July 4"), and a floating holiday is on another date every year. A rule is matched per
year: ``holiday_dates(rules, year)`` gives the dates of that year.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

from bridge.daylight import MONTHS, WEEKDAYS, parse_day
from bridge.errors import TwinbridgeError

MONTH_DAY = re.compile(r"(\d{4}-)?(\d{2})-(\d{2})")  # "MM-DD" (every year) or "YYYY-MM-DD"
# The holidays of the DOE reference buildings (their RunPeriodControl:SpecialDays, all of type Holiday,
# 1 day each), in the IDF's own words.
REFERENCE_HOLIDAYS = ("January 1", "3rd Monday in January", "3rd Monday in February", "Last Monday in May",
                      "July 4", "1st Monday in September", "2nd Monday in October", "November 11",
                      "4th Thursday in November", "December 25")
FORMS = ("'MM-DD' (every year), 'YYYY-MM-DD', or an EnergyPlus special day such as 'Last Monday in May', "
         "'4th Thursday in November' or 'July 4'")


class HolidayError(TwinbridgeError, ValueError):
    """A holiday entry none of the forms reads; the message names the entry (callers add file and key)."""


@functools.lru_cache(maxsize=256)  # a schedule asks at every step
def holiday_dates(rules: tuple[str, ...], year: int) -> frozenset[dt.date]:
    """The dates in ``year`` of the holiday ``rules`` (a tuple of entries, each one of):

    - "MM-DD": that day every year ("02-29" in leap years only);
    - "YYYY-MM-DD": that date, in its own year only;
    - the start date forms of EnergyPlus's ``RunPeriodControl:SpecialDays`` (EnergyPlus Input Output
      Reference, group Location and Climate, RunPeriodControl:SpecialDays, field Start Date):
      "<1st|2nd|3rd|4th|Last> <Weekday> in <Month>" (e.g. "Last Monday in May"), "<Month> <day>"
      ("July 4"), "<day> <Month>" and "<month>/<day>"; case-insensitive, read by
      bridge/daylight.py's ``parse_day``. "5th <Weekday> in <Month>" is refused: most years have none
      (use "Last").

    Raises HolidayError naming the first entry that no form reads (checked in a leap year whatever
    ``year`` is, so an entry is refused, or not, the same way every year)."""
    return frozenset(day for rule in rules if (day := _date_of(rule, year)) is not None)


def _date_of(rule: str, year: int) -> dt.date | None:
    """The day ``rule`` names in ``year``; None when it names none that year (another year's date,
    February 29 of a common year). HolidayError when no form reads it."""
    if not isinstance(rule, str):
        raise HolidayError(f"{rule!r} is not a holiday: expected a string, {FORMS}")
    text = rule.strip()
    match = MONTH_DAY.fullmatch(text)
    if match and match[1]:
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            raise HolidayError(f"{rule!r} is not a date: expected {FORMS}") from None
        return day if day.year == year else None
    if match:
        text = f"{match[2]}/{match[3]}"  # parse_day's month/day form
    words = text.lower().split()
    if len(words) == 4 and words[0] == "5th" and words[1] in WEEKDAYS and words[2] == "in" and words[3] in MONTHS:
        _, weekday, _, month = text.split()
        raise HolidayError(f"{rule!r}: most years have no 5th {weekday} in {month}; use 'Last {weekday} in {month}'")
    try:
        parse_day(text, 2024)  # a leap year: every form that names a day in some year names one in 2024
    except ValueError:
        raise HolidayError(f"{rule!r} is not a holiday: expected {FORMS}") from None
    try:
        return parse_day(text, year)
    except ValueError:  # February 29 in a common year
        return None
