"""The realtime clock (``clock = "realtime"``, docs/bridge.md): simulated time is wall-clock time.

A run starts at ``[run] start_time`` or, without one, at the current time rounded down to the step,
and advances ``speed`` simulated seconds per wall second (1 for a twin beside its building; more in
tests), anchored at its start. It has no end a user picks: the EnergyPlus run period begins on the
start's day and lasts ``realtime_years`` years (the weather file repeats underneath; measured with
EnergyPlus 25.2: the day of week follows the run period's calendar years, a typical-year file is
read day after day, so each 29 February shifts the weather one day against the calendar).

EnergyPlus can only start a run period at midnight, and its simulation time is local *standard*
time. So the engines start on the start's day and the steps from midnight to the start are stepped
at full speed on the tag-map defaults, neither published nor recorded (``skip_steps``); the first
published step (step 0) is the start. Times are true UTC: standard time minus the time zone of the
EPW file's LOCATION record; the building's local clock time adds the model's daylight saving rule
(``bridge.daylight``: whole days, as EnergyPlus shifts its schedules).
"""

from __future__ import annotations

import datetime as dt
import math

from bridge.config import BuildingConfig, CampusConfig, RunPeriod
from bridge.daylight import daylight_saving_rule, period_in, simulation_time
from bridge.epw import time_zone_hours

UTC = dt.timezone.utc


class Zone:
    """A building's time: local standard time ``offset_h`` hours from UTC, and its daylight saving rule
    (the two date fields of RunPeriodControl:DaylightSavingTime, or None)."""

    def __init__(self, offset_h: float, daylight: tuple[str, str] | None):
        self.offset = dt.timedelta(hours=offset_h)
        self.daylight = daylight

    def utc(self, standard: dt.datetime) -> dt.datetime:
        """The UTC instant of a local standard (EnergyPlus simulation) time."""
        return (standard - self.offset).replace(tzinfo=UTC)

    def standard(self, instant: dt.datetime) -> dt.datetime:
        """Local standard time (naive) of an aware instant."""
        return instant.astimezone(UTC).replace(tzinfo=None) + self.offset

    def local(self, standard: dt.datetime) -> dt.datetime:
        """The building's clock time of a standard time, aware with its UTC offset (one hour more on the
        days the daylight saving rule covers)."""
        shift = dt.timedelta(hours=1) if self._in_daylight_saving(standard) else dt.timedelta()
        return (standard + shift).replace(tzinfo=dt.timezone(self.offset + shift))

    def standard_of(self, time: dt.datetime) -> dt.datetime:
        """Local standard time of ``time``: an aware instant, or (naive) a reading of the building's clock."""
        if time.tzinfo is not None:
            return self.standard(time)
        return simulation_time(time, period_in(self.daylight, time.year))

    def _in_daylight_saving(self, standard: dt.datetime) -> bool:
        period = period_in(self.daylight, standard.year)
        return period is not None and period[0] <= standard.date() <= period[1]


def building_zone(building: BuildingConfig) -> Zone:
    """The time of ``building``: its weather file's time zone and its model's daylight saving rule."""
    return Zone(time_zone_hours(building.weather), daylight_saving_rule(building.model))


def open_period(first_day: dt.date, years: int, timesteps_per_hour: int) -> RunPeriod:
    """A run period of ``years`` years from ``first_day`` (the day before its anniversary inclusive)."""
    try:
        anniversary = first_day.replace(year=first_day.year + years)
    except ValueError:  # 29 February
        anniversary = dt.date(first_day.year + years, 3, 1)
    return RunPeriod(first_day, anniversary - dt.timedelta(days=1), timesteps_per_hour, open_ended=True)


def floor_to_step(standard: dt.datetime, step_s: float) -> dt.datetime:
    """``standard`` rounded down to a whole step from its midnight (EnergyPlus's steps start at midnight)."""
    midnight = dt.datetime.combine(standard.date(), dt.time())
    return midnight + dt.timedelta(seconds=math.floor((standard - midnight).total_seconds() / step_s) * step_s)


class RealtimeSchedule:
    """Where a realtime run of ``config`` starts and how its steps map to wall time and UTC."""

    def __init__(self, config: CampusConfig):
        self.config = config
        self.zone = building_zone(config.buildings[0])  # one zone for all (config checks it)
        self.period = config.period

    def run_period(self, now: dt.datetime) -> RunPeriod:
        """The run period of a run starting at aware ``now``: from the start's day (start_time's, else now's)."""
        first = self.zone.standard_of(self.config.start_time or now)
        self.period = open_period(first.date(), self.config.realtime_years, self.config.period.timesteps_per_hour)
        return self.period

    def start(self, now: dt.datetime) -> dt.datetime:
        """Standard time of step 0: start_time rounded down to the step, else aware ``now`` so rounded."""
        return floor_to_step(self.zone.standard_of(self.config.start_time or now), self.period.step_s)

    def skip_steps(self, start: dt.datetime) -> int:
        """Steps from the period's first midnight to ``start`` (standard time), stepped before step 0."""
        return round((start - self.period.time_of(0.0)).total_seconds() / self.period.step_s)

    def anchor(self, start: dt.datetime, wall_now: float) -> float:
        """Wall time (epoch s) at which step 0 is due: the start itself when the run starts now (at speed 1
        sim time IS wall time), ``wall_now`` for a given start_time."""
        return wall_now if self.config.start_time is not None else self.zone.utc(start).timestamp()

    def utc(self, sim_time_s: float) -> dt.datetime:
        """UTC instant of an engine's simulation time (seconds since the period's first midnight)."""
        return self.zone.utc(self.period.time_of(sim_time_s))

    def local(self, sim_time_s: float) -> dt.datetime:
        """The building's clock time (aware, with its offset) of an engine's simulation time."""
        return self.zone.local(self.period.time_of(sim_time_s))
