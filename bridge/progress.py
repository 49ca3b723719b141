"""The progress line of a run: step, simulated time, recent rate (steps per wall second) and ETA, every
few seconds and at the last step."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Iterable

from bridge.building import BuildingState
from bridge.config import RunPeriod

log = logging.getLogger(__name__)


class StepRate:
    """Steps per wall second over the last ``window_s`` (at least over the last two samples)."""

    def __init__(self, window_s: float = 60.0):
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def restart(self, now: float, step: int) -> None:
        """Count from ``step`` at ``now`` (the run starts or resumes)."""
        self.samples.clear()
        self.samples.append((now, step))

    def add(self, now: float, step: int) -> float:
        """Note ``step`` done at ``now``; the rate since the oldest sample of the window (0 with none yet)."""
        self.samples.append((now, step))
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window_s:
            self.samples.popleft()
        then, first = self.samples[0]
        return (step - first) / (now - then) if now > then else 0.0


def eta(remaining_steps: int, rate: float) -> str:
    """Wall time left at ``rate`` steps/s, as H:MM:SS ("unknown" when nothing advances)."""
    if remaining_steps <= 0:
        return "0:00:00"
    if rate <= 0:
        return "unknown"
    return str(dt.timedelta(seconds=round(remaining_steps / rate)))


class Progress:
    """Logs the progress line of a run of ``period``: at most every ``INTERVAL_S``, and at its last step."""

    INTERVAL_S = 2.0

    def __init__(self, period: RunPeriod):
        self.period = period
        self.rate = StepRate()
        self.step0_s = 0.0  # simulation time (s) of step 0: realtime, the steps skipped to the start
        self._last_line = 0.0  # monotonic wall time (s) of the last line

    def restart(self, now: float, step: int) -> None:
        """Count the rate from ``step`` at ``now`` (the run starts or resumes)."""
        self.rate.restart(now, step)

    def step_done(self, step: int, buildings: Iterable[BuildingState]) -> None:
        """``step`` is published: the line, with each building's status, if one is due."""
        now = time.monotonic()
        if now - self._last_line < self.INTERVAL_S and step < self.period.steps:
            return
        self._last_line = now
        rate = self.rate.add(now, step)
        steps = self.period.steps
        sim = self.period.time_of(self.step0_s + step * self.period.step_s)
        log.info("step %d/%d  sim %s  %s steps/s  ETA %s  %s", step, steps, sim.strftime("%Y-%m-%d %H:%M"),
                 f"{rate:.0f}" if rate >= 10 else f"{rate:.2g}", eta(steps - step, rate),
                 " ".join(f"{b.name}={b.status}" for b in buildings))
