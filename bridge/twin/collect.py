"""Training data: run a building under an excitation controller and record its historian.

A GP learns the effect of a control input only if the data shows that input moving. The
excitation controller keeps the building's normal operating pattern (occupied hours, the model's
own night and weekend setbacks) and perturbs only the occupied setpoints: each input is held at a
random level within comfort and equipment limits for a random 1-4 hours, independently per input,
as in the identification of control-oriented models. Unoccupied setpoints are the model's own
setbacks: random night setpoints make the Large Office cycle chillers and fans on and off all
night, a regime no real operator runs and no model forecasts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.config import BuildingConfig, RunPeriod
from bridge.daylight import clock_time, daylight_saving_rule, period_in
from bridge.errors import TwinbridgeError
from bridge.historian import Historian
from bridge.tagmap import TagMap
from bridge.twin.features import reference_holidays


class ExcitationError(TwinbridgeError, ValueError):
    """An excitation setting that cannot be used; the message names the tag."""


# (building, period) -> the engine that simulates it over that period: an object with the
# interface of bridge.engines.base.Engine (start, step, stop), which the caller chooses.
EngineFactory = Callable[[BuildingConfig, RunPeriod], object]


# Comfort and equipment limits of the occupied excitation for the tags of the DOE reference tag maps
# (clipped to each tag's [min, max]); other tags use default +/- band_fraction * (max - min).
REFERENCE_BANDS = {"CoolingSetpoint": (22.0, 26.0), "HeatingSetpoint": (19.0, 21.0),
                   "SupplyAirTempSetpoint": (11.0, 15.0), "ChilledWaterSetpoint": (5.5, 9.0)}
# Unoccupied levels of the DOE reference buildings' own thermostat schedules (CLGSETP_SCH, HTGSETP_SCH).
REFERENCE_SETBACK = {"CoolingSetpoint": 26.7, "HeatingSetpoint": 15.6}


@dataclass(frozen=True)
class ExcitationController:
    """Randomized but realistic setpoint schedules for every input tag of a building.

    The building keeps its normal operating pattern; only the occupied setpoints are perturbed:

    - occupied = the HVAC operating hours of the DOE reference buildings: weekdays
      ``occupied_hours`` [start, end) (06-22), Saturdays ``saturday_hours`` (06-18); Sundays and
      ``holidays`` (default: the reference holidays of the years scheduled) are unoccupied;
    - occupied: level uniform in the tag's band: ``bands[tag]`` (default ``REFERENCE_BANDS``,
      comfort and equipment limits) clipped to [min, max], else default +/- ``band_fraction`` *
      (max - min);
    - unoccupied: tags in ``setback`` are held at that level (the model's own night setback,
      26.7 / 15.6 degC), every other tag at its default: no operator excites a building at night;
    - with probability ``default_share`` a held occupied level is the tag's default instead;
    - each level is held for a whole number of hours drawn uniformly from ``hold_hours``;
      a level change also happens whenever occupancy changes;
    - ``deadband`` = (heating tag, cooling tag, K): heating is kept at least K below cooling;
    - ``daylight_saving``: the model's daylight saving rule, (first, last day) in EnergyPlus's date
      forms ("2nd Sunday in March"), applied in each year (``bridge.daylight``), so that the
      occupied hours are the building's clock hours, as its HVAC schedule is: in July the DOE
      models run their fans 05-21 h simulation (standard) time. None: hours in simulation time.
    """

    tagmap: TagMap
    seed: int = 0
    hold_hours: tuple[int, int] = (1, 4)
    occupied_hours: tuple[int, int] = (6, 22)
    saturday_hours: tuple[int, int] | None = (6, 18)
    band_fraction: float = 0.2
    bands: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(REFERENCE_BANDS))
    default_share: float = 0.0
    setback: Mapping[str, float] = field(default_factory=lambda: dict(REFERENCE_SETBACK))
    deadband: tuple[str, str, float] = ("HeatingSetpoint", "CoolingSetpoint", 1.0)
    holidays: tuple[str, ...] | None = None
    daylight_saving: tuple[str, str] | None = None  # (first, last day) in EnergyPlus's date forms

    def __post_init__(self) -> None:
        for tag, level in self.setback.items():
            if not isinstance(level, (int, float)):
                raise ExcitationError(f"setback level for {tag!r} must be a number, got {level!r}")
        for tag, (low, high) in self.bands.items():
            if low > high:
                raise ExcitationError(f"band for {tag!r} must be (low, high) with low <= high, got {(low, high)}")
        try:
            period_in(self.daylight_saving, 2025)
        except (ValueError, TypeError, IndexError) as exc:
            raise ExcitationError(f"daylight_saving must be (first, last day) in EnergyPlus's date forms, "
                                  f"got {self.daylight_saving!r} ({exc})") from None
        low, high = self.hold_hours
        if not 1 <= low <= high:
            raise ExcitationError(f"hold_hours must be (low, high) with 1 <= low <= high, got {self.hold_hours}")

    def occupied(self, time: dt.datetime, holidays: tuple[str, ...] = ()) -> bool:
        """Whether simulation time ``time`` falls in the occupied hours (of the building's clock)."""
        time = clock_time(time, period_in(self.daylight_saving, time.year))
        if time.date().isoformat() in holidays:
            return False
        hours = self.occupied_hours if time.weekday() < 5 else self.saturday_hours if time.weekday() == 5 else None
        return hours is not None and hours[0] <= time.hour < hours[1]

    def band(self, tag: str, occupied: bool) -> tuple[float, float]:
        """[low, high] of the random levels of an input tag (tag units); low == high when fixed."""
        item = self.tagmap.input(tag)
        if not occupied:
            level = float(np.clip(self.setback.get(tag, item.default), item.min, item.max))
            return level, level
        if tag in self.bands:
            low, high = self.bands[tag]
        else:
            half = self.band_fraction * (item.max - item.min)
            low, high = item.default - half, item.default + half
        low, high = max(item.min, low), min(item.max, high)
        return (low, high) if low <= high else (item.default, item.default)

    def schedule(self, period: RunPeriod) -> pd.DataFrame:
        """Input values for every step of ``period`` (row k = inputs applied during step k+1),
        indexed by the calendar time at the start of that step."""
        rng = np.random.default_rng(self.seed)
        times = [period.time_of(k * period.step_s) for k in range(period.steps)]
        holidays = self.holidays
        if holidays is None:
            holidays = tuple(day for year in sorted({t.year for t in times}) for day in reference_holidays(year))
        occupied = np.array([self.occupied(t, holidays) for t in times])
        steps_per_hour = period.timesteps_per_hour
        columns: dict[str, np.ndarray] = {}
        for item in self.tagmap.inputs:
            values = np.empty(len(times))
            k = 0
            while k < len(times):
                hold = int(rng.integers(self.hold_hours[0], self.hold_hours[1] + 1)) * steps_per_hour
                end = k + hold
                changes = np.nonzero(occupied[k:end] != occupied[k])[0]
                if changes.size:
                    end = k + int(changes[0])
                level = rng.uniform(*self.band(item.tag, bool(occupied[k])))
                default = occupied[k] and rng.random() < self.default_share
                values[k:end] = item.default if default else level
                k = end
            columns[item.tag] = np.round(values, 2)
        frame = pd.DataFrame(columns, index=pd.DatetimeIndex(times, name="time"))
        heating, cooling, gap_k = self.deadband
        if heating in frame and cooling in frame:
            frame[heating] = np.minimum(frame[heating], frame[cooling] - gap_k)
        return frame


def excitation_for(building: BuildingConfig, **settings) -> ExcitationController:
    """The excitation of ``building`` on the building's clock (its model's daylight saving rule,
    applied in each year a run touches); ``settings`` are further ExcitationController fields (seed,
    hold_hours, ...)."""
    return ExcitationController(building.tagmap, daylight_saving=daylight_saving_rule(building.model), **settings)


async def collect(building: BuildingConfig, period: RunPeriod, historian_path: Path, engine_factory: EngineFactory,
                  controller: ExcitationController | None = None) -> Path:
    """Run ``building`` over ``period`` in the engine ``engine_factory(building, period)`` makes
    (EnergyPlus, for training data) under ``controller`` and record every step, inputs included, in
    a new historian at ``historian_path``; return that path. The default controller is
    ``excitation_for(building)`` (seed 0). An engine that fails to start leaves no historian file.

    Row k of the historian holds the outputs at the end of step k (row 0: the start sample) and
    the inputs applied during that step (row 0: the inputs of the first step)."""
    if historian_path.exists():
        raise FileExistsError(f"historian file already exists (not overwriting): {historian_path}")
    controller = controller or excitation_for(building)
    schedule = controller.schedule(period)
    meta = {"source": "bridge.twin.collect", "building": building.name, "model": str(building.model),
            "weather": str(building.weather), "period_start": period.start.isoformat(),
            "period_end": period.end.isoformat(), "timesteps_per_hour": str(period.timesteps_per_hour),
            "excitation_seed": str(controller.seed)}
    engine = engine_factory(building, period)
    historian = Historian(historian_path, {building.name: building.tagmap}, meta)
    recorded = False
    try:
        sample = await engine.start()
        record = lambda step, inputs: historian.record([(building.name, step, sample.sim_time_s,
                                                         period.time_of(sample.sim_time_s),
                                                         {**sample.outputs, **inputs})])
        record(0, schedule.iloc[0].to_dict())
        recorded = True
        for step, (_, row) in enumerate(schedule.iterrows(), start=1):
            inputs = row.to_dict()
            sample = await engine.step(inputs)
            if sample is None:
                break
            record(step, inputs)
    finally:
        await engine.stop()
        historian.close()
        if not recorded:  # the engine failed to start: no empty historian in the way of the next attempt
            historian_path.unlink(missing_ok=True)
    return historian_path


def collect_history(building: BuildingConfig, period: RunPeriod, historian_path: Path, engine_factory: EngineFactory,
                    controller: ExcitationController | None = None) -> Path:
    """Synchronous ``collect`` (for scripts and tests)."""
    return asyncio.run(collect(building, period, historian_path, engine_factory, controller))
