"""Training data: run a building under an excitation controller and record its historian.

A GP learns the effect of a control input only if the data shows that input moving. The
excitation controller holds each input at a random level for a random 1-4 hours (piecewise
constant, independent per input), within a band around the tag map's default while the building
is occupied and within a setback band while it is not, and keeps heating below cooling setpoint.
Setbacks stay beyond the occupied band: a low unoccupied cooling setpoint makes the Large Office
cycle its chillers on and off all night, a regime no real operator runs and no model forecasts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.config import BuildingConfig, RunPeriod
from bridge.engines.external_interface import ExternalInterfaceEngine
from bridge.historian import Historian
from bridge.tagmap import TagMap


class ExcitationError(ValueError):
    """An excitation setting that cannot be used; the message names the tag."""


@dataclass(frozen=True)
class ExcitationController:
    """Randomized but realistic setpoint schedules for every input tag of a building.

    - occupied (weekdays, ``occupied_hours`` [start, end) local time): level uniform in
      default +/- ``band_fraction`` * (max - min), clipped to [min, max];
    - unoccupied: tags in ``setback`` draw from above the occupied band up to max ("up", e.g.
      cooling setpoint) or from min up to below it ("down", e.g. heating setpoint), as a real
      setback does; other tags keep the occupied band;
    - with probability ``default_share`` a held level is the tag's default instead, so that the
      operating point of a building left at its defaults is in the data too;
    - each level is held for a whole number of hours drawn uniformly from ``hold_hours``;
      a level change also happens whenever occupancy changes;
    - ``deadband`` = (heating tag, cooling tag, K): heating is kept at least K below cooling.
    """

    tagmap: TagMap
    seed: int = 0
    hold_hours: tuple[int, int] = (1, 4)
    occupied_hours: tuple[int, int] = (6, 20)
    band_fraction: float = 0.25
    default_share: float = 0.0
    setback: Mapping[str, str] = field(default_factory=lambda: {"CoolingSetpoint": "up", "HeatingSetpoint": "down"})
    deadband: tuple[str, str, float] = ("HeatingSetpoint", "CoolingSetpoint", 1.0)

    def __post_init__(self) -> None:
        for tag, direction in self.setback.items():
            if direction not in ("up", "down"):
                raise ExcitationError(f"setback for {tag!r} must be 'up' or 'down', got {direction!r}")
        low, high = self.hold_hours
        if not 1 <= low <= high:
            raise ExcitationError(f"hold_hours must be (low, high) with 1 <= low <= high, got {self.hold_hours}")

    def occupied(self, time: dt.datetime) -> bool:
        start, end = self.occupied_hours
        return time.weekday() < 5 and start <= time.hour < end

    def band(self, tag: str, occupied: bool) -> tuple[float, float]:
        """[low, high] of the random levels of an input tag (tag units)."""
        item = self.tagmap.input(tag)
        half = self.band_fraction * (item.max - item.min)
        direction = None if occupied else self.setback.get(tag)
        low, high = max(item.min, item.default - half), min(item.max, item.default + half)
        if direction == "up":
            return high, item.max
        if direction == "down":
            return item.min, low
        return low, high

    def schedule(self, period: RunPeriod) -> pd.DataFrame:
        """Input values for every step of ``period`` (row k = inputs applied during step k+1),
        indexed by the calendar time at the start of that step."""
        rng = np.random.default_rng(self.seed)
        times = [period.time_of(k * period.step_s) for k in range(period.steps)]
        occupied = np.array([self.occupied(t) for t in times])
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
                values[k:end] = item.default if rng.random() < self.default_share else level
                k = end
            columns[item.tag] = np.round(values, 2)
        frame = pd.DataFrame(columns, index=pd.DatetimeIndex(times, name="time"))
        heating, cooling, gap_k = self.deadband
        if heating in frame and cooling in frame:
            frame[heating] = np.minimum(frame[heating], frame[cooling] - gap_k)
        return frame


async def collect(building: BuildingConfig, period: RunPeriod, historian_path: Path, workdir: Path,
                  controller: ExcitationController | None = None, start_timeout_s: float = 300.0,
                  step_timeout_s: float = 60.0) -> Path:
    """Run ``building`` in EnergyPlus over ``period`` under ``controller`` (default: seed 0) and
    record every step, inputs included, in a new historian at ``historian_path``; return that path.

    Row k of the historian holds the outputs at the end of step k (row 0: the start sample) and
    the inputs applied during that step (row 0: the inputs of the first step)."""
    if historian_path.exists():
        raise FileExistsError(f"historian file already exists (not overwriting): {historian_path}")
    controller = controller or ExcitationController(building.tagmap)
    schedule = controller.schedule(period)
    meta = {"source": "bridge.twin.collect", "building": building.name, "model": str(building.model),
            "weather": str(building.weather), "period_start": period.start.isoformat(),
            "period_end": period.end.isoformat(), "timesteps_per_hour": str(period.timesteps_per_hour),
            "excitation_seed": str(controller.seed)}
    historian = Historian(historian_path, {building.name: building.tagmap}, meta)
    engine = ExternalInterfaceEngine(building.name, building.model, building.weather, building.tagmap, period,
                                     workdir, start_timeout_s=start_timeout_s, step_timeout_s=step_timeout_s)
    try:
        sample = await engine.start()
        record = lambda step, inputs: historian.record([(building.name, step, sample.sim_time_s,
                                                         period.time_of(sample.sim_time_s),
                                                         {**sample.outputs, **inputs})])
        record(0, schedule.iloc[0].to_dict())
        for step, (_, row) in enumerate(schedule.iterrows(), start=1):
            inputs = row.to_dict()
            sample = await engine.step(inputs)
            if sample is None:
                break
            record(step, inputs)
    finally:
        await engine.stop()
        historian.close()
    return historian_path


def collect_history(building: BuildingConfig, period: RunPeriod, historian_path: Path, workdir: Path,
                    controller: ExcitationController | None = None, **timeouts: float) -> Path:
    """Synchronous ``collect`` (for scripts and tests)."""
    return asyncio.run(collect(building, period, historian_path, workdir, controller, **timeouts))
