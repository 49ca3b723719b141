"""The tracking configuration file (TOML): which live tags are compared with which twin tags.

Example (see docs/tracking.md for every key)::

    [tracking]
    anomaly_db = "../runs/tracking.sqlite"   # relative to this file
    stale_after_s = 30          # no live value for this long (wall clock) raises the stale-data alarm
    pair_timeout_s = 10         # wait this long for live data covering a twin step, then count a gap
    max_gap_s = 900             # a live value older than this at a twin step's time is a gap
    resample = "mean"           # live samples within the twin step: "mean", or "last" value
    calibration_window_h = 168  # rolling window of the hourly Guideline 14 calibration view, hours
    calibration_min_hours = 24  # counted hours needed before CV(RMSE) and NMBE are published
    calibration_min_coverage_pct = 80  # an hour counts when its compared steps cover this much of it
    spin_up_h = 72              # twin hours after its run's first step: paired, not judged (default 0)

    [thresholds]                # step granularity; [thresholds.hourly] etc. override per granularity
    warning_pct = 5
    alert_pct = 10
    warning_steps = 6           # defaults: step 6/6/3, hourly 3/1/1 (bridge/tracking/deviation.py)
    alert_steps = 6

    [after_hours]               # optional: the after-hours rule (bridge/tracking/after_hours.py); absent: off
    pairs = ["FacilityPower"]   # the pairs it watches (power in kW); default every pair
    warning_kw = 0.3            # mean excess over the twin (kW) over the window: warning, alert
    alert_kw = 0.4
    window_steps = 12           # consecutive unoccupied steps averaged (2 h at 10-minute steps)
    clear_steps = 3             # full windows under warning_kw that clear a raised state

    [after_hours.occupancy]     # the building's occupied hours (bridge/comfort.py), or instead in [after_hours]
                                # tagmap = "../tagmaps/small_office.toml": a tag map's [occupancy]
    weekdays = [6.0, 22.0]      # Monday to Friday, start and end hour on the building's clock
    saturday = [6.0, 18.0]
    sunday = []                 # unoccupied all day
    daylight_saving = ["2nd Sunday in March", "1st Sunday in November"]   # the building's DST rule, if any

    [live]                      # the real building (or a second bridge standing in for it)
    endpoint = "opc.tcp://127.0.0.1:4841"
    namespace = "urn:twinbridge"
    utc_offset_h = 0            # a real server stamps true UTC: hours of the building's standard time from UTC
                                # (Chicago: -6, all year); 0 for a bridge, which stamps simulation time
    security = ""               # "policy,mode,certificate,private_key[,server_certificate]" (docs/security.md)
    username = ""               # password from the environment variable named by password_env

    [twin]
    endpoint = "opc.tcp://127.0.0.1:4840"
    namespace = "urn:twinbridge"

    [[pairs]]
    name = "FacilityPower"
    twin = "TestSite.SmallOffice.Outputs.FacilityPower"
    live = "Site.Office.Outputs.FacilityPower"
    scale = 1.0                 # live value * scale + offset = value in the twin's unit
    offset = 0.0
    unit = "kW"
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from bridge.comfort import Occupancy, read_occupancy
from bridge.errors import TwinbridgeError
from bridge.protocol import NAMESPACE
from bridge.security.settings import PASSWORD_VARIABLE, ClientSecurity
from bridge.security.users import SecurityError
from bridge.tagmap import TagMapError, load_tagmap
from bridge.tomlfile import Table, file_path, read_toml
from bridge.tracking.after_hours import AfterHoursRule
from bridge.tracking.deviation import GRANULARITIES, Thresholds


class TrackingConfigError(TwinbridgeError, ValueError):
    """A tracking file that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class Endpoint:
    """One OPC UA server to subscribe to."""

    url: str
    namespace: str = NAMESPACE
    security: str = ""
    username: str = ""
    password_env: str = ""  # name of the environment variable holding the password
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 4.0
    publishing_interval_ms: float = 100.0
    queue_size: int = 1000
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    utc_offset_h: float = 0.0  # server stamps true UTC: the building's standard time is UTC + this (Chicago: -6)

    def __post_init__(self) -> None:
        if not -14 <= self.utc_offset_h <= 14:
            raise ValueError(f"utc_offset_h must be within -14 .. 14 hours, got {self.utc_offset_h:g}")


@dataclass(frozen=True)
class Pair:
    """One compared signal: twin node, live node and the live-to-twin unit conversion."""

    name: str
    twin: str
    live: str
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""

    def convert(self, live_value: float) -> float:
        return live_value * self.scale + self.offset


@dataclass(frozen=True)
class TrackingConfig:
    live: Endpoint
    twin: Endpoint
    pairs: tuple[Pair, ...]
    thresholds: dict[str, Thresholds]
    anomaly_db: Path
    stale_after_s: float = 30.0
    pair_timeout_s: float = 10.0
    max_gap_s: float = 900.0
    resample: str = "mean"
    calibration_window_h: int = 168
    calibration_min_hours: int = 24
    calibration_min_coverage_pct: float = 80.0
    after_hours: AfterHoursRule | None = None  # the after-hours rule; None: off
    spin_up_h: float = 0.0  # hours of twin time after its run's first step that are paired but not judged


def _setting(table: Table, key: str, kind: str) -> float | int | str:
    """The ``float``, ``int`` or ``str`` setting ``key`` of ``table``; a float must be finite."""
    if kind == "str":
        return table.text(key)
    if kind == "int":
        return table.integer(key)
    value = table.number(key)
    if not math.isfinite(value):
        raise TrackingConfigError(f"{table.where}: {key!r} must be a finite number, got {value!r}")
    return value


def _build(cls, table: Table, key_of: dict[str, str] | None = None, tables: tuple[str, ...] = ()):
    """``cls`` from ``table``, each key read with the type of its field (``key_of``: field name -> key where
    they differ); a field without a default is required. ``tables``: keys of ``table`` left to the caller."""
    fields = {(key_of or {}).get(f.name, f.name): f for f in dataclasses.fields(cls)}
    table.check_keys([*fields, *tables])
    kwargs = {field.name: _setting(table, key, field.type) for key, field in fields.items()
              if key in table.values or field.default is dataclasses.MISSING}
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a check of the class (Thresholds: warning below alert)
        raise TrackingConfigError(f"{table.where}: {exc}") from None


def _endpoint(data: Table, key: str) -> Endpoint:
    return read_endpoint(data.table(key))


def read_endpoint(table: Table, other_keys: tuple[str, ...] = ()) -> Endpoint:
    """The ``Endpoint`` a table describes (``endpoint``, ``namespace``, ``security``, ``username``, timeouts
    and backoff, as ``[live]`` here); ``other_keys``: keys of ``table`` left to the caller. Raises
    TrackingConfigError (or the table's error for a value of the wrong type) naming the table and key."""
    if "endpoint" not in table.values:
        raise TrackingConfigError(f"{table.where}: needs 'endpoint' (an opc.tcp:// URL)")
    endpoint = _build(Endpoint, table, {"url": "endpoint"}, other_keys)
    if not endpoint.url.startswith("opc.tcp://"):
        raise TrackingConfigError(f"{table.where}: endpoint must start with opc.tcp://, got {endpoint.url!r}")
    security = ClientSecurity(endpoint.security, endpoint.username, endpoint.password_env or PASSWORD_VARIABLE)
    try:
        security.check()  # a missing password is a configuration error, not a connection to retry
    except SecurityError as exc:
        raise TrackingConfigError(f"{table.where}: {exc}") from None
    return endpoint


def load_tracking_config(path: str | Path) -> TrackingConfig:
    """Read a tracking TOML file; raise TrackingConfigError naming the file and what is wrong."""
    path = file_path(str(path), Path.cwd(), TrackingConfigError, "tracking file")
    data = Table(read_toml(path, TrackingConfigError, "tracking file"), str(path), TrackingConfigError)
    data.check_keys({"tracking", "thresholds", "live", "twin", "pairs", "after_hours"})
    tracking = data.table("tracking")
    options = _options(tracking)
    thresholds_table = data.table("thresholds")
    thresholds = {"step": _build(Thresholds, thresholds_table, tables=GRANULARITIES[1:])}
    for granularity in GRANULARITIES[1:]:
        if granularity in thresholds_table.values:
            thresholds[granularity] = _build(Thresholds, thresholds_table.table(granularity))
    pairs = [_build(Pair, entry) for entry in data.tables("pairs")]
    if not pairs:
        raise TrackingConfigError(f"{path}: no [[pairs]] listed")
    if len({p.name for p in pairs}) != len(pairs):
        raise TrackingConfigError(f"{path}: pair names must be unique")
    anomaly_db = file_path(options.pop("anomaly_db", "tracking.sqlite"), path.parent, TrackingConfigError,
                           f"{tracking.where}: anomaly_db")
    after_hours = (read_after_hours(data.table("after_hours"), pairs, Path(path).parent)
                   if "after_hours" in data.values else None)
    return TrackingConfig(
        live=_endpoint(data, "live"), twin=_endpoint(data, "twin"), pairs=tuple(pairs),
        thresholds=thresholds, anomaly_db=anomaly_db, after_hours=after_hours, **options)


AFTER_HOURS_KEYS = {"warning_kw": "float", "alert_kw": "float", "window_steps": "int", "clear_steps": "int"}


def read_after_hours(table: Table, pairs: list[Pair], base: Path = Path(".")) -> AfterHoursRule:
    """The ``[after_hours]`` table: thresholds (defaults of ``AfterHoursRule``), the pairs it watches (names of
    ``pairs``; every pair when absent) and the building's occupied hours (``after_hours_occupancy``)."""
    table.check_keys([*AFTER_HOURS_KEYS, "pairs", "occupancy", "tagmap"])
    occupancy = after_hours_occupancy(table, base)
    watched = table.array("pairs", [])
    names = {p.name for p in pairs}
    unknown = [name for name in watched if not isinstance(name, str) or name not in names]
    if unknown:
        raise TrackingConfigError(f"{table.where}: 'pairs' names no tracked pair: {unknown!r} (pairs: {sorted(names)})")
    numbers = {key: _setting(table, key, kind) for key, kind in AFTER_HOURS_KEYS.items() if key in table.values}
    try:
        return AfterHoursRule(occupancy, pairs=tuple(watched), **numbers)
    except ValueError as exc:
        raise TrackingConfigError(f"{table.where}: {exc}") from None


def after_hours_occupancy(table: Table, base: Path) -> Occupancy:
    """The occupied hours of ``[after_hours]``: its ``[after_hours.occupancy]`` table (``bridge.comfort``), or
    ``tagmap``, a tag map file (relative to ``base``) whose ``[occupancy]`` they are: one or the other."""
    if ("occupancy" in table.values) == ("tagmap" in table.values):
        raise TrackingConfigError(f"{table.where}: needs an [after_hours.occupancy] table or 'tagmap' (a tag map "
                                  "file with an [occupancy] table): the occupied hours, given once")
    if "occupancy" in table.values:
        return read_occupancy(table.table("occupancy"))
    path = file_path(table.values["tagmap"], base, TrackingConfigError, f"{table.where}: tagmap")
    try:
        occupancy = load_tagmap(path).occupancy
    except TagMapError as exc:
        raise TrackingConfigError(f"{table.where}: tagmap: {exc}") from None
    if occupancy is None:
        raise TrackingConfigError(f"{table.where}: tagmap {path} has no [occupancy] table")
    return occupancy


TRACKING_KEYS = {"anomaly_db": "str", "stale_after_s": "float", "pair_timeout_s": "float", "max_gap_s": "float",
                 "resample": "str", "calibration_window_h": "int", "calibration_min_hours": "int",
                 "calibration_min_coverage_pct": "float", "spin_up_h": "float"}
CALIBRATION_KEYS = ("calibration_window_h", "calibration_min_hours", "calibration_min_coverage_pct")


def _options(tracking: Table) -> dict:
    """The [tracking] table, checked: value types, resample method, positive durations, calibration window."""
    tracking.check_keys(TRACKING_KEYS)
    options = {key: _setting(tracking, key, TRACKING_KEYS[key]) for key in tracking.values}
    where = tracking.where
    if options.get("resample", "mean") not in ("mean", "last"):
        raise TrackingConfigError(f"{where}: resample must be 'mean' or 'last', got {options['resample']!r}")
    for key in ("stale_after_s", "pair_timeout_s", "max_gap_s"):
        if key in options and not options[key] > 0:
            raise TrackingConfigError(f"{where}: {key} must be positive, got {options[key]:g}")
    if options.get("spin_up_h", 0.0) < 0:
        raise TrackingConfigError(f"{where}: spin_up_h must be a number of hours >= 0, got {options['spin_up_h']:g}")
    from bridge.tracking.calibration import RollingCalibration  # pandas: not at the bridge's start-up

    try:
        RollingCalibration("check", *(options.get(key, getattr(TrackingConfig, key)) for key in CALIBRATION_KEYS))
    except ValueError as exc:
        raise TrackingConfigError(f"{where}: {exc}") from None
    return options
