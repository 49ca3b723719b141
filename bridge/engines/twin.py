"""A trained GP twin (bridge.twin) served behind the same tags as the EnergyPlus building.

Each step takes the input tags, reads outdoor temperature and humidity for that timestep from
the EPW file, and predicts every modelled output one step ahead, feeding its own predicted mean
back as the output lags (zero-variance method, as for forecasts). Outputs of a step:
- every modelled tag (mean) and ``<Tag>Std`` (its predictive standard deviation, same unit);
- the weather outputs (from the EPW file, as EnergyPlus interpolates it);
- "Site Day Type Index" outputs (1 Sunday .. 7 Saturday, 8 holiday) from the calendar;
- an ``Electricity:Facility`` meter in kWh, from the modelled electric power: like the EnergyPlus
  engines' meter tags it carries the energy of the previous step (0 at the first two samples;
  EnergyPlus 25.2's EMS meter sensors lag one zone timestep, docs/bridge.md);
- NaN for any other output of the tag map (the model does not know it).
Before the first step the model needs ``max_lag`` rows of history: inputs at their defaults,
outputs at the model's daily profile (or its training mean). The engine holds a day of steps at a
time (``WINDOW_STEPS`` at most) and the rows of history before it, so that a realtime run of years
keeps its memory flat.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.config import RunPeriod
from bridge.engines.base import Engine, EngineFault, Sample
from bridge.tagmap import TagMap
from bridge.twin.features import profile_at
from bridge.twin.persist import check_compatible, load_model
from bridge.twin.weather import EPW_COLUMNS, weather_series

log = logging.getLogger(__name__)
DAY_TYPE_VARIABLE = "Site Day Type Index"
WINDOW_STEPS = 1440  # steps of the table held at a time: a day at 1-minute steps


def std_tag(tag: str) -> str:
    """Name of the tag carrying the predictive standard deviation of ``tag``."""
    return f"{tag}Std"


class TwinEngine(Engine):
    """Engine whose building is a trained ``TwinModel`` (see module docstring)."""

    def __init__(self, name: str, model_path: Path, weather: Path, tagmap: TagMap, period: RunPeriod):
        self.name, self.model_path, self.weather, self.tagmap, self.period = name, model_path, weather, tagmap, period
        self.twin = load_model(model_path)
        check_compatible(self.twin, tagmap, model_path)
        # rows of history kept before the current one: the lags, and at least one (the time
        # features read the timestep from two consecutive rows)
        self.max_lag = max(1, *(model.features.max_lag for model in self.twin.models.values()))
        self._disturbances = sorted({tag for model in self.twin.models.values() for tag in model.features.disturbances})
        self._step = 0
        self._dropped = 0  # steps whose rows were dropped from the front of the table
        # a window of the run as one table (rows: max_lag of history, then the start and the steps after it),
        # filled as the run goes; row ``_row`` is the current one
        self._times: pd.DatetimeIndex | None = None
        self._columns = [*(item.tag for item in tagmap.inputs), *self._disturbances, *self.twin.targets]
        self._table: np.ndarray | None = None
        self._weather: pd.DataFrame | None = None
        # the modelled electric power in kW, if any, and its value at the last sample (the meter's lag)
        self._power_tag = next((o.tag for o in tagmap.outputs if o.role == "electric_power" and o.unit == "kW"
                                and o.tag in self.twin.models), None)
        self._previous_power_kw = math.nan

    @property
    def std_tags(self) -> list[str]:
        """The extra output tags this engine publishes besides the tag map's outputs."""
        return [std_tag(target) for target in self.twin.targets]

    @property
    def published_tagmap(self) -> TagMap:
        """The building's tag map plus one ``<Tag>Std`` output (same unit) per modelled tag: what an
        OPC UA server should expose for this engine."""
        extra = tuple(dataclasses.replace(self.tagmap.output(target), tag=std_tag(target), role=None, comfort=None,
                                          bands=None, min=None, max=None,
                                          description=f"Predictive standard deviation of {target} (GP twin)")
                      for target in self.twin.targets)
        return dataclasses.replace(self.tagmap, outputs=self.tagmap.outputs + extra)

    @property
    def _row(self) -> int:
        """The table row of the current step."""
        return self.max_lag + self._step - self._dropped

    async def start(self) -> Sample:
        step = pd.Timedelta(seconds=self.period.step_s)
        start = pd.Timestamp(self.period.time_of(0.0))
        self._step, self._dropped = 0, 0
        self._fill_window(pd.date_range(start - self.max_lag * step, start, freq=step), np.empty((0, len(self._columns))))
        history = slice(0, self.max_lag + 1)
        for item in self.tagmap.inputs:
            self._table[history, self._columns.index(item.tag)] = item.default
        for target, model in self.twin.models.items():
            self._table[history, self._columns.index(target)] = self._initial_output(model, self._times[history])
        return self._sample(self._predict())

    def _fill_window(self, kept_times: pd.DatetimeIndex, kept_rows: np.ndarray) -> None:
        """A new table: ``kept_rows`` (at ``kept_times``), then up to ``WINDOW_STEPS`` steps after them (not
        beyond the period), their weather read from the EPW file."""
        step = pd.Timedelta(seconds=self.period.step_s)
        steps = min(WINDOW_STEPS, self.period.steps - (self._dropped + len(kept_times) - self.max_lag - 1))
        times = kept_times.append(pd.date_range(kept_times[-1] + step, periods=max(steps, 0), freq=step))
        try:
            self._weather = weather_series(self.weather, times, run_start=self.period.start)
        except ValueError as exc:
            raise EngineFault(f"{self.name}: twin cannot read weather: {exc}") from None
        table = np.full((len(times), len(self._columns)), np.nan)
        table[:len(kept_rows)] = kept_rows
        for tag in self._disturbances:
            table[:, self._columns.index(tag)] = self._weather[self.tagmap.output(tag).variable].to_numpy(float)
        self._times, self._table = times, table

    def _slide_window(self) -> None:
        """The table is full: keep its current row and the ``max_lag`` before it, add the next steps."""
        row = self._row
        kept = slice(row - self.max_lag, row + 1)
        rows, times = self._table[kept].copy(), self._times[kept]
        self._dropped += row - self.max_lag
        self._fill_window(times, rows)

    async def step(self, inputs: Mapping[str, float]) -> Sample | None:
        if self._table is None:
            raise EngineFault(f"{self.name}: twin engine is not running")
        if self._step >= self.period.steps:
            return None
        values = self._checked(inputs)
        if self._row + 1 >= len(self._times):
            self._slide_window()
        self._step += 1
        row = self._row
        for tag, value in values.items():
            self._table[row, self._columns.index(tag)] = value
        return self._sample(self._predict())

    async def stop(self) -> None:
        self._table = None

    def _checked(self, inputs: Mapping[str, float]) -> dict[str, float]:
        """Input values for the coming step; missing or non-finite ones are errors, out-of-range ones
        are clipped to the tag map's [min, max] (the model never saw beyond it)."""
        values = {}
        for item in self.tagmap.inputs:
            if item.tag not in inputs:
                raise EngineFault(f"{self.name}: input {item.tag!r} missing from step inputs")
            value = float(inputs[item.tag])
            if not math.isfinite(value):
                raise EngineFault(f"{self.name}: input {item.tag!r} is not a finite number ({value})")
            if not item.min <= value <= item.max:
                log.warning("%s: %s = %s outside [%s, %s], clipped", self.name, item.tag, value, item.min, item.max)
            values[item.tag] = min(max(value, item.min), item.max)
        return values

    def _predict(self) -> dict[str, tuple[float, float]]:
        """(mean, std) of every target at the current row; means are written back as lags."""
        row = self._row
        window = slice(row - self.max_lag - 1 if row > self.max_lag else 0, row + 1)
        frame = pd.DataFrame(self._table[window], index=self._times[window], columns=self._columns, copy=False)
        predictions = {}
        for target, model in self.twin.models.items():
            features = model.feature_rows(frame).to_numpy(float)[-1:]
            mean, std = model.predict_features(features)
            predictions[target] = (float(mean[0]), float(std[0]))
            self._table[row, self._columns.index(target)] = mean[0]
        return predictions

    def _sample(self, predictions: dict[str, tuple[float, float]]) -> Sample:
        time = self._times[self._row]
        step_h = self.period.step_s / 3600
        outputs: dict[str, float] = {}
        for item in self.tagmap.outputs:
            if item.tag in predictions:
                outputs[item.tag], outputs[std_tag(item.tag)] = predictions[item.tag]
            elif item.variable in EPW_COLUMNS:
                outputs[item.tag] = float(self._weather[item.variable].iat[self._row])
            elif item.variable == DAY_TYPE_VARIABLE:
                outputs[item.tag] = self._day_type(time)
            elif item.meter == "Electricity:Facility" and item.unit == "kWh":
                outputs[item.tag] = math.nan if self._power_tag is None else (
                    self._previous_power_kw * step_h if self._step >= 2 else 0.0)
            else:
                outputs[item.tag] = math.nan
        if self._power_tag is not None:
            self._previous_power_kw = predictions[self._power_tag][0]
        return Sample(self._step * self.period.step_s, outputs)

    def _initial_output(self, model, times: pd.DatetimeIndex) -> np.ndarray:
        """Output history before the first step: the daily profile, else the training mean."""
        if model.profile_ is not None:
            return profile_at(times, model.features, model.profile_)
        return np.full(len(times), float(np.mean(model.y_train_)))

    def _day_type(self, time: pd.Timestamp) -> float:
        """EnergyPlus day type index of the timestep ending at ``time``: 1 Sunday .. 7 Saturday, 8 holiday."""
        features = next(iter(self.twin.models.values())).features
        middle = time - pd.Timedelta(seconds=self.period.step_s / 2)
        if features.is_holiday(middle.date()):
            return 8.0
        return float((middle.weekday() + 1) % 7 + 1)
