"""Where alerts go: the ``AlertSink`` protocol and its implementations.

- ``LoggingSink``: Python logging (warning level for raised alerts).
- ``AnomalyLog`` (module ``anomalies``): the SQLite investigation log.
- ``AsyncuaAlertSink``: status variables and OPC UA events on the bridge's asyncua ``Server``, and
  the calibration view's variables per pair (``setup_calibration``).

A sink that also has ``async def publish_calibration(view)`` receives each completed hour's
calibration view (``calibration.CalibrationView``) through ``publish_views``.

A sink's ``publish`` must not block: ``publish_all`` gives every sink a time limit and logs a
sink that fails or overruns instead of stopping the tracking loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from asyncua import Node, Server, ua

from bridge.tracking.calibration import CalibrationView
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

    async def publish_calibration(self, view: CalibrationView) -> None:
        log.info("%s %s", view.time, calibration_text(view))


def calibration_text(view: CalibrationView) -> str:
    """One line of a calibration view: figures, hours, pass or why there are no figures."""
    hours = f"{view.hours_in_window} h in the {view.window_h} h window ({view.incomplete_hours} incomplete left out)"
    if not view.published:
        return f"{view.signal}: hourly calibration not published yet, {hours}: {view.reason}"
    verdict = "passes" if view.passes else "fails"
    return (f"{view.signal}: hourly CV(RMSE) {view.cv_rmse_pct:.1f} %, NMBE {view.nmbe_pct:+.1f} %, {hours}, "
            f"{verdict} Guideline 14 (30 %, +/-10 %)")


async def publish_all(sinks: Iterable[AlertSink], alerts: Iterable[Alert], timeout_s: float = 5.0) -> None:
    """Give every alert to every sink, each call bounded by ``timeout_s``; failures are logged."""
    for alert in alerts:
        for sink in sinks:
            try:
                await asyncio.wait_for(sink.publish(alert), timeout_s)
            except Exception as exc:  # a broken sink must not stop tracking
                log.error("alert sink %s failed on %r: %s", type(sink).__name__, alert.message, exc)


async def publish_views(sinks: Iterable[object], views: Iterable[CalibrationView], timeout_s: float = 5.0) -> None:
    """Give every calibration view to every sink with ``publish_calibration``, bounded and logged as ``publish_all``."""
    for view in views:
        for sink in sinks:
            if not hasattr(sink, "publish_calibration"):
                continue
            try:
                await asyncio.wait_for(sink.publish_calibration(view), timeout_s)
            except Exception as exc:  # a broken sink must not stop tracking
                log.error("calibration sink %s failed on %s at %s: %s", type(sink).__name__, view.signal, view.time, exc)


class AsyncuaAlertSink:
    """Tracking status as OPC UA variables and events under ``parent`` on an asyncua ``Server``.

    ``await sink.setup()`` creates, under ``parent`` (namespace index ``ns``; node ids
    ``<parent id>.<Name>`` when the parent has a string node id):
    ``Severity`` (String: ok, warning, alert), ``DeviationPct`` (Double, the deviation of the last
    alert), ``LastAlert`` (String, its message) and ``StaleData`` (Boolean), and makes ``parent``
    an event notifier. Each published alert then updates the variables and fires a BaseEventType
    event from ``parent`` whose Message is the alert's message and Severity 100 (cleared), 500
    (warning), 700 (stale live data) or 800 (alert). Source timestamps are the alert's time.

    ``await sink.setup_calibration(pairs)`` adds, per pair name, an object ``<Pair>`` under ``parent``
    holding ``HourlyCvRmsePct`` and ``HourlyNmbePct`` (Double, NaN until published), ``HoursInWindow``
    (UInt32) and ``Guideline14Pass`` (Boolean); ``publish_calibration(view)`` writes them, stamped with
    the end of the view's hour.
    """

    def __init__(self, server: Server, parent: Node, ns: int):
        self.server, self.parent, self.ns = server, parent, ns
        self.nodes: dict[str, Node] = {}
        self._events = None
        self._raised: dict[tuple[str, str], str] = {}  # (signal, granularity) -> raised severity
        self.calibration_nodes: dict[str, dict[str, Node]] = {}  # pair -> view variable -> node

    async def setup(self) -> None:
        initial = {"Severity": ("ok", ua.VariantType.String), "DeviationPct": (0.0, ua.VariantType.Double),
                   "LastAlert": ("", ua.VariantType.String), "StaleData": (False, ua.VariantType.Boolean)}
        self.nodes = await self._add_variables(self.parent, initial)
        await self.parent.set_event_notifier([ua.EventNotifier.SubscribeToEvents])
        self._events = await self.server.get_event_generator(emitting_node=self.parent.nodeid)
        self._events.event.SourceNode = self.parent.nodeid
        self._events.event.SourceName = (await self.parent.read_browse_name()).Name

    async def _add_variables(self, parent: Node, initial: dict[str, tuple[object, ua.VariantType]]) -> dict[str, Node]:
        nodes = {}
        for name, (value, variant) in initial.items():
            nodes[name] = await parent.add_variable(self._child_id(parent, name), ua.QualifiedName(name, self.ns),
                                                    value, varianttype=variant)
        return nodes

    def _child_id(self, parent: Node, name: str) -> ua.NodeId | int:
        """Under a string node id (the bridge's "<Campus>.<Building>.Tracking") children get "<id>.<name>"."""
        parent_id = parent.nodeid
        return (ua.NodeId(f"{parent_id.Identifier}.{name}", self.ns)
                if parent_id.NodeIdType == ua.NodeIdType.String else self.ns)

    async def setup_calibration(self, pairs: Iterable[str]) -> None:
        """The calibration view's variables of each pair, under an object named for the pair."""
        initial = {"HourlyCvRmsePct": (math.nan, ua.VariantType.Double), "HourlyNmbePct": (math.nan, ua.VariantType.Double),
                   "HoursInWindow": (0, ua.VariantType.UInt32), "Guideline14Pass": (False, ua.VariantType.Boolean)}
        for pair in pairs:
            if pair in self.nodes:
                raise ValueError(f"pair name {pair!r} is taken by a tracking status variable: rename the pair")
            node = await self.parent.add_object(self._child_id(self.parent, pair), ua.QualifiedName(pair, self.ns))
            self.calibration_nodes[pair] = await self._add_variables(node, initial)

    async def publish_calibration(self, view: CalibrationView) -> None:
        nodes = self.calibration_nodes.get(view.signal)
        if nodes is None:
            return  # no variables set up for this pair (setup_calibration not called): nothing to show
        for name, value, variant in (("HourlyCvRmsePct", view.cv_rmse_pct, ua.VariantType.Double),
                                     ("HourlyNmbePct", view.nmbe_pct, ua.VariantType.Double),
                                     ("HoursInWindow", view.hours_in_window, ua.VariantType.UInt32),
                                     ("Guideline14Pass", view.passes, ua.VariantType.Boolean)):
            await nodes[name].write_value(ua.DataValue(ua.Variant(value, variant), SourceTimestamp=view.time))

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
