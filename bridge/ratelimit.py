"""Rate limits per key: at most so many events of one key (a client, a reason) in each time window.

``RateLimit`` counts and says whether an event is within its key's limit; ``ThrottledLog`` uses it to
log the first few lines of a key per window and then one summary line naming how many were left out,
so a client repeating a refused request cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable


class RateLimit:
    """At most ``limit`` events per key in a window of ``window_s`` seconds (a key's window opens at
    its first event and a new one at its first event after that window ended)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._windows: dict[Hashable, tuple[float, int]] = {}  # key -> (window start, events in it)
        self._excess: dict[Hashable, int] = {}  # key -> events refused in its windows that ended

    def allow(self, key: Hashable) -> bool:
        """Count an event of ``key``; True while its window holds at most ``limit`` events."""
        now = self.clock()
        start, count = self._windows.get(key, (now, 0))
        if now - start >= self.window_s:
            self._close(key, count)
            start, count = now, 0
        self._windows[key] = (start, count + 1)
        return count < self.limit

    def drain(self, everything: bool = False) -> dict[Hashable, int]:
        """Events refused per key in windows that have ended (``everything``: also in open ones), each
        reported once; ended windows are forgotten."""
        now = self.clock()
        for key, (start, count) in list(self._windows.items()):
            if everything or now - start >= self.window_s:
                del self._windows[key]
                self._close(key, count)
        excess, self._excess = self._excess, {}
        return excess

    def next_end(self) -> float | None:
        """Seconds until ``drain`` has refused events to report (0: it has now), or None: none so far."""
        if self._excess:
            return 0.0
        now = self.clock()
        ends = [start + self.window_s - now for start, count in self._windows.values() if count > self.limit]
        return max(0.0, min(ends)) if ends else None

    def _close(self, key: Hashable, count: int) -> None:
        if count > self.limit:
            self._excess[key] = self._excess.get(key, 0) + count - self.limit


class ThrottledLog:
    """Warnings per key: the first ``limit`` of each window of ``window_s`` seconds are logged, the
    rest counted and reported in one line when the window ends (``key`` names them in that line:
    a string such as ``"refused writes by anonymous (BadOutOfRange)"``).

    The summary is logged by a timer on the running event loop; without one, at the next warning
    or ``flush``."""

    def __init__(self, logger: logging.Logger, limit: int = 5, window_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.rate = RateLimit(limit, window_s, clock)
        self._timer: asyncio.TimerHandle | None = None

    def warning(self, key: str, message: str, *args) -> None:
        self.flush()
        if self.rate.allow(key):
            self.logger.warning(message, *args)
        elif self._timer is None:
            self._schedule()

    def flush(self, everything: bool = False) -> None:
        """Log the summaries of ended windows (``everything``: of all windows, e.g. when stopping)."""
        if everything and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for key, count in self.rate.drain(everything).items():
            self.logger.warning("%s: %d more in %g s, not logged one by one", key, count, self.rate.window_s)

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(self.rate.next_end() or 0.0, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()
        if self.rate.next_end() is not None:
            self._schedule()
