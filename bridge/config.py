"""The one configuration object of a bridge run, read from a building or campus TOML file.

A file describes a campus of one or more buildings (see ``sims/*.toml`` and docs/configuration.md).
All buildings of a campus share the run period and timestep: lockstep needs equal step counts.
Paths are relative to the file. ``model = "ref:large_office"`` names a DOE reference building
and ``weather = "ref:usa_il_chicago"`` a TMY3 file, both shipped with ``pyenergyplus-lbnl``.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from bridge.epw import WeatherError, check_epw, time_zone_hours
from bridge.errors import TwinbridgeError
from bridge.live.config import LiveConfig, live_config
from bridge.names import building_name_problem, first_repeat
from bridge.protocol import CLOCK_MODES, ENGINE_KINDS
from bridge.security.settings import SERVER_KEYS, ServerSecurity, server_security
from bridge.security.users import SecurityError
from bridge.tagmap import TagMap, load_tagmap
from bridge.tomlfile import Table, file_path, read_toml

TABLES = ("campus", "server", "run", "buildings", "kpi", "tracking")
RUN_KEYS = ("start", "end", "year", "timesteps_per_hour", "clock", "speed", "catch_up", "lockstep_timeout_s",
            "engine_start_timeout_s", "engine_step_timeout_s", "run_dir", "historian", "start_time", "realtime_years",
            "historian_rotate", "historian_keep_days")
HISTORIAN_ROTATIONS = ("", "daily", "monthly")
BUILDING_KEYS = ("name", "model", "weather", "tagmap", "engine", "twin_model", "num_cpus", "memory_mb", "live")
CAMPUS_KEYS = ("name", "executor", "ray_address", "num_cpus", "memory_mb", "max_restarts", "replay_timeout_s")
EXECUTORS = ("local", "ray")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ConfigError(TwinbridgeError, ValueError):
    """A campus or building file that cannot be used; the message names file and key."""


@dataclass(frozen=True)
class RunPeriod:
    start: dt.date
    end: dt.date  # inclusive, as in an EnergyPlus RunPeriod
    timesteps_per_hour: int = 6
    open_ended: bool = False  # a realtime run's period of years: engines keep no per-step state, write no output files

    @property
    def step_s(self) -> float:
        return 3600.0 / self.timesteps_per_hour

    @property
    def steps(self) -> int:
        """Zone timesteps EnergyPlus exchanges over the period."""
        return ((self.end - self.start).days + 1) * 24 * self.timesteps_per_hour

    def time_of(self, sim_time_s: float) -> dt.datetime:
        """Calendar time of an ExternalInterface simulation time (seconds since the period start)."""
        return dt.datetime.combine(self.start, dt.time()) + dt.timedelta(seconds=sim_time_s)


@dataclass(frozen=True)
class BuildingConfig:
    name: str
    model: Path
    weather: Path
    tagmap: TagMap
    engine: str = "energyplus"  # ExternalInterface; "energyplus-api" in-process; "twin" (see bridge.twin)
    twin_model: Path | None = None
    num_cpus: float | None = None  # Ray executor: CPUs its actor needs; None: the campus default
    memory_mb: float | None = None  # Ray executor: memory its actor needs (MB); None: the campus default
    live: LiveConfig | None = None  # [buildings.live]: inputs mirrored from the live building (docs/live.md)


@dataclass(frozen=True)
class ExecutorConfig:
    """Where the buildings' engines run (``[campus] executor``, docs/scale.md): ``local``, in and beside
    the bridge process, or ``ray``, each in a Ray actor of the cluster at ``ray_address`` (empty: a
    local Ray started for the run). Resource needs are per building (defaults here, overridable in
    ``[[buildings]]``); a dead actor is relaunched and replayed at most ``max_restarts`` times per run,
    each time within ``replay_timeout_s`` seconds, else its building faults."""

    kind: str = "local"
    ray_address: str = ""
    num_cpus: float = 1.0
    memory_mb: float = 300.0
    max_restarts: int = 3
    replay_timeout_s: float = 600.0

    def resources(self, building: BuildingConfig) -> tuple[float, float]:
        """(CPUs, memory in MB) that ``building``'s actor declares."""
        return (self.num_cpus if building.num_cpus is None else building.num_cpus,
                self.memory_mb if building.memory_mb is None else building.memory_mb)


@dataclass(frozen=True)
class KpiConfig:
    """Tariff and grid emission factor of the run KPIs (``[kpi]``; see docs/kpis.md)."""

    price_usd_per_kwh: float = 0.12
    price_periods: tuple[tuple[float, float, float], ...] = ()  # (start h, end h, $/kWh) on weekdays
    emissions_kgco2_per_kwh: float = 0.40
    gas_price_usd_per_kwh: float = 0.024  # BOPTEST's KPIs price every fuel (bridge.kpi.DEFAULT_GAS_PRICE_USD_PER_KWH)
    gas_emissions_kgco2_per_kwh: float = 0.18108


@dataclass(frozen=True)
class CampusConfig:
    name: str
    buildings: tuple[BuildingConfig, ...]
    period: RunPeriod
    endpoint: str = "opc.tcp://127.0.0.1:4840"
    clock: str = "fast"
    speed: float = 60.0  # paced mode: simulated seconds per wall second
    catch_up: bool = False  # paced mode: after a step overran its wall slot, run back to back until on schedule
    lockstep_timeout_s: float = 10.0
    engine_start_timeout_s: float = 300.0
    engine_step_timeout_s: float = 60.0
    run_dir: Path = field(default_factory=lambda: Path("runs"))
    historian: bool = True
    historian_rotate: str = ""  # "daily" or "monthly": a new historian file per day or month of simulated time
    historian_keep_days: float = 0.0  # with rotation: delete files older than this (simulated days); 0 keeps all
    start_time: dt.datetime | None = None  # realtime: first step's time (naive: the building's clock); None: now
    realtime_years: int = 20  # realtime: length of the EnergyPlus run period
    kpi: "KpiConfig" = field(default_factory=lambda: KpiConfig())
    tracking: tuple[tuple[str, Path], ...] = ()  # (building, tracking file): docs/tracking.md
    security: ServerSecurity = field(default_factory=ServerSecurity)  # [server] security: docs/security.md
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    path: str = ""

    def with_overrides(self, **changes) -> "CampusConfig":
        """A copy with some fields changed (CLI options); checked like the file itself."""
        changed = replace(self, **{k: v for k, v in changes.items() if v is not None})
        _check_campus(changed)
        return changed


def cache_dir() -> Path:
    """Where derived files are kept between runs: ``$TWINBRIDGE_CACHE``, else ``~/.cache/twinbridge``."""
    return Path(os.environ.get("TWINBRIDGE_CACHE", Path.home() / ".cache" / "twinbridge"))


def reference_model(name: str) -> Path:
    from pyenergyplus import dataset

    if name not in dataset.ref_models:
        raise ConfigError(f"unknown reference model {name!r}; known: {sorted(dataset.ref_models)}")
    return Path(dataset.ref_models[name])


def reference_weather(name: str) -> Path:
    from pyenergyplus import dataset

    if name not in dataset.weather_files:
        raise ConfigError(f"unknown reference weather {name!r}; known: {sorted(dataset.weather_files)}")
    return Path(dataset.weather_files[name])


def resolve_file(value: str, base: Path, lookup, where: str) -> Path:
    """A file named in a configuration: ``ref:<name>`` through ``lookup`` (reference_model,
    reference_weather), else a path relative to ``base`` that must exist (ConfigError naming ``where``)."""
    if value.startswith("ref:") and lookup is not None:
        try:
            return lookup(value[4:])
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    path = file_path(value, base, ConfigError, where)
    if not path.is_file():
        raise ConfigError(f"{where}: file not found: {path}")
    return path


def month_day(value: str, year: int, where: str) -> dt.date:
    """The date of an 'MM-DD' text in ``year``; ConfigError naming ``where`` otherwise."""
    try:
        month, day = (int(part) for part in value.split("-"))
        return dt.date(year, month, day)
    except ValueError:
        raise ConfigError(f"{where}: expected a date as 'MM-DD', got {value!r}") from None


def load_config(path: str | Path) -> CampusConfig:
    """Read a building or campus file; raise ConfigError (or TagMapError) naming what is wrong."""
    path = file_path(str(path), Path.cwd(), ConfigError, "campus file")
    data = Table(read_toml(path, ConfigError, "campus file"), str(path), ConfigError)
    data.check_keys(TABLES)
    campus, run, server = data.table("campus"), data.table("run"), data.table("server")
    campus.check_keys(CAMPUS_KEYS)
    run.check_keys(RUN_KEYS)
    base = path.parent
    config = CampusConfig(
        name=campus.text("name", path.stem.title().replace("_", "")),
        buildings=tuple(_building(entry, base) for entry in data.tables("buildings")),
        period=_period(run),
        endpoint=server.text("endpoint", "opc.tcp://127.0.0.1:4840"),
        clock=run.text("clock", "fast"),
        speed=run.number("speed", 60.0),
        catch_up=run.flag("catch_up", False),
        lockstep_timeout_s=run.number("lockstep_timeout_s", 10.0),
        engine_start_timeout_s=run.number("engine_start_timeout_s", 300.0),
        engine_step_timeout_s=run.number("engine_step_timeout_s", 60.0),
        run_dir=(base / run.text("run_dir", "../runs")).resolve(),
        historian=run.flag("historian", True),
        historian_rotate=run.text("historian_rotate", ""),
        historian_keep_days=run.number("historian_keep_days", 0.0),
        start_time=_start_time(run),
        realtime_years=run.integer("realtime_years", 20),
        kpi=_kpi(data.table("kpi")),
        tracking=tuple(_tracking(entry, base) for entry in data.tables("tracking")),
        security=_security(server, base),
        executor=_executor(campus),
        path=str(path),
    )
    _check_campus(config)
    return config


def _period(run: Table) -> RunPeriod:
    year = run.integer("year", 2025)
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise ConfigError(f"{run.where}: 'year' must be a year, got {year}")
    return RunPeriod(start=month_day(run.text("start", "01-01"), year, f"{run.where} start"),
                     end=month_day(run.text("end", "01-03"), year, f"{run.where} end"),
                     timesteps_per_hour=run.integer("timesteps_per_hour", 6))


def _start_time(run: Table) -> dt.datetime | None:
    """``[run] start_time``: a TOML date-time or an ISO 8601 text; without an offset it is the building's
    local clock time (daylight saving included)."""
    value = run.values.get("start_time")
    if value is None or isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(run.text("start_time"))
    except ValueError:
        raise ConfigError(f"{run.where}: 'start_time' must be an ISO date-time like 2025-12-31T23:00, "
                          f"got {value!r}") from None


def _building(entry: Table, base: Path) -> BuildingConfig:
    entry.check_keys(BUILDING_KEYS)
    twin_model = entry.text("twin_model", "")
    weather = resolve_file(entry.text("weather", "ref:usa_il_chicago"), base, reference_weather, entry.where)
    try:
        check_epw(weather)  # EnergyPlus itself would spin on a wrong file for minutes, then blame the model
    except WeatherError as exc:
        raise ConfigError(f"{entry.where}: weather: {exc}") from None
    tagmap = load_tagmap(resolve_file(entry.text("tagmap"), base, None, entry.where))
    return BuildingConfig(
        name=entry.text("name"),
        model=resolve_file(entry.text("model", "ref:small_office"), base, reference_model, entry.where),
        weather=weather,
        tagmap=tagmap,
        engine=entry.text("engine", "energyplus"),
        twin_model=resolve_file(twin_model, base, None, entry.where) if twin_model else None,
        num_cpus=entry.number("num_cpus", 0.0) if "num_cpus" in entry.values else None,
        memory_mb=entry.number("memory_mb", 0.0) if "memory_mb" in entry.values else None,
        live=live_config(entry.table("live"), tagmap) if "live" in entry.values else None,
    )


def _executor(campus: Table) -> ExecutorConfig:
    defaults = ExecutorConfig()
    return ExecutorConfig(kind=campus.text("executor", defaults.kind),
                          ray_address=campus.text("ray_address", defaults.ray_address),
                          num_cpus=campus.number("num_cpus", defaults.num_cpus),
                          memory_mb=campus.number("memory_mb", defaults.memory_mb),
                          max_restarts=campus.integer("max_restarts", defaults.max_restarts),
                          replay_timeout_s=campus.number("replay_timeout_s", defaults.replay_timeout_s))


def ray_installed() -> bool:
    """Whether the optional Ray extra is importable (without importing it: that takes a second)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except ValueError:  # sys.modules["ray"] is None: import blocked
        return False


def _tracking(entry: Table, base: Path) -> tuple[str, Path]:
    if set(entry.values) != {"building", "config"}:
        raise ConfigError(f"{entry.where}: a [[tracking]] entry needs exactly 'building' and 'config'")
    return entry.text("building"), resolve_file(entry.text("config"), base, None, entry.where)


def _security(server: Table, base: Path) -> ServerSecurity:
    server.check_keys(SERVER_KEYS | {"endpoint"})
    try:
        return server_security(server, base)
    except SecurityError as exc:
        raise ConfigError(str(exc)) from None


def _kpi(section: Table) -> KpiConfig:
    section.check_keys({"price_usd_per_kwh", "price_periods", "emissions_kgco2_per_kwh", "gas_price_usd_per_kwh",
                        "gas_emissions_kgco2_per_kwh"})
    try:
        periods = tuple((float(a), float(b), float(rate)) for a, b, rate in section.values.get("price_periods", []))
    except (TypeError, ValueError):
        raise ConfigError(f"{section.where}: prices and factors must be numbers; price_periods a list of "
                          "[start_hour, end_hour, usd_per_kwh]") from None
    default = KpiConfig()
    return KpiConfig(section.number("price_usd_per_kwh", default.price_usd_per_kwh), periods,
                     section.number("emissions_kgco2_per_kwh", default.emissions_kgco2_per_kwh),
                     section.number("gas_price_usd_per_kwh", default.gas_price_usd_per_kwh),
                     section.number("gas_emissions_kgco2_per_kwh", default.gas_emissions_kgco2_per_kwh))


def endpoint_problem(endpoint: str) -> str | None:
    """What keeps ``endpoint`` from being an OPC UA endpoint a server can bind (opc.tcp, a host, a port
    1-65535), or None."""
    try:
        url = urlsplit(endpoint)
        port = url.port
    except ValueError as exc:
        return f"is not an opc.tcp://host:port URL ({exc})"
    if url.scheme != "opc.tcp":
        return "must start with opc.tcp:// (OPC UA binary over TCP)"
    if not url.hostname:
        return "names no host"
    if not port:
        return "needs a port 1-65535 after the host (opc.tcp://host:4840)"
    return None


def _check_campus(config: CampusConfig) -> None:
    where = config.path or "campus"
    problem = endpoint_problem(config.endpoint)
    if problem:
        raise ConfigError(f"{where}: [server] endpoint {config.endpoint!r} {problem}")
    if not config.buildings:
        raise ConfigError(f"{where}: no [[buildings]] listed")
    names = [b.name for b in config.buildings]
    for name in [config.name, *names]:
        if not NAME.match(name):
            raise ConfigError(f"{where}: name {name!r} must be letters, digits and '_' (it becomes an OPC UA path)")
    _check_building_names(names, where)
    if config.clock not in CLOCK_MODES:
        raise ConfigError(f"{where}: [run] clock must be one of {CLOCK_MODES}, got {config.clock!r}")
    if config.period.end < config.period.start:
        raise ConfigError(f"{where}: [run] end is before start (a run period stays within one year)")
    steps = config.period.timesteps_per_hour
    if not (1 <= steps <= 60 and 60 % steps == 0):
        raise ConfigError(f"{where}: [run] timesteps_per_hour must divide 60 (EnergyPlus's Timestep), got {steps}")
    for key in ("speed", "lockstep_timeout_s", "engine_start_timeout_s", "engine_step_timeout_s"):
        if not 0 < getattr(config, key) < math.inf:
            raise ConfigError(f"{where}: [run] {key} must be a positive finite number, got {getattr(config, key)}")
    _check_realtime(config, where)
    for building_name, _ in config.tracking:
        if building_name not in names:
            raise ConfigError(f"{where}: [[tracking]] names building {building_name!r}, not one of {names}")
    for building in config.buildings:
        if building.engine not in ENGINE_KINDS:
            raise ConfigError(f"{where}: building {building.name}: engine must be one of {ENGINE_KINDS}, "
                              f"got {building.engine!r}")
        if building.engine == "twin" and building.twin_model is None:
            raise ConfigError(f"{where}: building {building.name}: engine 'twin' needs 'twin_model'")
    _check_executor(config.executor, config.buildings, where)
    in_process = [b.name for b in config.buildings if b.engine == "energyplus-api"]
    if len(in_process) > 1 and config.executor.kind == "local":
        raise ConfigError(f"{where}: only one building of a campus can use engine 'energyplus-api', got {in_process}: "
                          "EnergyPlus simulations in threads of one process are not independent (docs/bridge.md); "
                          "use engine 'energyplus' for the others")


def _check_realtime(config: CampusConfig, where: str) -> None:
    """Realtime settings and historian rotation; a realtime campus's buildings share one time zone (their
    EnergyPlus runs keep local standard time, which must be one for all to step together)."""
    if config.historian_rotate not in HISTORIAN_ROTATIONS:
        raise ConfigError(f"{where}: [run] historian_rotate must be one of {HISTORIAN_ROTATIONS[1:]} (or absent), "
                          f"got {config.historian_rotate!r}")
    if not 0 <= config.historian_keep_days < math.inf:
        raise ConfigError(f"{where}: [run] historian_keep_days must be >= 0, got {config.historian_keep_days}")
    if config.historian_keep_days and not config.historian_rotate:
        raise ConfigError(f"{where}: [run] historian_keep_days needs historian_rotate (whole files are deleted)")
    if not 1 <= config.realtime_years <= 100:
        raise ConfigError(f"{where}: [run] realtime_years must be 1..100, got {config.realtime_years}")
    if config.clock != "realtime":
        return
    zones = {b.name: time_zone_hours(b.weather) for b in config.buildings}
    if len(set(zones.values())) > 1:
        raise ConfigError(f"{where}: clock 'realtime' needs the buildings' weather files in one time zone, got "
                          + ", ".join(f"{name} UTC{hours:+g}" for name, hours in zones.items()))


def _check_executor(executor: ExecutorConfig, buildings: Iterable[BuildingConfig], where: str) -> None:
    if executor.kind not in EXECUTORS:
        raise ConfigError(f"{where}: [campus] executor must be one of {EXECUTORS}, got {executor.kind!r}")
    if executor.kind == "ray" and not ray_installed():
        raise ConfigError(f"{where}: [campus] executor \"ray\" needs Ray: pip install -e .[ray]")
    if executor.max_restarts < 0 or not 0 < executor.replay_timeout_s < math.inf:
        raise ConfigError(f"{where}: [campus] max_restarts must be >= 0 and replay_timeout_s positive and finite")
    for building in buildings:
        cpus, memory_mb = executor.resources(building)
        if not (0 <= cpus < math.inf and 0 <= memory_mb < math.inf):
            raise ConfigError(f"{where}: building {building.name}: num_cpus and memory_mb must be finite "
                              f"numbers >= 0, got {cpus} and {memory_mb}")


def _check_building_names(names: list[str], where: str) -> None:
    """Names the bridge uses itself (bridge/names.py) and names that differ only in case are refused."""
    for i, name in enumerate(names):
        problem = building_name_problem(name)
        if problem:
            raise ConfigError(f"{where}: buildings[{i}]: {problem}")
    repeat = first_repeat(names)
    if repeat:
        earlier, later = repeat
        raise ConfigError(f"{where}: buildings[{later}]: name {names[later]!r} is already used by buildings[{earlier}] "
                          f"({names[earlier]!r}); building names must differ in more than case")
