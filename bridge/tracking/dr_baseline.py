"""Customer baselines that demand-response programmes settle on: "X of Y" days with a day-of adjustment.

A baseline (customer baseline load, CBL) is what the facility would have drawn during an event had
it not curtailed, estimated from its own meter: the curtailment paid for is baseline - measured.
The programmes use the same recipe with different numbers:

- pick the Y most recent *eligible* days before the event day: weekdays for a weekday event, not
  holidays, not days of earlier events (nor other excluded days), with meter data over the windows
  used; CAISO looks back at most 45 days;
- keep X of them: all of them ("10 of 10": CAISO's default Demand Response baseline, MISO's
  Ten-Day Baseline, the AEMO wholesale demand response baselines built on it), or the X with the
  highest average load over the event window ("high 5 of 10": NYISO's weekday CBL and PG&E's
  PowerSaver; PJM's Economic Load Response default is "high 4 of 5");
- average the chosen days interval by interval, at the event day's times of day;
- day-of ("morning", "load point") adjustment: the baseline is scaled (multiplicative) or shifted
  (additive, PJM's "symmetric additive adjustment") so that it matches the event day's own load in
  a window just before the event, where the facility has not curtailed yet: by default the 3 hours
  ending 1 hour before the event starts (the hour before is left out, as the facility may already
  act on the notice: PJM Manual 11's adjustment window, MISO's "three hours prior"); the adjustment
  is capped, by default at +/- 20 % of the baseline (CAISO, MISO).

Besides, a regression customer baseline (``regression_baseline``): PJM's Economic Load Response lets a
customer's baseline be a regression of its own load on weather and calendar variables ("Customer Baseline
Load: regression", PJM Manual 11 section 10.3 and its CBL methodology reviews); ASHRAE Guideline 14 and
the TOWT / CalTRACK hourly models are regressions of the same kind for M&V. Here: one least-squares fit per
interval of the day (time of day) on the last N eligible weekdays, of power on [1, outdoor temperature, its
6 h mean, outdoor relative humidity], predicted from the day's weather (measured, then forecast), with an
additive day-of adjustment over the hours just before it is made (issue 16, round 11's baseline (d):
bench/study_regression_baseline.py).

This module follows CAISO's "10 in 10" with its multiplicative load point adjustment capped at
+/- 20 % by default (``x_of_y_baseline(power, begin, end)``); every number above is a parameter.
Sources: CAISO Business Practice Manual for Metering, Demand Response baselines ("10 in 10 with
load point adjustment", 45-day look-back); PJM Manual 11 "Energy & Ancillary Services Market
Operations", Economic Load Response CBL (high 4 of 5, symmetric additive adjustment); NYISO
Emergency Demand Response Program Manual, CBL (high 5 of 10 weekdays, in-day weather adjustment,
capped); MISO Ten-Day Baseline (+/- 20 % adjustment on the three hours before the event); AEMO,
Wholesale Demand Response Baseline Methodology Register (CAISO "10 of 10" framework).

Timestamps follow the historian's convention: a value at ``t`` is the mean power over the interval
ending at ``t`` (docs/tracking.md), so the event window (begin, end] holds the intervals ending
after ``begin`` up to ``end``. Power in kW; any regular interval (5, 10, 15, 60 minutes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bridge.errors import TwinbridgeError

ADJUSTMENTS = ("multiplicative", "additive", None)


class BaselineError(TwinbridgeError, ValueError):
    """A baseline that cannot be computed (too few eligible days, a bad window); the message says why."""


@dataclass(frozen=True)
class DayOfAdjustment:
    """How the baseline is fitted to the event day's own load before the event.

    ``kind``: "multiplicative" (baseline x measured/baseline over the window) or "additive"
    (baseline + measured - baseline); ``hours`` long, ending ``gap_hours`` before the event
    starts; the factor is clipped to [1 - cap, 1 + cap], the offset to +/- cap x the baseline's mean
    over the window. ``factor``/``offset_kw`` and ``capped`` tell what was applied."""

    kind: str
    hours: float
    gap_hours: float
    cap: float
    measured_kw: float  # event day, mean over the adjustment window
    baseline_kw: float  # unadjusted baseline, mean over the same window
    factor: float  # multiplicative factor applied (1 for additive)
    offset_kw: float  # additive offset applied (0 for multiplicative)
    capped: bool


@dataclass(frozen=True)
class Baseline:
    """A baseline and how it was made: ``kw`` over the asked window, the ``days`` averaged, the
    ``adjustment`` applied (None: unadjusted)."""

    kw: pd.Series
    days: tuple[dt.date, ...]
    adjustment: DayOfAdjustment | None


def x_of_y_baseline(power: pd.Series, begin: dt.datetime | str, end: dt.datetime | str, x: int = 10, y: int = 10,
                    excluded: Iterable[dt.date | str] = (), adjustment: str | None = "multiplicative",
                    adjustment_hours: float = 3.0, adjustment_gap_hours: float = 1.0, cap: float = 0.2,
                    lookback_days: int = 45, margin: dt.timedelta = dt.timedelta(0)) -> Baseline:
    """The "X of Y" baseline (kW) of the event (begin, end] from the facility's metered ``power`` (kW).

    The Y most recent eligible weekdays before the event day (within ``lookback_days``; not in
    ``excluded``: holidays, earlier events; with every interval of the event and adjustment windows
    measured), the X of them with the highest mean load over the event window (X = Y: all), averaged
    per interval; then the day-of ``adjustment`` ("multiplicative", "additive" or None) over the
    ``adjustment_hours`` ending ``adjustment_gap_hours`` before ``begin``, capped at ``cap``. The
    baseline covers (begin - margin, end + margin] (for pre-event and rebound windows; the same
    days and adjustment). Defaults: CAISO's "10 in 10" with a load point adjustment capped at 20 %
    (module docstring for the programmes). Raises BaselineError when fewer than Y days are eligible."""
    begin, end = pd.Timestamp(begin), pd.Timestamp(end)
    step = meter_interval(power)
    if not 1 <= x <= y:
        raise BaselineError(f"an X of Y baseline needs 1 <= X <= Y, got X = {x}, Y = {y}")
    if end <= begin or end - begin > pd.Timedelta(days=1):
        raise BaselineError(f"event window {begin} .. {end}: the end must be after the beginning, within a day")
    if adjustment not in ADJUSTMENTS:
        raise BaselineError(f"adjustment must be one of {ADJUSTMENTS}, got {adjustment!r}")
    if not 0 <= cap < 1:
        raise BaselineError(f"the adjustment cap is a fraction in [0, 1), got {cap}")
    if (begin - power.index[0]) % step or (end - power.index[0]) % step:
        raise BaselineError(f"event window {begin} .. {end} is not on the meter's {step} intervals")
    day = begin.normalize()
    window = _times(begin - margin, end + margin, step)
    adjust_end = begin - pd.Timedelta(hours=adjustment_gap_hours)
    adjust = _times(adjust_end - pd.Timedelta(hours=adjustment_hours), adjust_end, step) if adjustment else window[:0]
    offsets = [t - day for t in window.append(adjust)]  # times of day (as offsets from midnight) the days must cover
    event_offsets = [t - day for t in _times(begin, end, step)]
    skip = {pd.Timestamp(d).normalize() for d in excluded}
    candidates = _recent_weekdays(day, y, lookback_days, skip,
                                  lambda other: power.reindex([other + o for o in offsets]).notna().all())
    if len(candidates) < y:
        raise BaselineError(
            f"an {x} of {y} baseline of the event {begin} .. {end} needs {y} eligible days (weekdays in the "
            f"{lookback_days} days before, not excluded, power measured over the event"
            f"{' and adjustment' if adjustment else ''} window), found {len(candidates)}"
            f"{': ' + ', '.join(str(d.date()) for d in candidates) if candidates else ''}")
    if x < y:  # the X days of highest mean load over the event window; ties to the more recent day
        load = [float(power.reindex([d + o for o in event_offsets]).mean()) for d in candidates]
        candidates = [candidates[i] for i in sorted(np.argsort(-np.array(load), kind="stable")[:x])]
    profile = lambda times: np.mean([power.reindex([d + (t - day) for t in times]).to_numpy(float)
                                     for d in candidates], axis=0)
    kw = pd.Series(profile(window), index=window, name="baseline_kw")
    applied = None
    if adjustment:
        measured = _day_of_power(power, adjust, step)
        applied = _adjust(adjustment, float(measured.mean()), float(profile(adjust).mean()), cap,
                          adjustment_hours, adjustment_gap_hours)
        kw = kw * applied.factor + applied.offset_kw
    return Baseline(kw, tuple(d.date() for d in sorted(candidates)), applied)


def _recent_weekdays(day: pd.Timestamp, wanted: int, lookback_days: int, skip: set[pd.Timestamp],
                     usable: Callable[[pd.Timestamp], bool]) -> list[pd.Timestamp]:
    """Up to ``wanted`` weekdays before ``day`` (midnights), most recent first, within ``lookback_days``, not in
    ``skip``, each ``usable``."""
    chosen = []
    for back in range(1, lookback_days + 1):
        other = day - pd.Timedelta(days=back)
        if other.day_of_week < 5 and other not in skip and usable(other):
            chosen.append(other)
        if len(chosen) == wanted:
            break
    return chosen


def _day_of_power(power: pd.Series, adjust: pd.DatetimeIndex, step: pd.Timedelta) -> pd.Series:
    """The event day's measured power (kW) at the adjustment window's intervals ``adjust``; BaselineError when
    one is missing."""
    measured = power.reindex(adjust)
    if measured.isna().any():
        raise BaselineError(f"the day-of adjustment needs the event day's power from {adjust[0] - step} to "
                            f"{adjust[-1]}; {int(measured.isna().sum())} of its intervals are missing")
    return measured


def _adjust(kind: str, measured: float, baseline: float, cap: float, hours: float, gap: float) -> DayOfAdjustment:
    """The capped day-of adjustment from the window's measured and baseline means (kW)."""
    if kind == "multiplicative":
        if baseline <= 0:
            raise BaselineError(f"a multiplicative day-of adjustment needs a positive baseline over its window, "
                                f"got {baseline:g} kW (use the additive adjustment)")
        factor = float(np.clip(measured / baseline, 1 - cap, 1 + cap))
        return DayOfAdjustment(kind, hours, gap, cap, measured, baseline, factor, 0.0,
                               not np.isclose(factor, measured / baseline))
    limit = cap * abs(baseline)
    offset = float(np.clip(measured - baseline, -limit, limit))
    return DayOfAdjustment(kind, hours, gap, cap, measured, baseline, 1.0, offset,
                           not np.isclose(offset, measured - baseline))


def meter_interval(power: pd.Series, error: type[TwinbridgeError] = BaselineError) -> pd.Timedelta:
    """The meter's interval: the most common difference of a sorted, unique time index; ``error``
    (naming what is wrong) otherwise."""
    if not isinstance(power.index, pd.DatetimeIndex) or len(power) < 2:
        raise error("power must be a Series of kW indexed by at least two timestamps")
    if not power.index.is_monotonic_increasing or power.index.has_duplicates:
        raise error("power's timestamps must be increasing and unique")
    return pd.Series(power.index[1:] - power.index[:-1]).mode().iloc[0]


def _times(after: pd.Timestamp, until: pd.Timestamp, step: pd.Timedelta) -> pd.DatetimeIndex:
    """Ends of the intervals in (after, until]."""
    return pd.date_range(after + step, until, freq=step)


REGRESSION_COLUMNS = ("power", "temperature", "humidity")  # kW, degC, % (outdoor relative humidity)
TEMPERATURE_MEAN = pd.Timedelta(hours=6)  # the regressor "mean outdoor temperature over the 6 h ending then"


def regression_baseline(measured: pd.DataFrame, forecast: pd.DataFrame, begin: dt.datetime | str,
                        end: dt.datetime | str, entry: dt.datetime | str, days: int = 30,
                        excluded: Iterable[dt.date | str] = (), adjustment_hours: float = 3.0,
                        lookback_days: int = 60, margin: dt.timedelta = dt.timedelta(0)) -> Baseline:
    """The regression customer baseline (kW) of the event (begin, end], made at ``entry`` (module docstring).

    ``measured``: the facility's metered ``power`` (kW), outdoor ``temperature`` (degC) and ``humidity``
    (relative, %) per interval, up to ``entry`` (later rows are ignored); ``forecast``: ``temperature`` and
    ``humidity`` at the meter's intervals after ``entry`` to ``end + margin`` (e.g. a weather file's).
    The ``days`` most recent eligible weekdays before the event day (within ``lookback_days``, not in
    ``excluded``, every interval of the day measured) are the history. For each interval of the day
    (time of day) a least-squares fit of power on [1, temperature, its mean over the 6 h ending then,
    humidity] over the history's rows at that time (rows whose 6 h mean is not measured are left out),
    evaluated on the event day's weather: measured up to ``entry``, ``forecast`` after. Then an additive,
    uncapped day-of adjustment: the day's measured power minus the fit, averaged over the
    ``adjustment_hours`` ending at ``entry``. Covers (begin - margin, end + margin]. Raises BaselineError
    when fewer than ``days`` days are eligible or the adjustment window or the weather is not covered.
    Implements issue 16's round-11 baseline (d), a regression CBL as PJM's (module docstring)."""
    begin, end, entry = pd.Timestamp(begin), pd.Timestamp(end), pd.Timestamp(entry)
    missing = [c for c in REGRESSION_COLUMNS if c not in measured]
    if missing or [c for c in REGRESSION_COLUMNS[1:] if c not in forecast]:
        raise BaselineError(f"a regression baseline needs measured {REGRESSION_COLUMNS} and forecast "
                            f"{REGRESSION_COLUMNS[1:]}; measured has {sorted(measured)}, forecast {sorted(forecast)}")
    measured = measured[measured.index <= entry]
    step = meter_interval(measured["power"])
    if end <= begin or end - begin > pd.Timedelta(days=1) or entry >= end:
        raise BaselineError(f"event window {begin} .. {end} made at {entry}: the end must be after the "
                            f"beginning (within a day) and after the entry")
    day = begin.normalize()
    complete = int(pd.Timedelta(days=1) / step)
    skip = {pd.Timestamp(d).normalize() for d in excluded}
    ends = measured.index[measured[list(REGRESSION_COLUMNS)].notna().all(axis=1)]
    counts = pd.Series(1, index=ends - step).groupby((ends - step).normalize()).sum()  # intervals per day
    chosen = _recent_weekdays(day, days, lookback_days, skip, lambda other: counts.get(other, 0) >= complete)
    if len(chosen) < days:
        raise BaselineError(
            f"a regression baseline of the event {begin} .. {end} needs {days} eligible days (weekdays in the "
            f"{lookback_days} days before, not excluded, every interval measured), found {len(chosen)}"
            f"{': ' + ', '.join(str(d.date()) for d in chosen) if chosen else ''}")
    keep = np.zeros(len(measured), bool)
    for other in chosen:
        keep |= (measured.index > other) & (measured.index <= other + pd.Timedelta(days=1))
    history = measured[keep]
    window = _times(begin - margin, end + margin, step)
    adjust = _times(entry - pd.Timedelta(hours=adjustment_hours), entry, step)
    weather = _day_weather(measured, forecast, window[0].normalize() - TEMPERATURE_MEAN, window[-1], entry, step)
    wanted = adjust.union(window)
    predicted = _time_of_day_fit(history, _regressors(measured)[keep], _regressors(weather).reindex(wanted), step)
    if predicted.isna().any():
        raise BaselineError(f"the regression baseline of the event {begin} .. {end} lacks the weather (measured up "
                            f"to {entry}, forecast after) at {predicted.index[predicted.isna()][0]}")
    day_of = _day_of_power(measured["power"], adjust, step)
    fitted = float(predicted.loc[adjust].mean())
    offset = float(day_of.mean()) - fitted
    applied = DayOfAdjustment("additive", adjustment_hours, (begin - entry) / pd.Timedelta(hours=1), float("inf"),
                              float(day_of.mean()), fitted, 1.0, offset, False)
    kw = pd.Series(predicted.loc[window].to_numpy(float) + offset, index=window, name="baseline_kw")
    return Baseline(kw, tuple(d.date() for d in sorted(chosen)), applied)


def _day_weather(measured: pd.DataFrame, forecast: pd.DataFrame, after: pd.Timestamp, until: pd.Timestamp,
                 entry: pd.Timestamp, step: pd.Timedelta) -> pd.DataFrame:
    """Temperature and humidity at the intervals of (after, until]: ``forecast``, with the measured values at
    and before ``entry``."""
    times = _times(after, until, step)
    columns = list(REGRESSION_COLUMNS[1:])
    out = forecast[columns].reindex(times).astype(float)
    known = measured.index[measured.index <= entry].intersection(times)
    out.loc[known, columns] = measured.loc[known, columns].to_numpy(float)
    return out


def _regressors(weather: pd.DataFrame) -> pd.DataFrame:
    """The regression's regressors at each row of ``weather``: 1, temperature, its 6 h mean, humidity."""
    step = meter_interval(weather["temperature"])
    mean = weather["temperature"].rolling(TEMPERATURE_MEAN, min_periods=int(TEMPERATURE_MEAN / step)).mean()
    return pd.DataFrame({"one": 1.0, "t": weather["temperature"], "t6": mean, "rh": weather["humidity"]},
                        index=weather.index)


def _time_of_day_fit(history: pd.DataFrame, regressors: pd.DataFrame, future: pd.DataFrame,
                     step: pd.Timedelta) -> pd.Series:
    """Per interval of the day: least squares of ``history``'s power on its ``regressors`` (computed over all the
    measured rows: a 6 h mean reaches into days not in the history), evaluated at ``future`` (regressor rows) of
    that time of day; NaN where ``future`` lacks a regressor."""
    slot = lambda index: (index - index.normalize()) // step
    h_slot, f_slot = slot(history.index), slot(future.index)
    usable = regressors.notna().all(axis=1).to_numpy()
    out = pd.Series(np.nan, index=future.index)
    for s in np.unique(f_slot):
        rows = (h_slot == s) & usable
        if not rows.any():
            raise BaselineError(f"no history at {s * step} of the day for the regression baseline")
        coef = np.linalg.lstsq(regressors[rows].to_numpy(float), history.loc[rows, "power"].to_numpy(float),
                               rcond=None)[0]
        out[f_slot == s] = future[f_slot == s].to_numpy(float) @ coef
    return out
