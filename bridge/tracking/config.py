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
from dataclasses import dataclass
from pathlib import Path

from bridge.security.settings import PASSWORD_VARIABLE, ClientSecurity
from bridge.security.users import SecurityError
from bridge.tomlfile import read_toml
from bridge.tracking.deviation import GRANULARITIES, Thresholds


class TrackingConfigError(ValueError):
    """A tracking file that cannot be used; the message names the file and key."""


@dataclass(frozen=True)
class Endpoint:
    """One OPC UA server to subscribe to."""

    url: str
    namespace: str = "urn:twinbridge"
    security: str = ""
    username: str = ""
    password_env: str = ""  # name of the environment variable holding the password
    connect_timeout_s: float = 10.0
    request_timeout_s: float = 4.0
    publishing_interval_ms: float = 100.0
    queue_size: int = 1000
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0


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


def _build(cls, values: dict, where: str, renames: dict[str, str] | None = None):
    renames = renames or {}
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        target = renames.get(key, key)
        if target not in names or isinstance(value, dict):
            continue
        kwargs[target] = value
    unknown = set(values) - names - set(renames) - {k for k, v in values.items() if isinstance(v, dict)}
    if unknown:
        raise TrackingConfigError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
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
    path = Path(path).resolve()
    data = read_toml(path, TrackingConfigError)
    where = str(path)
    tracking = _table(data, "tracking", where)
    thresholds_table = _table(data, "thresholds", where)
    thresholds = {"step": _build(Thresholds, thresholds_table, f"{where}: [thresholds]")}
    for granularity in GRANULARITIES[1:]:
        if granularity in thresholds_table:
            thresholds[granularity] = _build(Thresholds, thresholds_table[granularity],
                                             f"{where}: [thresholds.{granularity}]")
    pairs = []
    for i, entry in enumerate(data.get("pairs", [])):
        for key in ("name", "twin", "live"):
            if key not in entry:
                raise TrackingConfigError(f"{where}: pairs[{i}] missing {key!r}")
        pairs.append(_build(Pair, entry, f"{where}: pairs[{i}]"))
    if not pairs:
        raise TrackingConfigError(f"{where}: no [[pairs]] listed")
    if len({p.name for p in pairs}) != len(pairs):
        raise TrackingConfigError(f"{where}: pair names must be unique")
    options = {k: v for k, v in tracking.items() if k != "anomaly_db"}
    config = TrackingConfig(
        live=_endpoint(data, "live", where), twin=_endpoint(data, "twin", where), pairs=tuple(pairs),
        thresholds=thresholds,
        anomaly_db=(path.parent / str(tracking.get("anomaly_db", "tracking.sqlite"))).resolve(),
        **_check_options(options, where),
    )
    return config


def _check_options(options: dict, where: str) -> dict:
    allowed = {"stale_after_s", "pair_timeout_s", "max_gap_s", "resample"}
    unknown = set(options) - allowed
    if unknown:
        raise TrackingConfigError(f"{where}: [tracking] unknown keys {sorted(unknown)}")
    if options.get("resample", "mean") not in ("mean", "last"):
        raise TrackingConfigError(f"{where}: [tracking] resample must be 'mean' or 'last'")
    for key in allowed - {"resample"}:
        if key in options and not float(options[key]) > 0:
            raise TrackingConfigError(f"{where}: [tracking] {key} must be positive")
    return options
