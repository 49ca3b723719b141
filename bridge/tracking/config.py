"""The tracking configuration file (TOML): which live tags are compared with which twin tags.

Example (see docs/tracking.md for every key)::

    [tracking]
    anomaly_db = "../runs/tracking.sqlite"   # relative to this file
    stale_after_s = 30          # no live value for this long (wall clock) raises the stale-data alarm
    pair_timeout_s = 10         # wait this long for live data covering a twin step, then count a gap
    max_gap_s = 900             # a live value older than this at a twin step's time is a gap
    resample = "mean"           # live samples within the twin step: "mean", or "last" value

    [thresholds]                # step granularity; [thresholds.hourly] etc. override per granularity
    warning_pct = 5
    alert_pct = 10
    warning_steps = 3
    alert_steps = 3

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

from bridge.errors import TwinbridgeError
from bridge.protocol import NAMESPACE
from bridge.security.settings import PASSWORD_VARIABLE, ClientSecurity
from bridge.security.users import SecurityError
from bridge.tomlfile import file_path, read_toml
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


def _table(data: dict, key: str, where: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise TrackingConfigError(f"{where}: [{key}] must be a table")
    return value


def _unknown(table: dict, known: set[str], where: str) -> None:
    """Refuse a key or table that nothing reads: a typo must not be silently ignored."""
    unknown = sorted(set(table) - known)
    if unknown:
        kind = "table" if isinstance(table[unknown[0]], dict) else "key"
        raise TrackingConfigError(f"{where}: unknown {kind} {unknown[0]!r} (known: {', '.join(sorted(known))})")


KINDS = {"float": ((int, float), "a number"), "int": ((int,), "an integer"), "str": ((str,), "a string")}


def _typed(value, kind: str, where: str, key: str) -> float | int | str:
    """``value`` of a ``float``, ``int`` or ``str`` setting; a quoted number, a table or a bool is an error."""
    types, name = KINDS[kind]
    if isinstance(value, bool) or not isinstance(value, types) or (kind == "float" and not math.isfinite(value)):
        raise TrackingConfigError(f"{where}: {key} must be {name}, got {value!r}")
    return float(value) if kind == "float" else value


def _build(cls, values: dict, where: str, renames: dict[str, str] | None = None):
    renames = renames or {}
    kinds = {f.name: f.type for f in dataclasses.fields(cls)}
    _unknown(values, set(kinds) - set(renames.values()) | set(renames), where)
    kwargs = {renames.get(key, key): _typed(value, kinds[renames.get(key, key)], where, key)
              for key, value in values.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a check of the class (Thresholds: warning below alert)
        raise TrackingConfigError(f"{where}: {exc}") from None


def _endpoint(data: dict, key: str, where: str) -> Endpoint:
    table = _table(data, key, where)
    if "endpoint" not in table:
        raise TrackingConfigError(f"{where}: [{key}] needs 'endpoint' (an opc.tcp:// URL)")
    if not str(table["endpoint"]).startswith("opc.tcp://"):
        raise TrackingConfigError(f"{where}: [{key}] endpoint must start with opc.tcp://, got {table['endpoint']!r}")
    endpoint = _build(Endpoint, table, f"{where}: [{key}]", {"endpoint": "url"})
    security = ClientSecurity(endpoint.security, endpoint.username, endpoint.password_env or PASSWORD_VARIABLE)
    try:
        security.check()  # a missing password is a configuration error, not a connection to retry
    except SecurityError as exc:
        raise TrackingConfigError(f"{where}: [{key}] {exc}") from None
    return endpoint


def load_tracking_config(path: str | Path) -> TrackingConfig:
    """Read a tracking TOML file; raise TrackingConfigError naming the file and what is wrong."""
    path = file_path(str(path), Path.cwd(), TrackingConfigError, "tracking file")
    data = read_toml(path, TrackingConfigError, "tracking file")
    where = str(path)
    _unknown(data, {"tracking", "thresholds", "live", "twin", "pairs"}, where)
    options = _options(_table(data, "tracking", where), f"{where}: [tracking]")
    thresholds_table = _table(data, "thresholds", where)
    tables = {key: value for key, value in thresholds_table.items() if isinstance(value, dict)}
    _unknown(tables, set(GRANULARITIES[1:]), f"{where}: [thresholds]")
    thresholds = {"step": _build(Thresholds, {k: v for k, v in thresholds_table.items() if k not in tables},
                                 f"{where}: [thresholds]")}
    for granularity, table in tables.items():
        thresholds[granularity] = _build(Thresholds, table, f"{where}: [thresholds.{granularity}]")
    pairs = []
    for i, entry in enumerate(data.get("pairs", [])):
        if not isinstance(entry, dict):
            raise TrackingConfigError(f"{where}: pairs must be [[pairs]] tables, got {entry!r}")
        for key in ("name", "twin", "live"):
            if key not in entry:
                raise TrackingConfigError(f"{where}: pairs[{i}] missing {key!r}")
        pairs.append(_build(Pair, entry, f"{where}: pairs[{i}]"))
    if not pairs:
        raise TrackingConfigError(f"{where}: no [[pairs]] listed")
    if len({p.name for p in pairs}) != len(pairs):
        raise TrackingConfigError(f"{where}: pair names must be unique")
    anomaly_db = options.pop("anomaly_db", "tracking.sqlite")
    return TrackingConfig(
        live=_endpoint(data, "live", where), twin=_endpoint(data, "twin", where), pairs=tuple(pairs),
        thresholds=thresholds, anomaly_db=(path.parent / anomaly_db).resolve(), **options)


TRACKING_KEYS = {"anomaly_db": "str", "stale_after_s": "float", "pair_timeout_s": "float", "max_gap_s": "float",
                 "resample": "str"}


def _options(tracking: dict, where: str) -> dict:
    """The [tracking] table, checked: value types, resample method, positive durations."""
    _unknown(tracking, set(TRACKING_KEYS), where)
    options = {key: _typed(value, TRACKING_KEYS[key], where, key) for key, value in tracking.items()}
    if options.get("resample", "mean") not in ("mean", "last"):
        raise TrackingConfigError(f"{where}: resample must be 'mean' or 'last', got {options['resample']!r}")
    for key in ("stale_after_s", "pair_timeout_s", "max_gap_s"):
        if key in options and not options[key] > 0:
            raise TrackingConfigError(f"{where}: {key} must be positive, got {options[key]:g}")
    return options
