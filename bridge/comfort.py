"""Time-varying comfort bands as BOPTEST defines them: per zone an occupied and an unoccupied band,
switched by an occupancy schedule on the building's clock.

BOPTEST's thermal discomfort (``tdis_tot``) integrates a zone's deviation from ``LowerSetp[z]`` and
``UpperSetp[z]``, time series of the test case (Blum et al. 2021, J. Building Performance Simulation
14(5); BOPTEST ``kpis/kpi_calculator.py``, ``get_thermal_discomfort``). Its office test cases set them
from the HVAC occupancy schedule, e.g. multizone_office_simple_air: 20-24 degC occupied, 12-30 degC
otherwise (``generate_internal_setpoints_data.py``). A tag map declares the same (docs/kpis.md)::

    [occupancy]                     # hours of the occupied band, by day type (the building's clock)
    weekdays = [6.0, 22.0]          # Monday to Friday, start and end hour
    saturday = [6.0, 18.0]
    sunday = []                     # unoccupied all day
    daylight_saving = ["2nd Sunday in March", "1st Sunday in November"]   # optional: the model's DST

    [[outputs]]
    tag = "CoreZoneTemp"
    ...
    comfort_occupied = [20.0, 24.0]
    comfort_unoccupied = [12.0, 30.0]
    occupancy = { weekdays = [7.0, 19.0], saturday = [], sunday = [] }   # optional: this zone's own
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bridge.daylight import clock_time, period_in
from bridge.tomlfile import Table

DAY_TYPES = ("weekdays", "saturday", "sunday")


@dataclass(frozen=True)
class Occupancy:
    """Occupied hours ``(start_h, end_h)`` on weekdays (Monday-Friday), Saturdays and Sundays; None:
    unoccupied all that day. A simulation (standard) time t is occupied when start_h <= hour < end_h on the
    building's clock: one hour later than t within the ``daylight_saving`` period (bridge/daylight.py)."""

    weekdays: tuple[float, float] | None
    saturday: tuple[float, float] | None
    sunday: tuple[float, float] | None
    daylight_saving: tuple[str, str] | None = None  # (first, last day) in EnergyPlus's date forms

    def occupied(self, time: dt.datetime) -> bool:
        time = clock_time(time, period_in(self.daylight_saving, time.year))
        hours = (self.weekdays, self.saturday, self.sunday)[min(max(time.weekday() - 4, 0), 2)]
        hour = time.hour + time.minute / 60 + time.second / 3600
        return hours is not None and hours[0] <= hour < hours[1]


@dataclass(frozen=True)
class ComfortBands:
    """A zone's occupied and unoccupied comfort bands (low, high), degC, and when it is occupied."""

    occupied: tuple[float, float]
    unoccupied: tuple[float, float]
    occupancy: Occupancy

    def limits(self, times: Sequence[dt.datetime]) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) limits in degC at each of ``times``: BOPTEST's LowerSetp[z], UpperSetp[z]."""
        mask = np.array([self.occupancy.occupied(t) for t in times], bool)
        low = np.where(mask, self.occupied[0], self.unoccupied[0])
        high = np.where(mask, self.occupied[1], self.unoccupied[1])
        return low, high


def read_band(entry: Table, key: str) -> tuple[float, float] | None:
    """``[low, high]`` in degC under ``key`` (low < high), or None when absent."""
    band = entry.values.get(key)
    if band is None:
        return None
    numbers = isinstance(band, list) and len(band) == 2 and all(
        isinstance(value, (int, float)) and not isinstance(value, bool) for value in band)
    if not (numbers and band[0] < band[1]):
        raise entry.error(f"{entry.where}: {key!r} must be [low, high] with low < high, got {band!r}")
    return float(band[0]), float(band[1])


def read_occupancy(table: Table) -> Occupancy:
    """An occupancy table: each of DAY_TYPES is ``[start_h, end_h]`` (0 <= start < end <= 24) or ``[]``
    (unoccupied); a day type not given is unoccupied. ``daylight_saving``: [first day, last day]."""
    table.check_keys((*DAY_TYPES, "daylight_saving"))
    days = []
    for day in DAY_TYPES:
        hours = table.array(day, [])
        if not hours:
            days.append(None)
            continue
        numbers = len(hours) == 2 and all(isinstance(h, (int, float)) and not isinstance(h, bool) for h in hours)
        if not (numbers and 0 <= hours[0] < hours[1] <= 24):
            raise table.error(f"{table.where}: {day!r} must be [start_hour, end_hour] with 0 <= start < end <= 24, "
                              f"or [] (unoccupied), got {hours!r}")
        days.append((float(hours[0]), float(hours[1])))
    rule = table.array("daylight_saving", [])
    if rule:
        try:
            if len(rule) != 2 or not all(isinstance(day, str) for day in rule):
                raise ValueError(f"expected [first day, last day], got {rule!r}")
            period_in((rule[0], rule[1]), 2025)
        except ValueError as exc:
            raise table.error(f"{table.where}: 'daylight_saving': {exc}") from None
    return Occupancy(*days, (rule[0], rule[1]) if rule else None)
