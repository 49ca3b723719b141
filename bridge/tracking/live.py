"""Live link: subscribe to the live building and the twin over OPC UA and pair their values.

``TagSubscriber`` is one asyncua client: it connects (bounded by ``connect_timeout_s``), subscribes
to a list of nodes, checks the connection every second with a bounded read and reconnects with
exponential backoff (``backoff_min_s`` doubling up to ``backoff_max_s``) when anything fails.

``LiveLink`` runs one subscriber on the twin and one on the live building. A twin step is the set
of twin values sharing one SourceTimestamp (the simulation time). For each pair it takes the live
value at that time: the mean (or the last) of the live samples in the twin step ending at that time,
else the last live sample no older than ``max_gap_s``, else a gap (counted, never compared). Live
values are converted to the twin's unit with the pair's scale and offset; their times to the twin's
time base (simulation time: the building's local standard time, stamped as if UTC) with the endpoint's
``utc_offset_h`` when its server stamps true UTC, as a real building's does. A twin step waits at most
``pair_timeout_s`` for live data covering its time (a live sample at or up to ``max_gap_s`` after it). When no live value at all arrives for
``stale_after_s`` seconds (wall clock), a stale-data alarm is published (and cleared when data
come back) instead of silently comparing nothing.

With an ``[after_hours]`` table, the pairs it watches also go through the after-hours rule
(``after_hours.AfterHoursDetector``: excess kW over the twin in unoccupied hours); its alerts join the
deviation alerts in every sink (granularity ``after_hours``).

Each pair also keeps a rolling Guideline 14 calibration view (``calibration.RollingCalibration``, window
and minimum hours from the tracking file); each completed hour's view goes to the sinks that take views
(``publish_calibration``).
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence

from asyncua import Client, ua

from bridge.opcua_adapter import subscribe_every_sample
from bridge.security.client import configure_client
from bridge.security.settings import PASSWORD_VARIABLE, ClientSecurity
from bridge.tracking.after_hours import AfterHoursDetector
from bridge.tracking.anomalies import AnomalyLog
from bridge.tracking.calibration import CalibrationView, RollingCalibration
from bridge.tracking.config import Endpoint, TrackingConfig
from bridge.tracking.deviation import Alert, DeviationTracker
from bridge.tracking.sinks import AlertSink, LoggingSink, publish_all, publish_views

log = logging.getLogger(__name__)

OnValue = Callable[[str, dt.datetime, float], None]


def naive_utc(stamp: dt.datetime | None) -> dt.datetime:
    """OPC UA timestamps as naive UTC datetimes (the bridge stamps simulation time that way)."""
    if stamp is None:
        return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return stamp.astimezone(dt.timezone.utc).replace(tzinfo=None) if stamp.tzinfo else stamp


class _LostConnectionTraceback(logging.Filter):
    """asyncua logs a server that went away with the traceback of the ConnectionError in its publish loop; the
    subscriber reports the loss itself (and reconnects), so the record keeps its line and loses the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], ConnectionError):
            record.msg = f"{record.msg} ({record.exc_info[1]})"
            record.exc_info, record.exc_text = None, None
        return True


LOST_CONNECTION_TRACEBACK = _LostConnectionTraceback()


class TagSubscriber:
    """One OPC UA server, a set of nodes, values pushed to ``on_value(key, time, value)``."""

    def __init__(self, label: str, endpoint: Endpoint, nodes: dict[str, str], on_value: OnValue):
        self.label, self.endpoint, self.nodes, self.on_value = label, endpoint, nodes, on_value
        self.utc_offset = dt.timedelta(hours=endpoint.utc_offset_h)  # server time (UTC) -> the twin's standard time
        self.connected = asyncio.Event()
        self.connections = 0
        self._stop = asyncio.Event()
        self._lost = asyncio.Event()
        logging.getLogger("asyncua.client.ua_session.UaSession").addFilter(LOST_CONNECTION_TRACEBACK)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Connect, subscribe and stay connected until ``stop()``; reconnect with backoff on failure."""
        backoff_s = self.endpoint.backoff_min_s
        while not self._stop.is_set():
            client = Client(self.endpoint.url, timeout=self.endpoint.request_timeout_s)
            try:
                await asyncio.wait_for(self._connect(client), self.endpoint.connect_timeout_s)
                backoff_s = self.endpoint.backoff_min_s
                await self._watch(client)
            except Exception as exc:  # any failure of the link means: reconnect
                log.warning("%s %s: connection failed or lost (%s: %s); retrying in %.1f s",
                            self.label, self.endpoint.url, type(exc).__name__, exc, backoff_s)
            finally:
                self.connected.clear()
                await disconnect(client)
            if self._stop.is_set():
                break
            try:
                await asyncio.wait_for(self._stop.wait(), backoff_s)
            except asyncio.TimeoutError:
                backoff_s = min(backoff_s * 2, self.endpoint.backoff_max_s)

    async def _connect(self, client: Client) -> None:
        await connect(client, self.endpoint)
        node_ids = await resolve_nodes(client, self.endpoint, self.nodes)
        nodes = [client.get_node(node_id) for node_id in node_ids.values()]
        values = await client.read_attributes(nodes, ua.AttributeIds.Value)
        missing = [key for key, value in zip(node_ids, values) if value.StatusCode.value == ua.StatusCodes.BadNodeIdUnknown]
        if missing:
            raise LookupError(f"unknown nodes on {self.endpoint.url}: {[self.nodes[k] for k in missing]}")
        keys: dict[ua.NodeId, list[str]] = {}  # several pairs may compare with one node (one twin, many live)
        for node, key in zip(nodes, node_ids):
            keys.setdefault(node.nodeid, []).append(key)
        nodes = [client.get_node(node_id) for node_id in keys]
        subscription = await client.create_subscription(self.endpoint.publishing_interval_ms, _Handler(self, keys))
        # A step that repeats the previous value must still be reported: trigger on the timestamp too.
        results = await subscribe_every_sample(subscription, nodes, self.endpoint.queue_size)
        failed = [node.nodeid.to_string() for node, result in zip(nodes, results) if isinstance(result, ua.StatusCode)]
        if failed:
            raise LookupError(f"could not subscribe to {failed} on {self.endpoint.url}")
        self.connections += 1
        self._lost.clear()
        self.connected.set()
        log.info("%s: subscribed to %d nodes on %s", self.label, len(nodes), self.endpoint.url)

    async def _watch(self, client: Client) -> None:
        state = client.get_node(ua.ObjectIds.Server_ServerStatus_State)
        while True:
            try:
                await asyncio.wait_for(self._stop.wait(), 1.0)
                return
            except asyncio.TimeoutError:
                if self._lost.is_set():
                    raise ConnectionError("the server reported the subscription lost")
                await asyncio.wait_for(state.read_value(), self.endpoint.request_timeout_s)


async def connect(client: Client, endpoint: Endpoint) -> None:
    """Connect ``client`` (made for ``endpoint.url``) with the endpoint's security and user."""
    await configure_client(client, ClientSecurity(endpoint.security, endpoint.username,
                                                  endpoint.password_env or PASSWORD_VARIABLE))
    await client.connect()


async def resolve_nodes(client: Client, endpoint: Endpoint, nodes: dict[str, str]) -> dict[str, ua.NodeId]:
    """Node ids of ``nodes`` (key -> text): a node id text ("ns=2;s=...", "nsu=<namespace uri>;s=...", "i=..."); a
    browse path from the Objects folder ("/Site/Office/2:ClgSP": each name in ``endpoint.namespace`` unless it has
    an "<index>:" prefix); else a string node id in ``endpoint.namespace``. A browse path that leads nowhere is a
    LookupError."""
    index = None
    resolved = {}
    for key, text in nodes.items():
        if text.startswith(("ns=", "nsu=", "i=", "s=", "g=", "b=")):
            node_id = ua.NodeId.from_string(text)
            if getattr(node_id, "NamespaceUri", None):  # "nsu=<uri>;...": an ExpandedNodeId
                uri_index = await client.get_namespace_index(node_id.NamespaceUri)
                node_id = ua.NodeId(node_id.Identifier, uri_index, node_id.NodeIdType)
            resolved[key] = node_id
            continue
        if index is None:
            index = await client.get_namespace_index(endpoint.namespace)
        resolved[key] = await _browse(client, text, index) if text.startswith("/") else ua.NodeId(text, index)
    return resolved


async def _browse(client: Client, path: str, index: int) -> ua.NodeId:
    """The node at browse path ``path`` ("/A/B/3:C") below the Objects folder; names without an index are
    in namespace ``index``."""
    names = [name if re.match(r"^\d+:", name) else f"{index}:{name}" for name in path.strip("/").split("/")]
    try:
        return (await client.nodes.objects.get_child(names)).nodeid
    except ua.UaStatusCodeError as exc:
        raise LookupError(f"no node at browse path {path!r} on {client.server_url.geturl()}: {exc}") from None


class _Handler:
    def __init__(self, subscriber: TagSubscriber, keys: dict[ua.NodeId, list[str]]):
        self.subscriber, self.keys = subscriber, keys

    def datachange_notification(self, node, value, data) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return
        data_value = data.monitored_item.Value
        stamp = naive_utc(data_value.SourceTimestamp or data_value.ServerTimestamp) + self.subscriber.utc_offset
        for key in self.keys[node.nodeid]:
            self.subscriber.on_value(key, stamp, float(value))

    def status_change_notification(self, status) -> None:
        self.subscriber._lost.set()


async def disconnect(client: Client) -> None:
    try:
        await asyncio.wait_for(client.disconnect(), 5)
    except Exception:  # already broken: nothing left to close cleanly
        pass


class LiveBuffer:
    """Recent live samples of one signal, ordered by time, bounded in length."""

    def __init__(self, maxlen: int = 100_000):
        self.times: deque[dt.datetime] = deque(maxlen=maxlen)
        self.values: deque[float] = deque(maxlen=maxlen)

    def add(self, time_: dt.datetime, value: float) -> None:
        if self.times and time_ < self.times[-1]:  # out of order: insert in place
            i = bisect.bisect_right(list(self.times), time_)
            if len(self.times) == self.times.maxlen:  # full (deque.insert would raise): drop the oldest, as append does
                self.times.popleft()
                self.values.popleft()
                i = max(i - 1, 0)
            self.times.insert(i, time_)
            self.values.insert(i, value)
            return
        self.times.append(time_)
        self.values.append(value)

    @property
    def latest(self) -> dt.datetime | None:
        return self.times[-1] if self.times else None

    def covers(self, time_: dt.datetime, max_gap: dt.timedelta) -> bool:
        """True when a sample at or after ``time_`` (by at most ``max_gap``) has arrived: no later value
        for the step will come. A sample far ahead (another run's, or a clock's) does not count."""
        times = list(self.times)
        i = bisect.bisect_left(times, time_)
        return i < len(times) and times[i] <= time_ + max_gap

    def value_at(self, time_: dt.datetime, step: dt.timedelta, max_gap: dt.timedelta, method: str) -> float | None:
        """Live value for a twin step ending at ``time_``; None when there is a gap."""
        times = list(self.times)
        hi = bisect.bisect_right(times, time_)
        lo = bisect.bisect_right(times, time_ - step)
        if method == "mean" and hi > lo:
            window = list(self.values)[lo:hi]
            return sum(window) / len(window)
        if hi and time_ - times[hi - 1] <= max_gap:
            return self.values[hi - 1]
        return None


def raise_if_cancelled() -> None:
    """Raise CancelledError when the current task was cancelled but an ``asyncio.wait_for`` dropped the cancel
    (Python 3.11 returns the awaited result when it completes as the cancel arrives)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class LiveLink:
    """Pairs live values with twin steps, tracks deviation and publishes alerts to sinks."""

    def __init__(self, config: TrackingConfig, sinks: Sequence[AlertSink] = (), step: dt.timedelta | None = None):
        self.config = config
        self.sinks = list(sinks)
        self.step = step  # twin step length; inferred from the twin timestamps when None
        self.trackers = {p.name: DeviationTracker(p.name, dict(config.thresholds)) for p in config.pairs}
        rule = config.after_hours
        self.after_hours = {p.name: AfterHoursDetector(p.name, rule) for p in config.pairs if rule and rule.watches(p.name)}
        self.calibrations = {p.name: RollingCalibration(p.name, config.calibration_window_h, config.calibration_min_hours,
                                                        config.calibration_min_coverage_pct) for p in config.pairs}
        self.live = {p.name: LiveBuffer() for p in config.pairs}
        self.stale = False
        self.steps_done = 0
        self._pending: dict[dt.datetime, dict[str, float]] = {}
        self._pending_since: dict[dt.datetime, float] = {}
        self._last_done: dt.datetime | None = None
        self._judged_from: dt.datetime | None = None  # the twin run's first step + spin_up_h
        self._last_live_s = time.monotonic()
        self._wake = asyncio.Event()
        self._alerts: list[Alert] = []
        self._views: list[CalibrationView] = []
        self._pairs = {p.name: p for p in config.pairs}
        self.twin_subscriber = TagSubscriber("twin", config.twin, {p.name: p.twin for p in config.pairs}, self._on_twin)
        self.live_subscriber = TagSubscriber("live", config.live, {p.name: p.live for p in config.pairs}, self._on_live)

    def _on_twin(self, key: str, stamp: dt.datetime, value: float) -> None:
        if self._last_done is not None and stamp <= self._last_done:
            if stamp == self._last_done:
                return  # a repeat of the step already compared (initial value after a reconnect)
            log.warning("twin time went back from %s to %s: a new twin run; pairing restarts", self._last_done, stamp)
            self._last_done = self._judged_from = None
        self._pending.setdefault(stamp, {})[key] = value
        self._pending_since.setdefault(stamp, time.monotonic())
        self._wake.set()

    def _on_live(self, key: str, stamp: dt.datetime, value: float) -> None:
        buffer = self.live[key]
        if buffer.latest is not None and stamp < buffer.latest - dt.timedelta(seconds=self.config.max_gap_s):
            # Not a late sample but a new live run (a bridge started or reset): older samples would
            # make every twin step look covered.
            log.warning("live time of %s went back from %s to %s: a new live run; its buffer restarts",
                        key, buffer.latest, stamp)
            self.live[key] = buffer = LiveBuffer()
        buffer.add(stamp, self._pairs[key].convert(value))
        self._last_live_s = time.monotonic()
        self._wake.set()

    async def run(self, duration_s: float | None = None) -> None:
        """Track until cancelled (or for ``duration_s`` seconds); always stops both clients."""
        tasks = [asyncio.create_task(self.twin_subscriber.run()), asyncio.create_task(self.live_subscriber.run())]
        deadline = None if duration_s is None else time.monotonic() + duration_s
        self._last_live_s = time.monotonic()
        try:
            while deadline is None or time.monotonic() < deadline:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self._tick_s())
                except asyncio.TimeoutError:
                    pass
                await self.process()
                raise_if_cancelled()
        finally:
            for subscriber in (self.twin_subscriber, self.live_subscriber):
                subscriber.stop()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)

    def _tick_s(self) -> float:
        return max(0.05, min(1.0, self.config.stale_after_s / 4, self.config.pair_timeout_s / 4))

    async def process(self) -> None:
        """Check staleness and compare every twin step that is complete; publish the resulting alerts."""
        self._check_stale()
        now = time.monotonic()
        for stamp in sorted(self._pending):
            values = self._pending[stamp]
            waited_s = now - self._pending_since[stamp]
            if len(values) < len(self._pairs) and waited_s < self.config.pair_timeout_s:
                break  # twin step not complete yet
            max_gap = dt.timedelta(seconds=self.config.max_gap_s)
            covered = all(self.live[k].covers(stamp, max_gap) for k in values)
            if not covered and waited_s < self.config.pair_timeout_s and not self.stale:
                break
            self._compare(stamp, self._pending.pop(stamp))
            self._pending_since.pop(stamp)
        alerts, self._alerts = self._alerts, []
        views, self._views = self._views, []
        await publish_all(self.sinks, alerts)
        await publish_views(self.sinks, views)

    def _compare(self, stamp: dt.datetime, twin_values: dict[str, float]) -> None:
        if self._spinning_up(stamp):
            self._last_done = stamp
            self.steps_done += 1
            return
        step = self.step or (stamp - self._last_done if self._last_done else dt.timedelta(minutes=10))
        max_gap = dt.timedelta(seconds=self.config.max_gap_s)
        for name, predicted in twin_values.items():
            actual = self.live[name].value_at(stamp, step, max_gap, self.config.resample)
            self._alerts += self.trackers[name].update(stamp, predicted, actual)
            if name in self.after_hours:
                self._alerts += self.after_hours[name].update(stamp, predicted, actual)
            view = self.calibrations[name].update(stamp, predicted, actual, step)
            if view is not None:
                self._views.append(view)
        self._last_done = stamp
        self.steps_done += 1

    def _spinning_up(self, stamp: dt.datetime) -> bool:
        """Whether the twin step at ``stamp`` falls in its run's spin-up (``spin_up_h`` from its first step):
        a twin started beside a building holds the thermal state of its own weather file's warm-up day for
        days (docs/live.md, "Spin-up"), so its deviations then are not judged, nor counted in the
        calibration view; the deviation tracker then takes each hour, day and month from its first step."""
        if not self.config.spin_up_h:
            return False
        if self._judged_from is None:
            self._judged_from = stamp + dt.timedelta(hours=self.config.spin_up_h)
            log.info("tracking: the twin's spin-up runs until %s (spin_up_h %g): steps before it are paired, not judged",
                     self._judged_from, self.config.spin_up_h)
        return stamp < self._judged_from

    def _check_stale(self) -> None:
        silent_s = time.monotonic() - self._last_live_s
        if not self.stale and silent_s > self.config.stale_after_s:
            self.stale = True
            self._alerts.append(Alert(time=naive_utc(None), signal="live", granularity="live", severity="stale",
                                      raised=True, message=f"live data stale: nothing received from "
                                      f"{self.config.live.url} for {silent_s:.0f} s"))
        elif self.stale and silent_s <= self.config.stale_after_s:
            self.stale = False
            self._alerts.append(Alert(time=naive_utc(None), signal="live", granularity="live", severity="ok",
                                      raised=False, message="live data arriving again"))


def default_sinks(config: TrackingConfig) -> list[AlertSink]:
    """Logging plus the anomaly log of the configuration."""
    return [LoggingSink(), AnomalyLog(config.anomaly_db)]
