"""The after-hours rule: energy the building draws beyond the twin while it should be unoccupied.

A schedule fault (HVAC started two hours early, equipment left on at night) adds a few kW to a building
whose night load is small, but that is a few percent of nothing the percentage rules of ``deviation`` can
call: the early start in winter adds 0.5-1 kW to a 6-7 kW night (docs/tracking.md). Building operators
watch such faults with an after-hours (schedule-deviation) rule: the energy drawn outside the occupied
schedule against what is expected then, in absolute units. Here the expectation is the twin, running the
building's nominal schedules under the building's own (mirrored) weather.

At each compared step whose time falls outside the ``occupancy`` (``bridge.comfort.Occupancy``: occupied
hours per day type on the building's clock, with its daylight saving rule; a step stamped at its end
belongs to the period before the stamp, as in ``deviation``)::

    excess_kw = mean over the last ``window_steps`` unoccupied steps of (actual - predicted)   (kW)

The window holds consecutive unoccupied steps only: an occupied step or a gap in the live data empties it,
and nothing is judged until it is full again (a whole window of after-hours use). Levels: excess_kw >=
``alert_kw`` alert, >= ``warning_kw`` warning; one-sided (less energy than the twin at night is no waste,
and the deviation rules report it). A raised state clears after ``clear_steps`` consecutive full windows
under ``warning_kw``; occupied hours neither raise nor clear it. Alerts are emitted on changes of state
only, with granularity ``"after_hours"``, and reuse the deviation rules' severities (``deviation.Severity``).

Defaults (``AfterHoursRule``), chosen on the live twin's summer and winter runs by the criterion written in
``bench/bench_after_hours.py`` before any other season was scored: a two-hour window (12 ten-minute steps),
warning 0.3 kW, alert 0.4 kW. They are absolute, so they suit a building of the DOE Small Office's size
(511 m2, 5-9 kW at night): set them from a building's own fault-free nights (the bench's criterion: at
least 2x and 3x the largest fault-free window excess).

Practice this follows: the out-of-hours consumption checks of building analytics packages, which compare
the energy drawn in unoccupied hours with a reference over a window (often the occupied hours or the same
hours of an earlier week). Here the reference is the twin over the same hours, and the limit is in kW,
not a percentage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import deque
from dataclasses import dataclass

from bridge.comfort import Occupancy
from bridge.tracking.deviation import Alert, Severity

GRANULARITY = "after_hours"


@dataclass(frozen=True)
class AfterHoursRule:
    """Thresholds of the after-hours rule; ``occupancy``: when the building should be occupied.

    ``warning_kw``, ``alert_kw``: mean excess power (kW, actual - predicted) over the window;
    ``window_steps``: consecutive unoccupied steps averaged; ``clear_steps``: full windows under the
    warning level that clear a raised state; ``pairs``: the tracked pairs it watches (power in kW),
    empty for every pair."""

    occupancy: Occupancy
    warning_kw: float = 0.3
    alert_kw: float = 0.4
    window_steps: int = 12
    clear_steps: int = 3
    pairs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.warning_kw < self.alert_kw:
            raise ValueError(f"after-hours rule needs 0 < warning_kw < alert_kw, got {self.warning_kw}, {self.alert_kw}")
        for name in ("window_steps", "clear_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"after-hours rule: {name} must be >= 1, got {getattr(self, name)}")

    def watches(self, pair: str) -> bool:
        return not self.pairs or pair in self.pairs

    def level(self, excess_kw: float) -> Severity:
        """Instantaneous level of one window's mean excess."""
        if excess_kw >= self.alert_kw:
            return Severity.ALERT
        return Severity.WARNING if excess_kw >= self.warning_kw else Severity.OK


@dataclass
class AfterHoursDetector:
    """The after-hours rule over one signal: feed compared steps in time order with ``update``."""

    signal: str
    rule: AfterHoursRule
    state: Severity = Severity.OK
    latest_kw: float = float("nan")  # the last full window's mean excess
    _window: deque = dataclasses.field(default_factory=deque)  # (predicted, actual) of the unoccupied run
    _ok_run: int = 0

    def unoccupied(self, time: dt.datetime) -> bool:
        """Whether the step stamped ``time`` (its end) lies outside the occupied hours."""
        return not self.rule.occupancy.occupied(time - dt.timedelta(microseconds=1))

    def update(self, time: dt.datetime, predicted: float, actual: float | None) -> list[Alert]:
        """One step (``actual`` None or NaN: a gap); the alerts raised or cleared by it."""
        if actual is None or math.isnan(actual) or not self.unoccupied(time):
            self._window.clear()
            return []
        self._window.append((predicted, actual))
        if len(self._window) > self.rule.window_steps:
            self._window.popleft()
        if len(self._window) < self.rule.window_steps:
            return []
        twin_kw = sum(p for p, _ in self._window) / len(self._window)
        live_kw = sum(a for _, a in self._window) / len(self._window)
        self.latest_kw = live_kw - twin_kw
        level = self.rule.level(self.latest_kw)
        self._ok_run = self._ok_run + 1 if level == Severity.OK else 0
        new = self.state
        if level > self.state:
            new = level
        elif self._ok_run >= self.rule.clear_steps:
            new = Severity.OK
        if new == self.state:
            return []
        self.state = new
        return [self._alert(time, twin_kw, live_kw)]

    def _alert(self, time: dt.datetime, twin_kw: float, live_kw: float) -> Alert:
        hours = f"the last {self.rule.window_steps} unoccupied steps"
        if self.state == Severity.OK:
            message = f"{self.signal}: after-hours use back under {self.rule.warning_kw:g} kW above the twin"
        else:
            limit = self.rule.alert_kw if self.state == Severity.ALERT else self.rule.warning_kw
            message = (f"{self.signal}: after-hours use {self.latest_kw:+.2f} kW above the twin over {hours} "
                       f"({live_kw:.2f} against {twin_kw:.2f} kW; {self.state.name.lower()}, >= {limit:g} kW)")
        return Alert(time=time, signal=self.signal, granularity=GRANULARITY, severity=self.state.name.lower(),
                     raised=self.state != Severity.OK, predicted=twin_kw, actual=live_kw, error=self.latest_kw,
                     deviation_pct=100.0 * self.latest_kw / max(abs(twin_kw), 1e-9), message=message)
