"""The twin's disturbances: outdoor dry-bulb temperature and relative humidity from an EPW file.

An EPW file has 8 header lines, then one row per hour; 0-based column 6 is dry bulb (degC) and 8
relative humidity (%). The row of hour h (1..24) holds the value at h:00, the end of that hour;
EnergyPlus interpolates linearly between hours to its timestep, and so does ``weather_series``.
"""

from __future__ import annotations

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
    times, rows = [], []
    try:
        with open(path, newline="", encoding="latin-1") as handle:
            for number, fields in enumerate(csv.reader(handle), start=1):
                if number <= HEADER_LINES or not fields:
                    continue
                try:
                    month, day, hour = int(fields[1]), int(fields[2]), int(fields[3])
                    values = [float(fields[column]) for column in EPW_COLUMNS.values()]
                    start = dt.datetime(year, month, day)
                except (IndexError, ValueError) as exc:
                    if fields[1:3] == ["2", "29"]:  # leap-day rows in a non-leap year
                        continue
                    raise WeatherError(f"{path}: line {number}: not an EPW data row ({exc})") from None
                times.append(start + dt.timedelta(hours=hour))
                rows.append(values)
    except FileNotFoundError:
        raise WeatherError(f"EPW weather file not found: {path}") from None
    if not rows:
        raise WeatherError(f"{path}: no hourly data rows after the {HEADER_LINES} header lines")
    return pd.DataFrame(rows, index=pd.DatetimeIndex(times, name="time"), columns=list(EPW_COLUMNS))


def weather_series(path: Path, times: pd.DatetimeIndex) -> pd.DataFrame:
    """Outdoor conditions at ``times``, linearly interpolated between hours. Times up to a day
    beyond the file's ends (lags before 1 January) take the first or last hour's values."""
    hourly = read_epw(path, times[-1].year)
    first, last = hourly.index[0], hourly.index[-1]
    if times.min() < first - pd.Timedelta(days=1) or times.max() > last + pd.Timedelta(days=1):
        raise WeatherError(f"{path}: covers {first} .. {last}, not the requested {times.min()} .. {times.max()}")
    hourly_s, wanted_s = _seconds(hourly.index), _seconds(times)
    return pd.DataFrame({name: np.interp(wanted_s, hourly_s, hourly[name].to_numpy()) for name in hourly},
                        index=times)


def _seconds(index: pd.DatetimeIndex) -> np.ndarray:
    """Seconds since the epoch, whatever the index's time resolution."""
    return index.values.astype("datetime64[s]").astype("int64").astype(float)
