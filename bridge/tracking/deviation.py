"""Deviation between the twin's prediction and the live measurement, and the alerts it raises.

Deviation of one signal at one instant, in percent of the prediction (the twin's expectation)::

    error         = actual - predicted                       (signal units; > 0 = uses more than expected)
    deviation_pct = 100 * error / max(|predicted|, floor)

``floor`` (signal units) keeps the ratio finite when the prediction is near zero (night-time power).
Coarser granularities compare sums over clock hours, calendar days and calendar months, which for a
power signal sampled at a constant step is the energy deviation of that period.

Classification (defaults from the tracking issue): |deviation| < 5 % ok, 5-10 % warning, >= 10 %
alert. The sustained rule: a warning is raised only after ``warning_steps`` consecutive periods at
or above the warning threshold, an alert after ``alert_steps`` consecutive periods at or above the
alert threshold, and a raised state clears only after ``clear_steps`` consecutive periods below the
warning threshold (hysteresis, so a noisy signal near a threshold does not chatter).
"Consecutive" means over the threshold *on the same side*: a run ends when the deviation changes sign.
A load that cycles on and off (a packaged unit's compressor under its thermostat) and runs a step
earlier or later than the twin's gives deviations of alternating sign (+11 %, -9 %, +13 %) whose energy
cancels; they are a phase the twin cannot predict, not a sustained deviation (docs/tracking.md).
For the same reason an hourly *warning* needs three hours on the same side: a cycle of 1-2 hours moves
energy between neighbouring hours (+5 %, -4 %, +5 %, ...); an hourly *alert* (>= 10 %) still needs
one hour. At step level both need 6 steps on the same side (an hour at 10-minute steps).
Alerts are emitted on changes of state only: raised warning, raised alert, cleared.

A period is judged only when the tracker saw it from its first step: tracking that starts inside an hour,
a day or a month leaves that first period unjudged (its sums would be a few steps', not the period's
energy; a tracker started on the last step of an hour judged that one step as the hour and as the day,
docs/live.md). Gaps inside later periods do not stop them being judged.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

GRANULARITIES = ("step", "hourly", "daily", "monthly")


class Severity(enum.IntEnum):
    OK = 0
    WARNING = 1
    ALERT = 2


@dataclass(frozen=True)
class Thresholds:
    """Thresholds and sustained rule of one granularity."""

    warning_pct: float = 5.0
    alert_pct: float = 10.0
    warning_steps: int = 3
    alert_steps: int = 3
    clear_steps: int = 3
    floor: float = 1e-9

    def __post_init__(self) -> None:
        if not 0 < self.warning_pct < self.alert_pct:
            raise ValueError(f"thresholds need 0 < warning_pct < alert_pct, got {self.warning_pct}, {self.alert_pct}")
        for name in ("warning_steps", "alert_steps", "clear_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"thresholds: {name} must be >= 1, got {getattr(self, name)}")
        if self.floor <= 0:
            raise ValueError(f"thresholds: floor must be > 0, got {self.floor}")

    def level(self, deviation_pct: float) -> Severity:
        """Instantaneous level of one deviation, before the sustained rule."""
        size = abs(deviation_pct)
        if size >= self.alert_pct:
            return Severity.ALERT
        return Severity.WARNING if size >= self.warning_pct else Severity.OK


#: Step level: 6 steps on the same side (an hour at 10-minute steps) to warn or alert. Coarser periods are
#: already averages: one period over a threshold is enough by default, except an hourly warning (three
#: hours on the same side: a 1-2 hour on/off cycle alternates between hours). Chosen on the live twin's
#: summer and winter runs and checked on four other seasons (bench/bench_alert_rules.py, docs/tracking.md).
DEFAULT_THRESHOLDS = {
    "step": Thresholds(warning_steps=6, alert_steps=6),
    "hourly": Thresholds(warning_steps=3, alert_steps=1, clear_steps=1),
    "daily": Thresholds(warning_steps=1, alert_steps=1, clear_steps=1),
    "monthly": Thresholds(warning_steps=1, alert_steps=1, clear_steps=1),
}


@dataclass(frozen=True)
class Alert:
    """A change of tracking state for one signal, or a stale-data alarm (``severity == "stale"``)."""

    time: dt.datetime
    signal: str
    granularity: str  # one of GRANULARITIES, or "live" for stale-data alarms
    severity: str  # "ok", "warning", "alert" or "stale"
    raised: bool  # False when the state clears
    predicted: float = float("nan")
    actual: float = float("nan")
    error: float = float("nan")
    deviation_pct: float = float("nan")
    message: str = ""


def deviation_pct(predicted: float, actual: float, floor: float = 1e-9) -> float:
    """100 * (actual - predicted) / max(|predicted|, floor)."""
    return 100.0 * (actual - predicted) / max(abs(predicted), floor)


@dataclass
class SustainedClassifier:
    """Thresholds plus the sustained rule over a sequence of deviations (one signal, one granularity)."""

    thresholds: Thresholds
    state: Severity = Severity.OK
    _warn_run: int = 0
    _alert_run: int = 0
    _ok_run: int = 0
    _side: int = 0  # sign of the current runs' deviations

    def update(self, deviation: float) -> Severity | None:
        """Feed one period's deviation (%); return the new state when it changed, else None."""
        level = self.thresholds.level(deviation)
        side = 0 if deviation == 0 else (1 if deviation > 0 else -1)
        if side != self._side:  # a change of sign starts new runs
            self._warn_run = self._alert_run = 0
            self._side = side
        self._warn_run = self._warn_run + 1 if level >= Severity.WARNING else 0
        self._alert_run = self._alert_run + 1 if level >= Severity.ALERT else 0
        self._ok_run = self._ok_run + 1 if level == Severity.OK else 0
        new = self.state
        if self._alert_run >= self.thresholds.alert_steps:
            new = Severity.ALERT
        elif self._warn_run >= self.thresholds.warning_steps and self.state < Severity.WARNING:
            new = Severity.WARNING
        elif self._ok_run >= self.thresholds.clear_steps:
            new = Severity.OK
        if new == self.state:
            return None
        self.state = new
        return new


@dataclass
class _Bucket:
    start: dt.datetime
    predicted: float = 0.0
    actual: float = 0.0
    count: int = 0


def _bucket_start(time: dt.datetime, granularity: str) -> dt.datetime:
    if granularity == "hourly":
        return time.replace(minute=0, second=0, microsecond=0)
    if granularity == "daily":
        return time.replace(hour=0, minute=0, second=0, microsecond=0)
    return time.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass
class DeviationTracker:
    """Rolling deviation of one signal at step, hourly, daily and monthly granularity.

    Feed samples in time order with ``update``; it returns the alerts raised or cleared. A sample
    whose ``actual`` is None is a gap: counted, never compared. ``flush`` closes the open periods.
    Samples are stamped with the END of their step (as EnergyPlus reports them), so a sample at
    10:00 belongs to the hour 09:00-10:00.
    """

    signal: str
    thresholds: dict[str, Thresholds] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    gaps: int = 0
    compared: int = 0
    latest_pct: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.thresholds) - set(GRANULARITIES)
        if unknown:
            raise ValueError(f"unknown granularities {sorted(unknown)}; known: {GRANULARITIES}")
        self.thresholds = {**DEFAULT_THRESHOLDS, **self.thresholds}
        self._classifiers = {g: SustainedClassifier(t) for g, t in self.thresholds.items()}
        self._buckets: dict[str, _Bucket] = {}
        self._first: dict[str, dt.datetime | None] = {}  # per granularity: the first sample of its first period
        self._last_time: dt.datetime | None = None
        self._step: dt.timedelta | None = None  # the shortest interval between two samples: the step

    @property
    def state(self) -> Severity:
        """Worst current state over all granularities."""
        return max(c.state for c in self._classifiers.values())

    def update(self, time: dt.datetime, predicted: float, actual: float | None) -> list[Alert]:
        if self._last_time is not None and time > self._last_time:
            interval = time - self._last_time
            self._step = interval if self._step is None else min(self._step, interval)
        self._last_time = time
        if actual is None or actual != actual:  # None or NaN: a gap in the live data
            self.gaps += 1
            return []
        self.compared += 1
        alerts = self._classify("step", time, predicted, actual)
        period_time = time - dt.timedelta(microseconds=1)  # end-of-step stamp -> the period it closes
        for granularity in ("hourly", "daily", "monthly"):
            start = _bucket_start(period_time, granularity)
            bucket = self._buckets.get(granularity)
            if bucket is not None and bucket.start != start:
                alerts += self._close(granularity)
            self._first.setdefault(granularity, time)
            bucket = self._buckets.setdefault(granularity, _Bucket(start))
            bucket.predicted += predicted
            bucket.actual += actual
            bucket.count += 1
        return alerts

    def flush(self) -> list[Alert]:
        """Close the open hourly, daily and monthly periods (end of a run)."""
        alerts: list[Alert] = []
        for granularity in list(self._buckets):
            alerts += self._close(granularity)
        return alerts

    def _close(self, granularity: str) -> list[Alert]:
        bucket = self._buckets.pop(granularity)
        first, self._first[granularity] = self._first[granularity], None  # only the first period can be partial
        if first is not None and (self._step is None or first - self._step > bucket.start):
            return []  # the tracker's first period, begun before its first sample: not the period's sum
        return self._classify(granularity, bucket.start, bucket.predicted, bucket.actual)

    def _classify(self, granularity: str, time: dt.datetime, predicted: float, actual: float) -> list[Alert]:
        thresholds = self.thresholds[granularity]
        pct = deviation_pct(predicted, actual, thresholds.floor)
        self.latest_pct[granularity] = pct
        changed = self._classifiers[granularity].update(pct)
        if changed is None:
            return []
        name = changed.name.lower()
        if changed == Severity.OK:
            message = f"{self.signal}: {granularity} deviation back under {thresholds.warning_pct:g} %"
        else:
            runs = thresholds.alert_steps if changed == Severity.ALERT else thresholds.warning_steps
            message = (f"{self.signal}: {granularity} deviation {pct:+.1f} % "
                       f"({name}, {runs} consecutive period(s) over threshold)")
        return [Alert(time=time, signal=self.signal, granularity=granularity, severity=name,
                      raised=changed != Severity.OK, predicted=predicted, actual=actual,
                      error=actual - predicted, deviation_pct=pct, message=message)]
