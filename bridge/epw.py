"""EPW weather files: reading their records, and checking one before EnergyPlus is given it.

An EPW file is text: 8 header records (``HEADER_RECORDS``, one a line, in that order), then one data
record a line of ``DATA_FIELDS`` comma-separated fields: year, month, day, hour (1..24), minute, a
text of source flags, then 29 numbers (dry bulb in degC at 0-based field 6, ...). ``DATA PERIODS``
says how many records there are per hour and which days the file covers.

EnergyPlus does not check a weather file before it runs: given a text file that is not one, it
spent 100 % CPU until the bridge's 300 s timeout and then named the model in its error; a binary
file was also reported against the model. ``check_epw`` refuses such a file in milliseconds with
a WeatherError naming it and the line.

``splice_day`` writes a copy of a file with the records of one day (month and day) replaced, every other
line byte for byte the file's: a twin's warm-up day taken from its live building's weather (docs/live.md,
"Spin-up"), from another EPW file or from the live building's recorded history (bridge/live/warmup.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import math
from pathlib import Path

from bridge.errors import TwinbridgeError

HEADER_RECORDS = ("LOCATION", "DESIGN CONDITIONS", "TYPICAL/EXTREME PERIODS", "GROUND TEMPERATURES",
                  "HOLIDAYS/DAYLIGHT SAVINGS", "COMMENTS 1", "COMMENTS 2", "DATA PERIODS")
HEADER_LINES = len(HEADER_RECORDS)
DATA_FIELDS = 35
CHECKED_RECORDS = 48  # data records whose every number is read; of the others, field count and date
# LOCATION fields 6..9: (name, low, high), as EnergyPlus's Site:Location allows them
LOCATION_FIELDS = (("latitude", -90.0, 90.0), ("longitude", -180.0, 180.0), ("time zone", -12.0, 14.0),
                   ("elevation", -300.0, 8900.0))

Record = tuple[int, list[str]]  # (1-based line number, fields)
# 0-based data fields of the quantities EnergyPlus's "Weather Data" actuators set (bridge.tagmap.WEATHER_CONTROLS);
# units as the actuators': degC, degC, %, W/m2 (hourly Wh/m2), W/m2, deg clockwise from north, m/s
WEATHER_FIELDS = {"Outdoor Dry Bulb": 6, "Outdoor Dew Point": 7, "Outdoor Relative Humidity": 8,
                  "Direct Solar": 14, "Diffuse Solar": 15, "Wind Direction": 20, "Wind Speed": 21}
HORIZONTAL_INFRARED_FIELD = 12  # Wh/m2: EnergyPlus's sky temperature is (IR / sigma)^(1/4) - 273.15


class WeatherError(TwinbridgeError, ValueError):
    """An EPW file that cannot be read or used; the message names the file and line."""


def read_records(path: Path) -> tuple[list[list[str]], list[Record]]:
    """(header records' fields, data records) of an EPW file, blank lines skipped; WeatherError if it is
    missing, not a text file or holds fewer lines than the header."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise WeatherError(f"EPW weather file not found: {path}") from None
    except (OSError, ValueError) as exc:  # a folder, no permission, a NUL in the path
        reason = getattr(exc, "strerror", None) or exc
        raise WeatherError(f"{path!r}: cannot read the EPW weather file: {reason}") from None
    if b"\0" in data:
        line = data[:data.index(b"\0")].count(b"\n") + 1
        raise WeatherError(f"{path}: line {line}: a NUL byte: a binary file, not an EPW weather file (text)")
    try:
        lines = list(enumerate(csv.reader(data.decode("latin-1").splitlines()), start=1))
    except csv.Error as exc:  # a line longer than the csv module takes
        raise WeatherError(f"{path}: not an EPW weather file: {exc}") from None
    if len(lines) < HEADER_LINES:
        raise WeatherError(f"{path}: {len(lines)} lines, fewer than the {HEADER_LINES} header lines of an EPW file")
    return [fields for _, fields in lines[:HEADER_LINES]], [(n, fields) for n, fields in lines[HEADER_LINES:] if fields]


def check_epw(path: Path) -> None:
    """Refuse (WeatherError naming file and line) a file EnergyPlus cannot run on: its 8 header records,
    LOCATION's latitude, longitude, time zone and elevation, DATA PERIODS' records per hour and days,
    the field count and date of every data record, the numbers of the first ``CHECKED_RECORDS``, and the
    number of records the data periods need. A file is read once per version (size, modification time)."""
    try:
        stat = Path(path).stat()
        version = (stat.st_size, stat.st_mtime_ns)
    except (OSError, ValueError):
        version = None  # read_records says why
    _check_version(Path(path), version)


@functools.lru_cache(maxsize=64)
def _check_version(path: Path, _version: tuple[int, int] | None) -> None:
    header, records = read_records(path)
    for number, (fields, name) in enumerate(zip(header, HEADER_RECORDS), start=1):
        if (fields[0] if fields else "").strip().upper() != name:
            raise WeatherError(f"{path}: line {number}: expected the {name} header record of an EPW file, "
                               f"got {','.join(fields)[:40]!r}")
    _check_location(path, header[0])
    per_hour, days = _data_periods(path, header[HEADER_LINES - 1])
    for index, (number, fields) in enumerate(records):
        _check_record(path, number, fields, numbers=index < CHECKED_RECORDS)
    if len(records) not in {d * 24 * per_hour for d in days}:
        raise WeatherError(f"{path}: {len(records)} data records; DATA PERIODS ({','.join(header[-1][1:])}) needs "
                           f"{' or '.join(str(d * 24 * per_hour) for d in sorted(days))} ({per_hour} a hour)")


def time_zone_hours(path: Path) -> float:
    """The time zone of an EPW file's LOCATION record: hours from UTC of local standard time (Chicago: -6)."""
    header, _ = read_records(path)
    return _number(path, 1, header[0][8] if len(header[0]) > 8 else "", "LOCATION time zone", *LOCATION_FIELDS[2][1:])


def _number(path: Path, line: int, text: str, what: str, low: float = -math.inf, high: float = math.inf) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise WeatherError(f"{path}: line {line}: {what} must be a number in [{low:g}, {high:g}], got {text!r}")
    return value


def _check_location(path: Path, fields: list[str]) -> None:
    if len(fields) < 10:
        raise WeatherError(f"{path}: line 1: LOCATION needs 10 fields (..., latitude, longitude, time zone, "
                           f"elevation), got {len(fields)}")
    for text, (what, low, high) in zip(fields[6:10], LOCATION_FIELDS):
        _number(path, 1, text, f"LOCATION {what}", low, high)


def _data_periods(path: Path, fields: list[str]) -> tuple[int, set[int]]:
    """(records per hour, the possible numbers of days covered: in a common and in a leap year)."""
    where = HEADER_LINES
    if len(fields) < 3:
        raise WeatherError(f"{path}: line {where}: DATA PERIODS needs the number of periods and records per hour")
    periods = _number(path, where, fields[1], "DATA PERIODS number of periods", 1, 366)
    per_hour = _number(path, where, fields[2], "DATA PERIODS records per hour", 1, 60)
    if len(fields) < 3 + 4 * int(periods) or periods % 1 or per_hour % 1 or 60 % per_hour:
        raise WeatherError(f"{path}: line {where}: DATA PERIODS must be 'DATA PERIODS,<periods>,<records per hour "
                           "dividing 60>' and name, first weekday, start and end date of each period")
    days = {sum(_period_days(path, fields[5 + 4 * i], fields[6 + 4 * i], year) for i in range(int(periods)))
            for year in (2025, 2024)}
    return int(per_hour), days


def _period_days(path: Path, start: str, end: str, year: int) -> int:
    """Days of a data period from 'M/D' (or 'M/D/YYYY') to 'M/D', in ``year`` unless the dates give theirs."""
    first, last = (_date(path, text, year) for text in (start, end))
    if last < first:  # across the new year
        last = _date(path, end, year + 1)
    return (last - first).days + 1


def _date(path: Path, text: str, year: int) -> dt.date:
    try:
        parts = [int(part) for part in text.replace(" ", "").split("/")]
        month, day, year = (parts + [year])[:3] if len(parts) in (2, 3) else (0, 0, 0)
        return dt.date(year, month, day)
    except ValueError:
        raise WeatherError(f"{path}: line {HEADER_LINES}: DATA PERIODS date {text!r} is not 'M/D' or "
                           "'M/D/YYYY'") from None


def _check_record(path: Path, line: int, fields: list[str], numbers: bool) -> None:
    if len(fields) != DATA_FIELDS:
        raise WeatherError(f"{path}: line {line}: {len(fields)} fields; an EPW data record has {DATA_FIELDS}")
    month = int(_number(path, line, fields[1], "month", 1, 12))
    day = int(_number(path, line, fields[2], "day", 1, 31))
    _number(path, line, fields[3], "hour", 1, 24)
    _number(path, line, fields[4], "minute", 0, 60)
    if day > (29 if month == 2 else 30 if month in (4, 6, 9, 11) else 31):
        raise WeatherError(f"{path}: line {line}: {month}/{day} is not a date")
    if numbers:
        _number(path, line, fields[0], "year")
        for column in range(6, DATA_FIELDS):
            _number(path, line, fields[column], f"field {column + 1}")


def day_records(path: Path, day: dt.date) -> list[bytes]:
    """The data records (lines, with their line ends) of ``day``'s month and day in EPW file ``path``."""
    return [line for index, line in enumerate(Path(path).read_bytes().splitlines(keepends=True))
            if _on(index, line, day)]


def splice_day(path: Path, day: dt.date, records: list[bytes], out: Path) -> Path:
    """Write ``out``: EPW file ``path`` with its records of ``day`` (month and day) replaced, in order, by
    ``records`` (as many lines, with their line ends); every other line is ``path``'s, byte for byte.
    WeatherError if the counts differ."""
    lines = Path(path).read_bytes().splitlines(keepends=True)
    taken = [index for index, line in enumerate(lines) if _on(index, line, day)]
    if len(taken) != len(records):
        raise WeatherError(f"{path}: {len(taken)} records on {day:%m-%d}, {len(records)} given to put there")
    for index, record in zip(taken, records):
        lines[index] = record
    Path(out).write_bytes(b"".join(lines))
    return Path(out)


def with_fields(record: bytes, values: dict[int, str]) -> bytes:
    """An EPW data record (a line, with its line end) with its 0-based fields ``values`` replaced."""
    body = record.rstrip(b"\r\n")
    fields = body.split(b",")
    for index, text in values.items():
        fields[index] = text.encode("latin-1")
    return b",".join(fields) + record[len(body):]


def _on(index: int, line: bytes, day: dt.date) -> bool:
    """Whether 0-based line ``index`` of an EPW file, ``line``, is a data record of ``day``'s month and day."""
    fields = line.split(b",", 3)
    if index < HEADER_LINES or len(fields) < 4:
        return False
    try:
        return (int(fields[1]), int(fields[2])) == (day.month, day.day)
    except ValueError:
        return False
