"""The wall-clock schedule of a paced run (``Pace``): when each step is handed to the engines, and the
warnings when a step overruns its wall slot."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar


log = logging.getLogger(__name__)
T = TypeVar("T")


class Pace:
    """Wall-clock schedule of a paced run: step k is handed to the engines at ``turn(k)`` = anchor + k *
    ``slot_s`` (the step length over the speed) and is due on the tags by ``turn(k + 1)``, the end of its slot.

    A step still computing when its slot ends overruns it: a warning names the buildings not done yet, and
    the first step in time again logs how long the campus was behind. At most one overrun a minute is
    warned about; the others are counted into the next warning (seconds behind: from the end of the first
    late slot to the publication of the last late step). Without ``catch_up`` the schedule moves
    later by each overrun (as after a pause): the next step starts at once and the ones after it a slot
    apart, no burst. With ``catch_up`` the steps run back to back until the schedule is met again.

    Times are read from ``now`` (monotonic by default; the realtime clock uses the epoch, ``time.time``);
    a step published up to ``grace_s`` after its slot ends is in time (the realtime clock publishes each
    step as its slot ends, a sleep's wake-up later)."""

    WARNING_INTERVAL_S = 60.0

    def __init__(self, slot_s: float, catch_up: bool, now: Callable[[], float] = time.monotonic,
                 grace_s: float = 0.0):
        self.slot_s, self.catch_up, self.now, self.grace_s = slot_s, catch_up, now, grace_s
        self.anchor = 0.0  # wall time (s, of ``now``) of step 0's turn
        self.computing: set[str] = set()  # buildings whose step is in flight
        self._behind_since: float | None = None  # end of the slot the current overrun began with
        self._behind_until = 0.0  # when its last late step was published
        self._late_steps = 0  # steps published after their slot in the current overrun
        self._moved_s = 0.0  # how much later the current overrun moved the schedule
        self._warned = False  # the current overrun was warned about
        self._last_warning = -math.inf
        self._unwarned = (0, 0.0)  # overruns since the last warning that were not warned about, seconds behind

    def start(self, now: float) -> None:
        """Step 0 is at ``now`` (s, of the ``now`` clock); nothing in flight, no overrun going."""
        self.anchor, self._behind_since = now, None
        self.computing.clear()

    def shift(self, seconds: float) -> None:
        """Move the schedule ``seconds`` later (a pause)."""
        self.anchor += seconds

    def turn(self, step: int) -> float:
        """Wall time (s, of the ``now`` clock) at which ``step`` is handed to the engines."""
        return self.anchor + step * self.slot_s

    async def wait_for_turn(self, step: int) -> None:
        delay = self.turn(step) - self.now()
        if delay > 0:
            await asyncio.sleep(delay)

    def watch(self, buildings: list[str], outputs: Awaitable[T]) -> Awaitable[T]:
        """``outputs`` of a step of ``buildings`` (one, or a ``StepGroup``'s), counted in ``computing`` until
        they are in."""
        self.computing.update(buildings)
        return self._computed(buildings, outputs)

    async def _computed(self, buildings: list[str], outputs: Awaitable[T]) -> T:
        try:
            return await outputs
        finally:
            self.computing.difference_update(buildings)

    def alarm(self, step: int) -> asyncio.TimerHandle:
        """Report an overrun if ``step`` is not in when its slot ends (cancel the handle when it is)."""
        return asyncio.get_running_loop().call_later(max(self.turn(step + 1) - self.now(), 0),
                                                     self._overrun, step)

    def _overrun(self, step: int) -> None:
        """The slot of ``step`` is over before all its outputs are in: an overrun begins (if none is going)."""
        if self._behind_since is not None:
            return
        self._behind_since = self._behind_until = self.turn(step + 1)
        self._late_steps, self._moved_s = 0, 0.0
        now = self.now()
        self._warned = now - self._last_warning >= self.WARNING_INTERVAL_S
        if not self._warned:
            return
        count, behind_s = self._unwarned
        waiting = f", waiting for {', '.join(sorted(self.computing))}" if self.computing else ""
        earlier = f" ({count} more overrun(s) since the last warning, {behind_s:.1f} s behind in all)" if count else ""
        policy = "the steps after it catch up" if self.catch_up else "the schedule moves later by the overrun"
        log.warning("paced clock: step %d overruns its %.3g s wall slot%s; %s%s", step, self.slot_s, waiting,
                    policy, earlier)
        self._last_warning, self._unwarned = now, (0, 0.0)

    def published(self, step: int) -> None:
        """``step`` is on the tags: an overrun goes on (and, without catch_up, the schedule moves later) if it
        is past its slot, else the overrun going on ends."""
        now, due = self.now(), self.turn(step + 1)
        if now <= due + self.grace_s:
            if self._behind_since is not None:
                self._back_on_pace(step)
            return
        self._overrun(step)
        self._late_steps += 1
        self._behind_until = now
        if not self.catch_up:
            self.anchor += now - due
            self._moved_s += now - due

    def _back_on_pace(self, step: int) -> None:
        behind_s = self._behind_until - self._behind_since
        if self._warned:
            moved = f"; the schedule moved {self._moved_s:.1f} s later" if self._moved_s else ""
            log.warning("paced clock: back on pace at step %d after %.1f s behind (%d late step(s))%s", step,
                        behind_s, self._late_steps, moved)
        else:
            count, total_s = self._unwarned
            self._unwarned = (count + 1, total_s + behind_s)
        self._behind_since = None
