"""The twin's disturbances: outdoor dry-bulb temperature and relative humidity from an EPW file.

An EPW file (bridge/epw.py) has 8 header lines, then one row per hour; 0-based column 6 is dry bulb
(degC) and 8 relative humidity (%). The row of hour h (1..24) holds the value at h:00, the end of that hour;
EnergyPlus interpolates linearly between hours to its timestep, and so does ``weather_series``.

Leap years. A typical-year file (TMY: all 365 days, no 29 February) is read by EnergyPlus 25.2
day after day from the run's first day, whatever the calendar says (measured: docs/twin.md, "Twin
engine"): a run that starts before 29 February of a leap year reads the file's 1 March on
29 February, its 2 March on 1 March, its 1 January on 31 December, and stays a day ahead in the
years after (1 January of the next year reads the file's 2 January). ``weather_series`` does the
same; other files (with 29 February, or covering part of a year) are read by calendar date.
"""

from __future__ import annotations

import calendar
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.epw import HEADER_LINES, WeatherError, read_records

# EnergyPlus output variable -> 0-based EPW column of the same quantity
EPW_COLUMNS = {
    "Site Outdoor Air Drybulb Temperature": 6,
    "Site Outdoor Air Relative Humidity": 8,
}


def read_epw(path: Path, year: int) -> pd.DataFrame:
    """Hourly rows of an EPW file as a DataFrame indexed by calendar time in ``year`` (the
    file's own years are ignored, as EnergyPlus does), one column per EnergyPlus variable of
    ``EPW_COLUMNS``."""
    return _stamp(path, _read_rows(path), year)


def weather_series(path: Path, times: pd.DatetimeIndex, run_start: dt.date | None = None) -> pd.DataFrame:
    """Outdoor conditions at ``times``, linearly interpolated between hours, as the EnergyPlus run
    that starts on ``run_start`` (default: the day of the first time) reads them; given, its 00:00 takes
    that day's 24:00 values, as EnergyPlus's first hour interpolates from them. A typical-year file
    is read in sequence from ``run_start`` (module docstring); another is stamped for every calendar
    year ``times`` touch and the years joined, so a run ending 31 December (its last time is 1 January
    00:00 of the next year) reads the file's 31 December. Times up to a day beyond the series' ends
    take the first or last hour's values; a time in a longer gap (a file covering part of a year) is
    refused."""
    rows = _read_rows(path)
    given_start, run_start = run_start, run_start or times.min().date()
    if _typical_year(rows):
        hourly = _in_sequence(rows, run_start, times.min().date() - dt.timedelta(days=1), times.max().date())
    else:
        hourly = pd.concat([_stamp(path, rows, year) for year in range(times.min().year, times.max().year + 1)])
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
    for number, fields in read_records(path)[1]:
        try:
            month, day, hour = int(fields[1]), int(fields[2]), int(fields[3])
            values = [float(fields[column]) for column in EPW_COLUMNS.values()]
            dt.datetime(2000, month, day)  # a leap year: 29 February is a date
        except (IndexError, ValueError) as exc:
            raise WeatherError(f"{path}: line {number}: not an EPW data row ({exc})") from None
        rows.append((month, day, hour, values))
    if not rows:
        raise WeatherError(f"{path}: no hourly data rows after the {HEADER_LINES} header lines")
    return rows


def _stamp(path: Path, rows: list[Row], year: int) -> pd.DataFrame:
    """``rows`` as a DataFrame indexed by time in ``year``; 29 February rows are dropped in a
    non-leap year."""
    leap = calendar.isleap(year)
    kept = [row for row in rows if leap or row[:2] != (2, 29)]
    if not kept:
        raise WeatherError(f"{path}: no hourly data rows for {year} (only 29 February)")
    times = [dt.datetime(year, month, day) + dt.timedelta(hours=hour) for month, day, hour, _ in kept]
    return pd.DataFrame([row[3] for row in kept], index=pd.DatetimeIndex(times, name="time"),
                        columns=list(EPW_COLUMNS))


def _typical_year(rows: list[Row]) -> bool:
    """Whether ``rows`` are 24 hours of each of the 365 days of a common year, in calendar order."""
    expected = [(day.month, day.day, hour) for day in pd.date_range("2025-01-01", "2025-12-31") for hour in range(1, 25)]
    return [row[:3] for row in rows] == expected


def _in_sequence(rows: list[Row], run_start: dt.date, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The hours of calendar days ``first`` .. ``last`` from a typical-year file read day after day from
    ``run_start`` (which reads its own month and day; 29 February reads 1 March), wrapping round."""
    month_day = (run_start.month, run_start.day) if (run_start.month, run_start.day) != (2, 29) else (3, 1)
    offset = dt.date(2025, *month_day).timetuple().tm_yday - 1  # the file day the run's first day reads
    values, times = [], []
    for number in range((last - first).days + 1):
        day = first + dt.timedelta(days=number)
        file_day = (offset + (day - run_start).days) % 365
        values += [row[3] for row in rows[24 * file_day:24 * file_day + 24]]
        times += [dt.datetime.combine(day, dt.time()) + dt.timedelta(hours=hour) for hour in range(1, 25)]
    return pd.DataFrame(values, index=pd.DatetimeIndex(times, name="time"), columns=list(EPW_COLUMNS))


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
