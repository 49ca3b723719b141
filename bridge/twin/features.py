"""Feature sets of the GP models: time proxies, disturbances, control inputs and their lags.

As in Jain et al. (SimBuild 2018, eq. 1), the output at step t is learnt from
    y(t) = f( time(t), w(t), .., w(t-p), u(t), .., u(t-m), y(t-1), .., y(t-l) )
with disturbances w (outdoor temperature, humidity), control inputs u (setpoints) and the
output's own past values y. A historian row at time t holds the outputs at the *end* of the
timestep (t - step, t] and the inputs applied during it, so the time proxies are taken at the
middle of that timestep: the 00:00 row still belongs to the previous day.

Time proxies: time of day as (sin, cos) of the daily phase (an RBF on these two is exactly a
24-hour periodic kernel) and the day type as two flags, workday and Saturday (Sunday and the
model's holidays have both flags 0), which is how the DOE reference buildings schedule. The
holidays are a rule, not a list frozen to the training years: with ``reference_holidays`` the DOE
reference holidays of whatever year a row falls in, plus the explicit ``holidays`` dates.

Lags count timesteps, not rows: the timestep is the most common difference of the index, and a
gap (missing rows) gives NaN lags to the rows whose lags reach into it, so ``design`` drops them.
Duplicated or decreasing timestamps are refused.

Daily profile (optional, ``profile=True``): the median of the target in the training data at the
same day type and time of day. Lights and plug loads follow hourly schedules with steps of
hundreds of kW; a smooth kernel on the time of day alone cannot place such steps from a few
weeks of data, this one learnt lookup table can. It is fitted with the model (``daily_profile``).

Known load (optional, ``known_load``): the part of the target that follows the building's fixed
schedules (lights and plug loads: facility minus HVAC power, or the sum of submeters), the signed sum
of the named tags, as a known input: its values at t .. t - ``known_load_lags`` are features (a step
of the schedule at t is then in the row of t, where the output lags cannot yet show it). Where the
frame does not measure it (the future of a forecast, a twin that does not model those tags) it is
its own daily profile (``load_profile``, the same median table as the target's, learnt at fit time).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from bridge.errors import TwinbridgeError
from bridge.holidays import REFERENCE_HOLIDAYS, holiday_dates
from bridge.tagmap import TagMap
from bridge.twin.weather import EPW_COLUMNS

TIME_FEATURES = ("tod_sin", "tod_cos", "workday", "saturday")
KNOWN_LOAD = "known_load"  # column name of the known load (and its lags)
DAY_TYPES = ("workday", "saturday", "sunday or holiday")
PROFILE_SLOTS = 144  # time-of-day resolution of the daily profile: 10 minutes


class FeatureError(TwinbridgeError, ValueError):
    """Data that lacks what a feature set needs; the message names the missing tags."""


@lru_cache(maxsize=64)
def reference_holidays(year: int) -> tuple[str, ...]:
    """ISO dates of the holidays of the DOE reference buildings (their RunPeriodControl:SpecialDays)."""
    return tuple(sorted(day.isoformat() for day in holiday_dates(REFERENCE_HOLIDAYS, year)))


@dataclass(frozen=True)
class FeatureSet:
    """Which tags and lags make the features of one output (``target``).

    ``output_lags`` is l (y(t-1)..y(t-l); 0 = no autoregression), ``input_lags`` is m
    (u(t)..u(t-m)) and ``disturbance_lags`` is p (w(t)..w(t-p)). Output lags are consecutive
    timesteps; input and disturbance lags are ``lag_step`` timesteps apart (thermal mass
    responds over hours, and 10-minute lags of a setpoint are nearly copies of each other).
    ``holidays`` are ISO dates treated like Sundays; ``reference_holidays`` adds the DOE reference
    holidays of every year the rows fall in (False in model files written before the rule).
    ``known_load``: tags whose sum ("-tag" subtracts) is the target's scheduled part, a known input
    at lags 0..``known_load_lags`` (module docstring; () in model files written before it)."""

    target: str
    inputs: tuple[str, ...]
    disturbances: tuple[str, ...]
    output_lags: int = 0
    input_lags: int = 0
    disturbance_lags: int = 0
    time_features: bool = True
    holidays: tuple[str, ...] = ()
    profile: bool = False
    lag_step: int = 1
    reference_holidays: bool = False
    known_load: tuple[str, ...] = ()
    known_load_lags: int = 1

    def __post_init__(self) -> None:
        for name in ("output_lags", "input_lags", "disturbance_lags", "known_load_lags"):
            if getattr(self, name) < 0:
                raise FeatureError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lag_step < 1:
            raise FeatureError(f"lag_step must be >= 1, got {self.lag_step}")

    @property
    def tags(self) -> tuple[str, ...]:
        """Historian columns the features are computed from."""
        return (self.target, *self.inputs, *self.disturbances)

    @property
    def known_load_tags(self) -> tuple[str, ...]:
        """Historian columns the known load is summed from (its signs removed)."""
        return tuple(name.removeprefix("-") for name in self.known_load)

    @property
    def max_lag(self) -> int:
        """Rows of history needed before the first complete feature row."""
        return max(self.output_lags, self.input_lags * self.lag_step, self.disturbance_lags * self.lag_step,
                   self.known_load_lags if self.known_load else 0)

    @property
    def columns(self) -> list[str]:
        names = list(TIME_FEATURES) if self.time_features else []
        names += ["profile"] if self.profile else []
        step = self.lag_step
        names += [lag_column(tag, lag * step) for tag in self.disturbances for lag in range(self.disturbance_lags + 1)]
        names += [lag_column(tag, lag * step) for tag in self.inputs for lag in range(self.input_lags + 1)]
        names += [lag_column(KNOWN_LOAD, lag) for lag in range(self.known_load_lags + 1)] if self.known_load else []
        return names + self.output_lag_columns

    @property
    def output_lag_columns(self) -> list[str]:
        return [lag_column(self.target, lag) for lag in range(1, self.output_lags + 1)]

    @property
    def output_lag_indices(self) -> list[int]:
        """Positions of ``output_lag_columns`` in ``columns`` (its last ones)."""
        count = len(self.columns)
        return list(range(count - self.output_lags, count))

    def is_holiday(self, day: dt.date) -> bool:
        """Whether ``day`` is one of this feature set's holidays (treated like a Sunday)."""
        return bool(_holiday_flags(np.array([day], dtype="datetime64[D]"), self)[0])

    def check(self, frame: pd.DataFrame, need_target: bool = True, need_known_load: bool = False) -> None:
        """Raise FeatureError naming the tags ``frame`` lacks (the known load's only with
        ``need_known_load``, for training: elsewhere its profile stands in)."""
        wanted = self.tags if need_target else self.tags[1:]
        wanted += self.known_load_tags if need_known_load else ()
        missing = [tag for tag in wanted if tag not in frame.columns]
        if missing:
            raise FeatureError(f"data lacks tags {missing} needed by the model of {self.target!r}")

    def features(self, frame: pd.DataFrame, profile: np.ndarray | None = None,
                 load_profile: np.ndarray | None = None) -> pd.DataFrame:
        """Feature rows for every row of ``frame`` (a historian DataFrame with an increasing DatetimeIndex);
        the first ``max_lag`` rows, and rows whose lags reach into a gap of the index, have NaN
        lags. Output lags come from ``frame[target]``;
        ``profile`` is the table of ``daily_profile`` (needed when ``self.profile``), ``load_profile``
        that of ``load_profile`` (needed with a ``known_load``).
        Computed on numpy arrays: the twin engine calls this once per step on a few rows."""
        return self._table(frame, profile, load_profile, *_timeline(frame.index))

    def segment_features(self, frame: pd.DataFrame, segment: int, profile: np.ndarray | None = None,
                         load_profile: np.ndarray | None = None) -> pd.DataFrame:
        """Features of ``frame`` made of consecutive segments of ``segment`` rows, each regular with
        the timestep of the first (the stacked scenarios of a forecast): lags are taken by rows, so
        those of the first ``max_lag`` rows of a segment reach into the one before (not to be used)."""
        _, step, positions = _timeline(frame.index[:segment])
        if positions is not None:
            raise FeatureError(f"segment from {frame.index[0]} has an irregular index")
        return self._table(frame, profile, load_profile, frame.index.to_numpy(dtype="datetime64[ns]"), step, None)

    def _table(self, frame: pd.DataFrame, profile: np.ndarray | None, load_profile: np.ndarray | None,
               stamps: np.ndarray, step: np.timedelta64, positions: np.ndarray | None) -> pd.DataFrame:
        self.check(frame, need_target=self.output_lags > 0)
        columns: list[np.ndarray] = []
        if self.time_features or self.profile or self.known_load:
            times = _TimeArrays(stamps, step, self)
            if self.time_features:
                columns += [times.tod_sin, times.tod_cos, times.workday, times.saturday]
            if self.profile:
                if profile is None:
                    raise FeatureError(f"feature set of {self.target!r} uses a daily profile but none was given")
                columns.append(profile[times.day_type, times.slot])
        for tags, lags in ((self.disturbances, self.disturbance_lags), (self.inputs, self.input_lags)):
            for tag in tags:
                columns += _lagged(_numeric(frame, tag), range(0, (lags + 1) * self.lag_step, self.lag_step),
                                   positions)
        if self.known_load:
            if load_profile is None:
                raise FeatureError(f"feature set of {self.target!r} uses a known load but no load profile was given")
            load = self.known_load_values(frame)
            missing = np.isnan(load)
            load[missing] = load_profile[times.day_type[missing], times.slot[missing]]
            columns += _lagged(load, range(self.known_load_lags + 1), positions)
        if self.output_lags:
            columns += _lagged(_numeric(frame, self.target), range(1, self.output_lags + 1), positions)
        table = np.column_stack(columns) if columns else np.empty((len(frame), 0))
        return pd.DataFrame(table, index=frame.index, columns=self.columns)

    def known_load_values(self, frame: pd.DataFrame) -> np.ndarray:
        """The measured known load of every row of ``frame``: the signed sum of its tags, NaN where one
        is missing (or the frame lacks one of them)."""
        if not all(tag in frame.columns for tag in self.known_load_tags):
            return np.full(len(frame), np.nan)
        return np.sum([-_numeric(frame, name[1:]) if name.startswith("-") else _numeric(frame, name)
                       for name in self.known_load], axis=0)

    def daily_profile(self, frame: pd.DataFrame) -> np.ndarray:
        """Median target per (day type, time-of-day slot): array (len(DAY_TYPES), PROFILE_SLOTS).
        Cells without data take the median of the same slot over all day types, then the overall median."""
        self.check(frame)
        return self._median_profile(frame.index, _numeric(frame, self.target))

    def load_profile(self, frame: pd.DataFrame) -> np.ndarray:
        """``daily_profile`` of the known load (measured rows only)."""
        self.check(frame, need_known_load=True)
        load = self.known_load_values(frame)
        if not np.isfinite(load).any():
            raise FeatureError(f"no row measures the known load {list(self.known_load)} of {self.target!r}")
        return self._median_profile(frame.index, load)

    def _median_profile(self, index: pd.DatetimeIndex, values: np.ndarray) -> np.ndarray:
        """Median of ``values`` per (day type, slot), gaps filled as ``daily_profile`` says."""
        day, slot = _day_and_slot(index, self)
        target = pd.Series(values)
        medians = target.groupby([day, slot]).median()
        by_slot = target.groupby(slot).median()
        table = np.full((len(DAY_TYPES), PROFILE_SLOTS), np.nan)
        table[medians.index.get_level_values(0), medians.index.get_level_values(1)] = medians.to_numpy()
        for d in range(len(DAY_TYPES)):
            empty = np.isnan(table[d])
            table[d, empty] = by_slot.reindex(np.nonzero(empty)[0]).to_numpy()
        return np.where(np.isnan(table), float(np.nanmedian(target)), table)

    def design(self, frame: pd.DataFrame, profile: np.ndarray | None = None,
               load_profile: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.Series]:
        """Complete training rows: (features X, target y), rows with missing values dropped (a known
        load must be measured: its profile does not stand in for training rows)."""
        self.check(frame, need_known_load=True)
        features = self.features(frame, profile, load_profile)
        target = pd.Series(_numeric(frame, self.target), index=frame.index, name=self.target)
        keep = features.notna().all(axis=1) & target.notna()
        if self.known_load:
            measured = np.isfinite(self.known_load_values(frame))
            keep &= np.all([_shifted(measured.astype(float), lag) == 1.0 for lag in range(self.known_load_lags + 1)], axis=0)
        return features[keep], target[keep]


def time_features(index: pd.DatetimeIndex, holidays: tuple[str, ...] = (),
                  reference: bool = False) -> dict[str, pd.Series]:
    """Daily phase (sin, cos) and day-type flags at the middle of each timestep of ``index``;
    ``holidays`` and ``reference`` as ``FeatureSet.holidays`` and ``FeatureSet.reference_holidays``."""
    times = _TimeArrays(*_timeline(index)[:2], _Holidays(holidays, reference))
    return {name: pd.Series(getattr(times, name), index=index) for name in TIME_FEATURES}


@dataclass(frozen=True)
class _Holidays:
    """The holiday rule of a FeatureSet (its ``holidays`` and ``reference_holidays`` fields)."""

    holidays: tuple[str, ...]
    reference_holidays: bool


def _holiday_flags(days: np.ndarray, rule: FeatureSet | _Holidays) -> np.ndarray:
    """Which of ``days`` (datetime64[D]) are holidays under ``rule``."""
    dates = list(rule.holidays)
    if rule.reference_holidays and len(days):
        years = np.unique(days.astype("datetime64[Y]").astype(np.int64)) + 1970
        dates += [day for year in years for day in reference_holidays(int(year))]
    return np.isin(days, np.array(dates, dtype="datetime64[D]"))


def _timeline(index: pd.DatetimeIndex) -> tuple[np.ndarray, np.timedelta64, np.ndarray | None]:
    """(timestamps, timestep, grid positions): the timestep is the most common difference; the
    positions are the rows' places on the regular grid from the first row, None when the index
    is already regular. Raise FeatureError at duplicated, decreasing or off-grid timestamps."""
    if len(index) < 2:
        raise FeatureError("time features need at least two rows to know the timestep")
    stamps = index.to_numpy(dtype="datetime64[ns]")
    steps = np.diff(stamps)
    if (steps == steps[0]).all() and steps[0] > np.timedelta64(0):
        return stamps, steps[0], None
    bad = np.flatnonzero(steps <= np.timedelta64(0))
    if bad.size:
        kind = "duplicated" if steps[bad[0]] == np.timedelta64(0) else "earlier than the row before"
        raise FeatureError(f"timestamp {pd.Timestamp(stamps[bad[0] + 1])} is {kind}: "
                           "rows must have increasing times (appended runs? deduplicate and sort)")
    values, counts = np.unique(steps, return_counts=True)
    step = values[np.argmax(counts)]
    offsets = stamps - stamps[0]
    off_grid = np.flatnonzero(offsets % step)
    if off_grid.size:
        raise FeatureError(f"timestamp {pd.Timestamp(stamps[off_grid[0]])} is off the grid of "
                           f"{pd.Timedelta(step)} steps from {pd.Timestamp(stamps[0])}")
    return stamps, step, (offsets // step).astype(np.int64)


class _TimeArrays:
    """Time proxies of the timesteps of length ``step`` ending at ``stamps``, taken at their middle,
    as numpy arrays: daily phase (sin, cos), workday and Saturday flags, day type (index into
    DAY_TYPES) and the 10-minute slot of the daily profile."""

    def __init__(self, stamps: np.ndarray, step: np.timedelta64, rule: FeatureSet | _Holidays):
        middle = stamps - step / 2
        days = middle.astype("datetime64[D]")
        seconds = (middle - days).astype("timedelta64[s]").astype(np.int64)
        hours = seconds // 3600 + (seconds % 3600 // 60) / 60 + (seconds % 60) / 3600  # the formula of earlier versions: saved models see the same features bit for bit
        phase = 2 * np.pi * hours / 24
        weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
        holiday = _holiday_flags(days, rule)
        self.tod_sin, self.tod_cos = np.sin(phase), np.cos(phase)
        self.workday = ((weekday < 5) & ~holiday).astype(float)
        self.saturday = ((weekday == 5) & ~holiday).astype(float)
        self.day_type = np.where(self.workday > 0, 0, np.where(self.saturday > 0, 1, 2))
        self.slot = (seconds // 60 * PROFILE_SLOTS // 1440).astype(int)


def _numeric(frame: pd.DataFrame, tag: str) -> np.ndarray:
    """Column ``tag`` as floats; FeatureError naming the first value that is not a number and its time."""
    try:
        return frame[tag].to_numpy(float)
    except (ValueError, TypeError):
        column = frame[tag]
        bad = pd.to_numeric(column, errors="coerce").isna() & column.notna()
        time, value = next(iter(column[bad].items()))
        raise FeatureError(f"column {tag!r} holds {value!r} at {time}, not a number") from None


def _lagged(values: np.ndarray, lags: range, positions: np.ndarray | None) -> list[np.ndarray]:
    """``values`` delayed by each of ``lags`` timesteps; with grid ``positions`` (an irregular
    index) lags are taken on the regular grid, NaN where they reach a missing row."""
    if positions is None:
        return [_shifted(values, lag) for lag in lags]
    grid = np.full(positions[-1] + 1, np.nan)
    grid[positions] = values
    return [_shifted(grid, lag)[positions] for lag in lags]


def _shifted(values: np.ndarray, lag: int) -> np.ndarray:
    """``values`` delayed by ``lag`` rows, NaN before the first (pandas' ``shift``)."""
    if lag == 0:
        return values
    out = np.full(len(values), np.nan)
    out[lag:] = values[:-lag] if lag < len(values) else []
    return out


def feature_sets_for(tagmap: TagMap, targets: list[str] | None = None, output_lags: int = 0,
                     input_lags: int = 0, disturbance_lags: int = 0, profile: bool = True,
                     lag_step: int = 1, reference: bool = True, known_load: bool = False) -> list[FeatureSet]:
    """One feature set per target of a building: all input tags as control inputs, the outputs
    the EPW file also gives (outdoor temperature and humidity) as disturbances, (``reference``)
    the DOE reference holidays of every year the rows fall in and (``known_load``, off by default:
    it helps 2-5 h demand-response baselines, not 12-hour forecasts, docs/twin.md) the target's
    ``known_load`` declared in the tag map. ``targets`` defaults to the tags with role
    electric_power or zone_temperature."""
    disturbances = tuple(o.tag for o in tagmap.outputs if o.variable in EPW_COLUMNS)
    if targets is None:
        targets = [o.tag for o in tagmap.outputs if o.role in ("electric_power", "zone_temperature")]
    known = {o.tag for o in tagmap.outputs}
    unknown = [tag for tag in targets if tag not in known]
    if unknown:
        raise FeatureError(f"targets {unknown} are not outputs of tag map {tagmap.name!r} ({tagmap.path})")
    return [FeatureSet(target, tuple(i.tag for i in tagmap.inputs), disturbances, output_lags, input_lags,
                       disturbance_lags, True, (), profile, lag_step, reference,
                       tagmap.output(target).known_load if known_load else ()) for target in targets]


def profile_at(index: pd.DatetimeIndex, features: FeatureSet, profile: np.ndarray) -> np.ndarray:
    """Values of the ``daily_profile`` table of ``features`` at the timesteps ending at ``index``."""
    day, slot = _day_and_slot(index, features)
    return profile[day, slot]


def _day_and_slot(index: pd.DatetimeIndex, rule: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
    """Day type (index into DAY_TYPES) and 10-minute slot of the middle of each timestep."""
    times = _TimeArrays(*_timeline(index)[:2], rule)
    return times.day_type, times.slot


def lag_column(tag: str, lag: int) -> str:
    return f"{tag}[t-{lag}]" if lag else f"{tag}[t]"
