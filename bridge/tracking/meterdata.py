"""Measured data a calibration is fitted to: interval meter data, or monthly utility bills.

**Interval data** (``load_interval``): a historian file or a CSV whose first column is the time
(``runfiles.load_run``, local standard time, stamped at the end of each interval), one column of mean
power (kW) or energy per interval (kWh), at a regular step that divides the hour (15-minute or hourly
data); returned as hourly energy, kWh per clock hour labelled by the hour's start.

**Bills** (``load_bills``): a CSV with a header and one row per billing period::

    start,end,kWh,peak_kW,gas_therm
    2025-01-01,2025-01-31,5210,21.4,310

``start`` and ``end`` are dates (YYYY-MM-DD), both days included; each bill starts the day after the
previous one ends. The electricity column's name carries its unit: ``kWh`` or ``MWh``; peak demand
``peak_kW`` or ``peak_MW`` (optional); gas (optional) ``gas_kWh``, ``gas_therm`` (29.3071 kWh) or
``gas_MWh``. Columns ``cost``, ``account``, ``meter`` and ``notes`` are kept out of the figures. Names are
case-insensitive; a number column without a unit (``usage``, ``energy``, ``peak``) is refused.

Refused, with a one-line ``MeterDataError`` naming the file and the line: a gap or an overlap between
bills (or between interval samples), a period ending before it starts, a value that is not a number,
a negative value, an unclear unit, a missing column, an empty file.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.errors import TwinbridgeError

KWH_PER = {"kwh": 1.0, "mwh": 1000.0, "therm": 29.3071}
ELECTRICITY = {"kwh": 1.0, "mwh": 1000.0}
PEAK = {"peak_kw": 1.0, "peak_mw": 1000.0}
GAS = {"gas_kwh": 1.0, "gas_mwh": 1000.0, "gas_therm": KWH_PER["therm"]}
IGNORED = {"cost", "account", "meter", "notes"}
MAX_BILL_DAYS = 62


class MeterDataError(TwinbridgeError, ValueError):
    """Measured data that cannot be used; the message names the file and the row."""


@dataclass(frozen=True)
class Bill:
    """One billing period: ``start`` to ``end`` (days included), electricity kWh, peak kW, gas kWh."""

    start: dt.date
    end: dt.date
    kwh: float
    peak_kw: float | None = None
    gas_kwh: float | None = None
    line: int = 0  # line of the file (header = 1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def hours(self) -> pd.DatetimeIndex:
        """The clock hours (starts) of the billing period."""
        return pd.date_range(dt.datetime.combine(self.start, dt.time()), periods=24 * self.days, freq="h")


def load_bills(path: str | Path) -> list[Bill]:
    """The bills of a CSV file (see the module docstring), oldest first, checked row by row."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MeterDataError(f"{path}: bills file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MeterDataError(f"{path}: cannot read the bills file as UTF-8 text: {exc}") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise MeterDataError(f"{path}: empty file: expected a header 'start,end,kWh[,peak_kW][,gas_therm]'")
    columns = _bill_columns(path, rows[0])
    bills: list[Bill] = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(rows[0]):
            raise MeterDataError(f"{path}: line {number}: {len(row)} values, the header has {len(rows[0])} "
                                 "(a thousands separator or a missing value?)")
        bill = _bill(path, number, row, columns)
        if bills:
            expected = bills[-1].end + dt.timedelta(days=1)
            if bill.start != expected:
                what = "gap" if bill.start > expected else "overlap"
                raise MeterDataError(f"{path}: line {number}: {what}: bill starts {bill.start}, the previous one (line "
                                     f"{bills[-1].line}) ends {bills[-1].end}; each bill starts the day after the last")
        bills.append(bill)
    if not bills:
        raise MeterDataError(f"{path}: no bills after the header")
    return bills


def _bill_columns(path: Path, header: list[str]) -> dict[str, tuple[int, float]]:
    """Column role ("start", "end", "kwh", "peak", "gas") -> (index, factor to kWh or kW)."""
    columns: dict[str, tuple[int, float]] = {}
    for index, raw in enumerate(header):
        name = raw.strip().lower().replace(" ", "_")
        role = ("start" if name == "start" else "end" if name == "end" else
                "kwh" if name in ELECTRICITY else "peak" if name in PEAK else "gas" if name in GAS else
                None if name in IGNORED else "?")
        if role == "?":
            raise MeterDataError(f"{path}: line 1: column {raw.strip()!r}: unclear name or unit; expected start, end, "
                                 f"kWh or MWh, optional peak_kW or peak_MW, gas_kWh, gas_MWh or gas_therm "
                                 f"(and {sorted(IGNORED)}, not read)")
        if role is None:
            continue
        if role in columns:
            raise MeterDataError(f"{path}: line 1: two {role} columns ({raw.strip()!r} and column "
                                 f"{columns[role][0] + 1}): which one holds the bill?")
        factor = {**ELECTRICITY, **PEAK, **GAS}.get(name, 1.0)
        columns[role] = (index, factor)
    missing = [role for role in ("start", "end", "kwh") if role not in columns]
    if missing:
        raise MeterDataError(f"{path}: line 1: missing column(s) {missing} (electricity as kWh or MWh)")
    return columns


def _bill(path: Path, number: int, row: list[str], columns: dict[str, tuple[int, float]]) -> Bill:
    where = f"{path}: line {number}"

    def cell(role: str) -> str:
        return row[columns[role][0]].strip()

    def day(role: str) -> dt.date:
        try:
            return dt.date.fromisoformat(cell(role))
        except ValueError:
            raise MeterDataError(f"{where}: {role} must be a date YYYY-MM-DD, got {cell(role)!r}") from None

    def amount(role: str, required: bool) -> float | None:
        text = cell(role) if role in columns else ""
        if not text:
            if required:
                raise MeterDataError(f"{where}: no {role} value")
            return None
        try:
            value = float(text)
        except ValueError:
            raise MeterDataError(f"{where}: {role} must be a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0:
            raise MeterDataError(f"{where}: {role} must be a finite number >= 0, got {text!r}")
        return value * columns[role][1]

    start, end = day("start"), day("end")
    if end < start:
        raise MeterDataError(f"{where}: the bill ends ({end}) before it starts ({start})")
    if (end - start).days + 1 > MAX_BILL_DAYS:
        raise MeterDataError(f"{where}: a {(end - start).days + 1}-day bill; at most {MAX_BILL_DAYS} days expected")
    return Bill(start, end, amount("kwh", True), amount("peak", False), amount("gas", False), number)  # type: ignore[arg-type]


def load_interval(path: str | Path, column: str = "FacilityPower", kind: str = "power_kw",
                  building: str | None = None) -> pd.Series:
    """Hourly energy (kWh per clock hour, labelled by its start) of interval meter data (module docstring)."""
    from bridge.tracking.runfiles import load_run
    from bridge.tracking.savings import hourly_energy_kwh

    path = Path(path)
    run = load_run(path, building)
    if column not in run.columns:
        raise MeterDataError(f"{path}: no column {column!r} (columns: {list(run.columns)})")
    check_interval(path, run[column])
    return hourly_energy_kwh(run.assign(**{column: pd.to_numeric(run[column])}), column, kind).dropna()


def check_interval(path: Path, values: pd.Series) -> None:
    """Refuse interval data with non-numeric or negative values, repeated or unordered times, gaps, or a
    step that does not divide the hour; errors name the data row (1 = the first after the header)."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy() | ~np.isfinite(numbers.to_numpy(float, na_value=np.nan)))
    if bad.size:
        raise MeterDataError(f"{path}: data row {bad[0] + 1}: {values.name} must be a number, got {values.iloc[bad[0]]!r}")
    negative = np.flatnonzero(numbers.to_numpy() < 0)
    if negative.size:
        raise MeterDataError(f"{path}: data row {negative[0] + 1}: {values.name} is negative ({numbers.iloc[negative[0]]})")
    if len(values) < 2:
        raise MeterDataError(f"{path}: need at least two samples")
    steps = pd.Series(values.index).diff().iloc[1:]
    step = steps.median()
    if step <= pd.Timedelta(0) or pd.Timedelta(hours=1) % step != pd.Timedelta(0):
        raise MeterDataError(f"{path}: a {step} step: interval data must be on a step dividing the hour (15 min, 1 h)")
    for kind, rows in (("overlap (time repeated or going back)", np.flatnonzero(steps.to_numpy() <= pd.Timedelta(0))),
                       ("gap", np.flatnonzero(steps.to_numpy() > step))):
        if rows.size:
            row = rows[0] + 1
            raise MeterDataError(f"{path}: data row {row + 1}: {kind} after {values.index[row - 1]} "
                                 f"(at {values.index[row]}, step {step})")
