"""The twin's disturbances: outdoor dry-bulb temperature and relative humidity from an EPW file.

An EPW file has 8 header lines, then one row per hour; 0-based column 6 is dry bulb (degC) and 8
relative humidity (%). The row of hour h (1..24) holds the value at h:00, the end of that hour;
EnergyPlus interpolates linearly between hours to its timestep, and so does ``weather_series``.

Leap years. A typical-year file (TMY) has no 29 February. EnergyPlus 25.2 then reads the file's
days in sequence from the run's first day (measured: bridge docs/twin.md, "Twin engine"): a run
that starts on or before 29 February of a leap year reads the file's 1 March on 29 February, its
2 March on 1 March, and so on, one day ahead until the end of that year; a run that starts later
in the year reads every date as it is. ``weather_series`` does the same.
"""

from __future__ import annotations

import calendar
import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

HEADER_LINES = 8
# EnergyPlus output variable -> 0-based EPW column of the same quantity
EPW_COLUMNS = {
    "Site Outdoor Air Drybulb Temperature": 6,
    "Site Outdoor Air Relative Humidity": 8,
}


class WeatherError(ValueError):
    """An EPW file that cannot be read; the message names the file and line."""


def read_epw(path: Path, year: int) -> pd.DataFrame:
    """Hourly rows of an EPW file as a DataFrame indexed by calendar time in ``year`` (the
    file's own years are ignored, as EnergyPlus does), one column per EnergyPlus variable of
    ``EPW_COLUMNS``."""
    return _stamp(path, _read_rows(path), year)


def weather_series(path: Path, times: pd.DatetimeIndex, run_start: dt.date | None = None) -> pd.DataFrame:
    """Outdoor conditions at ``times``, linearly interpolated between hours, as the EnergyPlus run
    that starts on ``run_start`` (default: the day of the first time) reads them; given, its 00:00 takes
    that day's 24:00 values, as EnergyPlus's first hour interpolates from them. The file is stamped
    for every calendar year ``times`` touch and the years joined, so a run ending 31 December
    (its last time is 1 January 00:00 of the next year) reads the file's 31 December; in a leap
    year a file without 29 February is read one day ahead from 29 February on when the run started
    by then (module docstring). Times up to a day beyond the joined series' ends take the first or
    last hour's values; a time in a longer gap (a file covering part of a year) is refused."""
    rows = _read_rows(path)
    given_start, run_start = run_start, run_start or times.min().date()
    has_leap_day = any(row[:2] == (2, 29) for row in rows)
    hourly = pd.concat([_stamp(path, rows, year, ahead_from_leap_day=calendar.isleap(year) and not has_leap_day
                               and run_start <= dt.date(year, 2, 29))
                        for year in range(times.min().year, times.max().year + 1)])
    first_midnight, first_day_end = pd.Timestamp(run_start), pd.Timestamp(run_start) + pd.Timedelta(days=1)
    if given_start and first_midnight in hourly.index and first_day_end in hourly.index:
        # warm-up repeats the first day, so EnergyPlus starts the run from that day's 24:00 value
        hourly.loc[first_midnight] = hourly.loc[first_day_end]
    hourly_s, wanted_s = _seconds(hourly.index), _seconds(times)
    _check_covered(path, hourly.index, hourly_s, wanted_s, times)
    return pd.DataFrame({name: np.interp(wanted_s, hourly_s, hourly[name].to_numpy()) for name in hourly},
                        index=times)


Row = tuple[int, int, int, list[float]]  # month, day, hour (1..24), values of EPW_COLUMNS


def _read_rows(path: Path) -> list[Row]:
    """The data rows of an EPW file; a row whose date is not a calendar date (in a leap year)
    raises WeatherError naming the file and line."""
    rows = []
    try:
        with open(path, newline="", encoding="latin-1") as handle:
            for number, fields in enumerate(csv.reader(handle), start=1):
                if number <= HEADER_LINES or not fields:
                    continue
                try:
                    month, day, hour = int(fields[1]), int(fields[2]), int(fields[3])
                    values = [float(fields[column]) for column in EPW_COLUMNS.values()]
                    dt.datetime(2000, month, day)  # a leap year: 29 February is a date
                except (IndexError, ValueError) as exc:
                    raise WeatherError(f"{path}: line {number}: not an EPW data row ({exc})") from None
                rows.append((month, day, hour, values))
    except FileNotFoundError:
        raise WeatherError(f"EPW weather file not found: {path}") from None
    if not rows:
        raise WeatherError(f"{path}: no hourly data rows after the {HEADER_LINES} header lines")
    return rows


def _stamp(path: Path, rows: list[Row], year: int, ahead_from_leap_day: bool = False) -> pd.DataFrame:
    """``rows`` as a DataFrame indexed by time in ``year``; 29 February rows are dropped in a
    non-leap year. ``ahead_from_leap_day`` (a leap year, a file without 29 February): the rows from
    1 March on are stamped a day earlier and the file's first day closes the year on 31 December,
    as EnergyPlus reads such a file in sequence."""
    leap = calendar.isleap(year)
    kept = [row for row in rows if leap or row[:2] != (2, 29)]
    if not kept:
        raise WeatherError(f"{path}: no hourly data rows for {year} (only 29 February)")
    days = [dt.date(year, month, day) for month, day, _, _ in kept]
    if ahead_from_leap_day:
        leap_day = dt.date(year, 2, 29)
        days = [day - dt.timedelta(days=1) if day > leap_day else day for day in days]
        if days[-1] == dt.date(year, 12, 30) and kept[0][:2] == (1, 1):
            first = [row for row in kept if row[:2] == (1, 1)]
            kept, days = kept + first, days + [dt.date(year, 12, 31)] * len(first)
    times = [dt.datetime.combine(day, dt.time()) + dt.timedelta(hours=row[2]) for day, row in zip(days, kept)]
    return pd.DataFrame([row[3] for row in kept], index=pd.DatetimeIndex(times, name="time"),
                        columns=list(EPW_COLUMNS))


def _check_covered(path: Path, index: pd.DatetimeIndex, hourly_s: np.ndarray, wanted_s: np.ndarray,
                   times: pd.DatetimeIndex) -> None:
    """Refuse times more than a day beyond the series' ends or inside a gap of more than a day
    between its rows."""
    day = 86400.0
    padded = np.concatenate([[hourly_s[0] - day], hourly_s, [hourly_s[-1] + day]])
    after = np.searchsorted(padded, wanted_s, side="left").clip(1, len(padded) - 1)
    gap = padded[after] - padded[after - 1]
    outside = (wanted_s < padded[0]) | (wanted_s > padded[-1]) | (gap > day + 3600.0)
    if outside.any():
        raise WeatherError(f"{path}: covers {index[0]} .. {index[-1]} (stamped for the requested years), not "
                           f"{times[outside][0]} of the requested {times.min()} .. {times.max()}")


def _seconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Seconds since the epoch, whatever the index's time resolution."""
    return index.values.astype("datetime64[s]").astype("int64").astype(float)
