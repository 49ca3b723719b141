"""The mirror of one twin building: live values written into its input tags as they arrive.

An asyncua subscription (``TagSubscriber``, as tracking uses: bounded connect, a liveness read every
second, reconnection with exponential backoff) delivers the live nodes' values as they change; a
subscription rather than polling, so that a new setpoint reaches the twin within the publishing
interval (100 ms by default) and an unchanged one costs no traffic. Each value is converted to the
twin input's unit and written through the server's in-process write path at once, so the value that
drives a step is the latest one that arrived before the step read its inputs.

A converted value outside the input's EURange, or one breaking an order between inputs (a heating
setpoint above the cooling one), is refused: the input holds its last good value and the building is
flagged stale until a good one comes. Values count as current while the link that delivered them is
up (after a reconnection, only once the new subscription has delivered them: a value held from before
the drop is as old as the drop); otherwise they age, and after ``max_age_s`` (or while any input has
had no value, as at start) the building's ``Control.LiveStale`` is true, ``Control.LiveAge`` says how
old the oldest held value is, and an alarm goes to the log and the sinks (the tracking's anomaly log,
when the building is tracked). Mirrored inputs are read-only for clients (Write: BadNotWritable); the
values a Control.Exchange call gives for them are replaced by the live ones before any step can use
them (``restore``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

from asyncua import ua

from bridge.building import BuildingState
from bridge.live.config import LiveConfig
from bridge.server import TagServer
from bridge.tagmap import TagMap
from bridge.tracking.anomalies import AnomalyLog
from bridge.tracking.config import load_tracking_config
from bridge.tracking.deviation import Alert
from bridge.tracking.live import TagSubscriber, naive_utc, raise_if_cancelled
from bridge.tracking.sinks import AlertSink, LoggingSink, publish_all

log = logging.getLogger(__name__)

CONTROL_TAGS = {"LiveStale": (True, ua.VariantType.Boolean), "LiveAge": (0.0, ua.VariantType.Double)}


class Mirror:
    """Mirrors ``live.inputs`` of ``building`` (served by ``tag_server`` with ``tagmap``)."""

    def __init__(self, tag_server: TagServer, building: str, tagmap: TagMap, live: LiveConfig,
                 sinks: Sequence[AlertSink] = ()):
        self.server, self.building, self.tagmap, self.live = tag_server, building, tagmap, live
        self.sinks = [LoggingSink(), *sinks]
        self.mirrored = {m.input: m for m in live.inputs}
        self.values: dict[str, float] = {}  # input -> the last good live value, converted
        self.current_s: dict[str, float] = {}  # input -> monotonic time its value was last known current
        self.taken_on: dict[str, int] = {}  # input -> the subscriber's connection that delivered its value
        self.refused: dict[str, str] = {}  # input -> why its latest live value was not taken
        self.stale = True  # no live value yet
        self.age_s = 0.0
        self._alarmed = False
        self._started_s = time.monotonic()
        self._arrived: dict[str, tuple[float, int]] = {}  # input -> (converted value, connection), not yet written
        self._wake = asyncio.Event()
        self.subscriber = TagSubscriber(f"live inputs of {building}", live.endpoint,
                                        {m.input: m.node for m in live.inputs}, self._on_value)

    @property
    def prefix(self) -> str:
        return f"{self.server.campus}.{self.building}"

    async def setup(self) -> None:
        """``Control.LiveStale`` and ``Control.LiveAge`` of the building, and its mirrored inputs made
        read-only for clients. Call after ``add_building``, before the server listens."""
        await self.server.add_control_tags(self.building, CONTROL_TAGS)
        for mirrored in self.live.inputs:
            why = f"mirrored from {mirrored.node} on {self.live.endpoint.url}: read-only"
            await self.server.make_input_read_only(self.building, mirrored.input, why)
        log.info("%s: mirroring %s from %s (max age %g s); clients may not write them (BadNotWritable)",
                 self.building, ", ".join(self.mirrored), self.live.endpoint.url, self.live.max_age_s)

    def _on_value(self, name: str, stamp, value: float) -> None:
        self._arrived[name] = self.mirrored[name].convert(value), self.subscriber.connections
        self._wake.set()

    async def run(self) -> None:
        """Mirror until cancelled; the subscriber is stopped on the way out."""
        self._started_s = time.monotonic()
        subscriber = asyncio.create_task(self.subscriber.run(), name=f"live link {self.prefix}")
        try:
            while True:
                self._wake.clear()
                await self._write_arrived()
                await self._check_age()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._tick_s())
                except asyncio.TimeoutError:
                    pass
                raise_if_cancelled()
        finally:
            self.subscriber.stop()
            await asyncio.wait_for(asyncio.gather(subscriber, return_exceptions=True), 15)

    def _tick_s(self) -> float:
        return max(0.05, min(1.0, self.live.max_age_s / 4))

    async def _write_arrived(self) -> None:
        """Write the values that arrived, checked against their inputs' EURange and orders together."""
        received, self._arrived = self._arrived, {}
        arrived = {name: value for name, (value, _) in received.items()}
        problems = {name: self._range_problem(name, value) for name, value in arrived.items()}
        taken = {name: value for name, value in arrived.items() if problems[name] is None}
        values = self.server.read_inputs(self.building) | taken
        for order in self.tagmap.orders:
            if not order.holds(values):
                for name in {order.lower, order.upper} & set(taken):
                    problems[name] = order.explain(values)
        now = time.monotonic()
        for name, value in arrived.items():
            if problems[name]:
                self._refuse(name, problems[name])
                continue
            if self.refused.pop(name, None):
                log.info("%s.%s: live values taken again (%g)", self.building, name, value)
            self.values[name], self.current_s[name], self.taken_on[name] = value, now, received[name][1]
            await self.server.write_value(self.server.input_node(self.building, name), value, ua.VariantType.Double)

    def _range_problem(self, name: str, value: float) -> str | None:
        """Why converted live ``value`` may not drive input ``name`` (not finite, outside EURange), or None."""
        item = self.tagmap.input(name)
        if math.isfinite(value) and item.min <= value <= item.max:
            return None
        return f"{value:g} {item.unit} outside EURange [{item.min:g}, {item.max:g}]"

    def _refuse(self, name: str, problem: str) -> None:
        """The input holds its last good value; said once per reason."""
        if self.refused.get(name) != problem:
            held = f"{self.values[name]:g}" if name in self.values else "its default"
            log.warning("%s.%s: live value refused (%s); holding %s", self.building, name, problem, held)
        self.refused[name] = problem

    async def restore(self) -> None:
        """Put the live values back on the mirrored inputs (after a Control.Exchange wrote all inputs)."""
        for name, value in self.values.items():
            await self.server.write_value(self.server.input_node(self.building, name), value, ua.VariantType.Double)

    async def _check_age(self) -> None:
        """Values are current while the link that delivered them is up; update LiveAge and LiveStale, alarm
        on a change."""
        now = time.monotonic()
        if self.subscriber.connected.is_set():
            for name in self.values:
                if self.taken_on[name] == self.subscriber.connections:
                    self.current_s[name] = now
        oldest = min((self.current_s.get(name, self._started_s) for name in self.mirrored), default=now)
        self.age_s = now - oldest
        missing = [name for name in self.mirrored if name not in self.values]
        stale = bool(missing or self.refused) or self.age_s > self.live.max_age_s
        await self.server.set_control(self.building, LiveAge=self.age_s)
        if stale != self.stale:
            self.stale = stale
            await self.server.set_control(self.building, LiveStale=stale)
        # At start the first values normally come within the publishing interval: alarm after max_age_s.
        if stale and not self._alarmed and (self.age_s > self.live.max_age_s or self.refused):
            await self._alarm(True, self._why_stale(missing))
        elif not stale and self._alarmed:
            await self._alarm(False, f"{self.building}: live inputs current again from {self.live.endpoint.url}")

    def _why_stale(self, missing: list[str]) -> str:
        reasons = [f"no live value for {', '.join(missing)}"] if missing else []
        if self.age_s > self.live.max_age_s:
            link = "up but silent" if self.subscriber.connected.is_set() else "down"
            reasons.append(f"link to {self.live.endpoint.url} {link}: values {self.age_s:.0f} s old "
                           f"(max_age_s {self.live.max_age_s:g})")
        reasons += [f"{name}: {why}" for name, why in self.refused.items()]
        return f"{self.building}: live inputs stale, holding the last values: {'; '.join(reasons)}"

    async def _alarm(self, raised: bool, message: str) -> None:
        self._alarmed = raised
        alert = Alert(time=naive_utc(None), signal=f"{self.building} live inputs", granularity="live",
                      severity="stale" if raised else "ok", raised=raised, message=message)
        await publish_all(self.sinks, [alert])


async def start_mirror(tag_server: TagServer, building: BuildingState, tracking_files: Sequence[Path]) -> asyncio.Task:
    """Set up and start the mirror of ``building`` (its config has a ``live`` table); its alarms also go to
    the anomaly logs of ``tracking_files`` (the building's tracking). The caller cancels the task."""
    sinks = [AnomalyLog(load_tracking_config(path).anomaly_db) for path in tracking_files]
    mirror = Mirror(tag_server, building.name, building.tagmap, building.config.live, sinks)
    await mirror.setup()
    building.restore_mirrored = mirror.restore
    return asyncio.create_task(mirror.run(), name=f"mirror {mirror.prefix}")
