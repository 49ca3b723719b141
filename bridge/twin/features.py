"""Feature sets of the GP models: time proxies, disturbances, control inputs and their lags.

As in Jain et al. (SimBuild 2018, eq. 1), the output at step t is learnt from
    y(t) = f( time(t), w(t), .., w(t-p), u(t), .., u(t-m), y(t-1), .., y(t-l) )
with disturbances w (outdoor temperature, humidity), control inputs u (setpoints) and the
output's own past values y. A historian row at time t holds the outputs at the *end* of the
timestep (t - step, t] and the inputs applied during it, so the time proxies are taken at the
middle of that timestep: the 00:00 row still belongs to the previous day.

Time proxies: time of day as (sin, cos) of the daily phase (an RBF on these two is exactly a
24-hour periodic kernel) and the day type as two flags, workday and Saturday (Sunday and the
model's holidays have both flags 0), which is how the DOE reference buildings schedule.

Daily profile (optional, ``profile=True``): the median of the target in the training data at the
same day type and time of day. Lights and plug loads follow hourly schedules with steps of
hundreds of kW; a smooth kernel on the time of day alone cannot place such steps from a few
weeks of data, this one learnt lookup table can. It is fitted with the model (``daily_profile``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bridge.daylight import nth_weekday
from bridge.tagmap import TagMap
from bridge.twin.weather import EPW_COLUMNS

TIME_FEATURES = ("tod_sin", "tod_cos", "workday", "saturday")
DAY_TYPES = ("workday", "saturday", "sunday or holiday")
PROFILE_SLOTS = 144  # time-of-day resolution of the daily profile: 10 minutes


class FeatureError(ValueError):
    """Data that lacks what a feature set needs; the message names the missing tags."""


def reference_holidays(year: int) -> tuple[str, ...]:
    """ISO dates of the holidays of the DOE reference buildings (their RunPeriodControl:SpecialDays)."""
    days = [dt.date(year, 1, 1), dt.date(year, 7, 4), dt.date(year, 11, 11), dt.date(year, 12, 25),
            nth_weekday(year, 1, 0, 3), nth_weekday(year, 2, 0, 3), nth_weekday(year, 5, 0, -1),
            nth_weekday(year, 9, 0, 1), nth_weekday(year, 10, 0, 2), nth_weekday(year, 11, 3, 4)]
    return tuple(sorted(day.isoformat() for day in days))


@dataclass(frozen=True)
class FeatureSet:
    """Which tags and lags make the features of one output (``target``).

    ``output_lags`` is l (y(t-1)..y(t-l); 0 = no autoregression), ``input_lags`` is m
    (u(t)..u(t-m)) and ``disturbance_lags`` is p (w(t)..w(t-p)). Output lags are consecutive
    timesteps; input and disturbance lags are ``lag_step`` timesteps apart (thermal mass
    responds over hours, and 10-minute lags of a setpoint are nearly copies of each other).
    ``holidays`` are ISO dates treated like Sundays."""

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

    def __post_init__(self) -> None:
        for name in ("output_lags", "input_lags", "disturbance_lags"):
            if getattr(self, name) < 0:
                raise FeatureError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lag_step < 1:
            raise FeatureError(f"lag_step must be >= 1, got {self.lag_step}")

    @property
    def tags(self) -> tuple[str, ...]:
        """Historian columns the features are computed from."""
        return (self.target, *self.inputs, *self.disturbances)

    @property
    def max_lag(self) -> int:
        """Rows of history needed before the first complete feature row."""
        return max(self.output_lags, self.input_lags * self.lag_step, self.disturbance_lags * self.lag_step)

    @property
    def columns(self) -> list[str]:
        names = list(TIME_FEATURES) if self.time_features else []
        names += ["profile"] if self.profile else []
        step = self.lag_step
        names += [_lag_name(tag, lag * step) for tag in self.disturbances for lag in range(self.disturbance_lags + 1)]
        names += [_lag_name(tag, lag * step) for tag in self.inputs for lag in range(self.input_lags + 1)]
        return names + self.output_lag_columns

    @property
    def output_lag_columns(self) -> list[str]:
        return [_lag_name(self.target, lag) for lag in range(1, self.output_lags + 1)]

    def check(self, frame: pd.DataFrame, need_target: bool = True) -> None:
        """Raise FeatureError naming the tags ``frame`` lacks."""
        wanted = self.tags if need_target else self.tags[1:]
        missing = [tag for tag in wanted if tag not in frame.columns]
        if missing:
            raise FeatureError(f"data lacks tags {missing} needed by the model of {self.target!r}")

    def features(self, frame: pd.DataFrame, profile: np.ndarray | None = None) -> pd.DataFrame:
        """Feature rows for every row of ``frame`` (a historian DataFrame with a regular DatetimeIndex);
        the first ``max_lag`` rows have NaN lags. Output lags come from ``frame[target]``;
        ``profile`` is the table of ``daily_profile`` (needed when ``self.profile``).
        Computed on numpy arrays: the twin engine calls this once per step on a few rows."""
        self.check(frame, need_target=self.output_lags > 0)
        columns: list[np.ndarray] = []
        if self.time_features or self.profile:
            times = _TimeArrays(frame.index, self.holidays)
            if self.time_features:
                columns += [times.tod_sin, times.tod_cos, times.workday, times.saturday]
            if self.profile:
                if profile is None:
                    raise FeatureError(f"feature set of {self.target!r} uses a daily profile but none was given")
                columns.append(profile[times.day_type, times.slot])
        for tags, lags in ((self.disturbances, self.disturbance_lags), (self.inputs, self.input_lags)):
            for tag in tags:
                values = frame[tag].to_numpy(float)
                columns += [_shifted(values, lag) for lag in range(0, (lags + 1) * self.lag_step, self.lag_step)]
        if self.output_lags:
            values = frame[self.target].to_numpy(float)
            columns += [_shifted(values, lag) for lag in range(1, self.output_lags + 1)]
        table = np.column_stack(columns) if columns else np.empty((len(frame), 0))
        return pd.DataFrame(table, index=frame.index, columns=self.columns)

    def daily_profile(self, frame: pd.DataFrame) -> np.ndarray:
        """Median target per (day type, time-of-day slot): array (len(DAY_TYPES), PROFILE_SLOTS).
        Cells without data take the median of the same slot over all day types, then the overall median."""
        self.check(frame)
        day, slot = _day_and_slot(frame.index, self.holidays)
        medians = pd.Series(frame[self.target].to_numpy()).groupby([day, slot]).median()
        by_slot = pd.Series(frame[self.target].to_numpy()).groupby(slot).median()
        table = np.full((len(DAY_TYPES), PROFILE_SLOTS), np.nan)
        table[medians.index.get_level_values(0), medians.index.get_level_values(1)] = medians.to_numpy()
        for d in range(len(DAY_TYPES)):
            empty = np.isnan(table[d])
            table[d, empty] = by_slot.reindex(np.nonzero(empty)[0]).to_numpy()
        return np.where(np.isnan(table), float(np.nanmedian(frame[self.target])), table)

    def design(self, frame: pd.DataFrame, profile: np.ndarray | None = None) -> tuple[pd.DataFrame, pd.Series]:
        """Complete training rows: (features X, target y), rows with missing values dropped."""
        self.check(frame)
        features = self.features(frame, profile)
        keep = features.notna().all(axis=1) & frame[self.target].notna()
        return features[keep], frame.loc[keep, self.target]


def time_features(index: pd.DatetimeIndex, holidays: tuple[str, ...] = ()) -> dict[str, pd.Series]:
    """Daily phase (sin, cos) and day-type flags at the middle of each timestep of ``index``."""
    times = _TimeArrays(index, holidays)
    return {name: pd.Series(getattr(times, name), index=index) for name in TIME_FEATURES}


class _TimeArrays:
    """Time proxies of the timesteps ending at ``index``, taken at their middle, as numpy arrays:
    daily phase (sin, cos), workday and Saturday flags, day type (index into DAY_TYPES) and the
    10-minute slot of the daily profile."""

    def __init__(self, index: pd.DatetimeIndex, holidays: tuple[str, ...]):
        if len(index) < 2:
            raise FeatureError("time features need at least two rows to know the timestep")
        stamps = index.to_numpy(dtype="datetime64[ns]")
        middle = stamps - (stamps[1] - stamps[0]) / 2
        days = middle.astype("datetime64[D]")
        seconds = (middle - days).astype("timedelta64[s]").astype(np.int64)
        hours = seconds // 3600 + (seconds % 3600 // 60) / 60 + (seconds % 60) / 3600  # the formula of earlier versions: saved models see the same features bit for bit
        phase = 2 * np.pi * hours / 24
        weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
        holiday = np.isin(days, np.array(holidays, dtype="datetime64[D]"))
        self.tod_sin, self.tod_cos = np.sin(phase), np.cos(phase)
        self.workday = ((weekday < 5) & ~holiday).astype(float)
        self.saturday = ((weekday == 5) & ~holiday).astype(float)
        self.day_type = np.where(self.workday > 0, 0, np.where(self.saturday > 0, 1, 2))
        self.slot = (seconds // 60 * PROFILE_SLOTS // 1440).astype(int)


def _shifted(values: np.ndarray, lag: int) -> np.ndarray:
    """``values`` delayed by ``lag`` rows, NaN before the first (pandas' ``shift``)."""
    if lag == 0:
        return values
    out = np.full(len(values), np.nan)
    out[lag:] = values[:-lag] if lag < len(values) else []
    return out


def feature_sets_for(tagmap: TagMap, targets: list[str] | None = None, output_lags: int = 0,
                     input_lags: int = 0, disturbance_lags: int = 0, years: tuple[int, ...] = (),
                     profile: bool = True, lag_step: int = 1) -> list[FeatureSet]:
    """One feature set per target of a building: all input tags as control inputs, the outputs
    the EPW file also gives (outdoor temperature and humidity) as disturbances, and the reference
    holidays of ``years``. ``targets`` defaults to the tags with role electric_power or
    zone_temperature."""
    disturbances = tuple(o.tag for o in tagmap.outputs if o.variable in EPW_COLUMNS)
    if targets is None:
        targets = [o.tag for o in tagmap.outputs if o.role in ("electric_power", "zone_temperature")]
    known = {o.tag for o in tagmap.outputs}
    unknown = [tag for tag in targets if tag not in known]
    if unknown:
        raise FeatureError(f"targets {unknown} are not outputs of tag map {tagmap.name!r} ({tagmap.path})")
    holidays = tuple(day for year in years for day in reference_holidays(year))
    return [FeatureSet(target, tuple(i.tag for i in tagmap.inputs), disturbances, output_lags, input_lags,
                       disturbance_lags, True, holidays, profile, lag_step) for target in targets]


def profile_at(index: pd.DatetimeIndex, holidays: tuple[str, ...], profile: np.ndarray) -> np.ndarray:
    """Values of a ``daily_profile`` table at the timesteps ending at ``index``."""
    day, slot = _day_and_slot(index, holidays)
    return profile[day, slot]


def _day_and_slot(index: pd.DatetimeIndex, holidays: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Day type (index into DAY_TYPES) and 10-minute slot of the middle of each timestep."""
    times = _TimeArrays(index, holidays)
    return times.day_type, times.slot


def _lag_name(tag: str, lag: int) -> str:
    return f"{tag}[t-{lag}]" if lag else f"{tag}[t]"
