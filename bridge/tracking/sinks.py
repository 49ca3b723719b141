"""Where alerts go: the ``AlertSink`` protocol and its implementations.

- ``LoggingSink``: Python logging (warning level for raised alerts).
- ``AnomalyLog`` (module ``anomalies``): the SQLite investigation log.
- ``AsyncuaAlertSink``: status variables and OPC UA events on the bridge's asyncua ``Server``.

A sink's ``publish`` must not block: ``publish_all`` gives every sink a time limit and logs a
sink that fails or overruns instead of stopping the tracking loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from asyncua import Node, Server, ua

from bridge.tracking.deviation import Alert

log = logging.getLogger(__name__)

#: OPC UA event Severity (1-1000) per tracking severity.
EVENT_SEVERITY = {"ok": 100, "warning": 500, "alert": 800, "stale": 700}


@runtime_checkable
class AlertSink(Protocol):
    async def publish(self, alert: Alert) -> None:
        """Deliver one alert (raised or cleared)."""


class LoggingSink:
    async def publish(self, alert: Alert) -> None:
        log.log(logging.WARNING if alert.raised else logging.INFO, "%s %s", alert.time, alert.message)


async def publish_all(sinks: Iterable[AlertSink], alerts: Iterable[Alert], timeout_s: float = 5.0) -> None:
    """Give every alert to every sink, each call bounded by ``timeout_s``; failures are logged."""
    for alert in alerts:
        for sink in sinks:
            try:
                await asyncio.wait_for(sink.publish(alert), timeout_s)
            except Exception as exc:  # a broken sink must not stop tracking
                log.error("alert sink %s failed on %r: %s", type(sink).__name__, alert.message, exc)


class AsyncuaAlertSink:
    """Tracking status as OPC UA variables and events under ``parent`` on an asyncua ``Server``.

    ``await sink.setup()`` creates, under ``parent`` (namespace index ``ns``; node ids
    ``<parent id>.<Name>`` when the parent has a string node id):
    ``Severity`` (String: ok, warning, alert), ``DeviationPct`` (Double, the deviation of the last
    alert), ``LastAlert`` (String, its message) and ``StaleData`` (Boolean), and makes ``parent``
    an event notifier. Each published alert then updates the variables and fires a BaseEventType
    event from ``parent`` whose Message is the alert's message and Severity 100 (cleared), 500
    (warning), 700 (stale live data) or 800 (alert). Source timestamps are the alert's time.
    """

    def __init__(self, server: Server, parent: Node, ns: int):
        self.server, self.parent, self.ns = server, parent, ns
        self.nodes: dict[str, Node] = {}
        self._events = None
        self._raised: dict[tuple[str, str], str] = {}  # (signal, granularity) -> raised severity

    async def setup(self) -> None:
        initial = {"Severity": ("ok", ua.VariantType.String), "DeviationPct": (0.0, ua.VariantType.Double),
                   "LastAlert": ("", ua.VariantType.String), "StaleData": (False, ua.VariantType.Boolean)}
        parent_id = self.parent.nodeid
        for name, (value, variant) in initial.items():
            # Under a string node id (the bridge's "<Campus>.<Building>.Tracking") children get "<id>.<name>".
            node_id = (ua.NodeId(f"{parent_id.Identifier}.{name}", self.ns)
                       if parent_id.NodeIdType == ua.NodeIdType.String else self.ns)
            self.nodes[name] = await self.parent.add_variable(node_id, ua.QualifiedName(name, self.ns), value,
                                                              varianttype=variant)
        await self.parent.set_event_notifier([ua.EventNotifier.SubscribeToEvents])
        self._events = await self.server.get_event_generator(emitting_node=self.parent.nodeid)
        self._events.event.SourceNode = self.parent.nodeid
        self._events.event.SourceName = (await self.parent.read_browse_name()).Name

    async def publish(self, alert: Alert) -> None:
        if self._events is None:
            raise RuntimeError("AsyncuaAlertSink.setup() was not awaited")
        if alert.severity == "stale" or alert.granularity == "live":
            await self._write("StaleData", alert.raised, ua.VariantType.Boolean, alert)
        else:
            key = (alert.signal, alert.granularity)
            if alert.raised:
                self._raised[key] = alert.severity
            else:
                self._raised.pop(key, None)
            worst = max(self._raised.values(), key=("warning", "alert").index, default="ok")
            await self._write("Severity", worst, ua.VariantType.String, alert)
            await self._write("DeviationPct", float(alert.deviation_pct), ua.VariantType.Double, alert)
        await self._write("LastAlert", alert.message, ua.VariantType.String, alert)
        self._events.event.Severity = EVENT_SEVERITY[alert.severity]
        await self._events.trigger(message=alert.message)

    async def _write(self, name: str, value: object, variant: ua.VariantType, alert: Alert) -> None:
        data = ua.DataValue(ua.Variant(value, variant), SourceTimestamp=alert.time)
        await self.nodes[name].write_value(data)
