"""The one configuration object of a bridge run, read from a building or campus TOML file.

A file describes a campus of one or more buildings (see ``sims/*.toml`` and docs/configuration.md).
All buildings of a campus share the run period and timestep: lockstep needs equal step counts.
Paths are relative to the file. ``model = "ref:large_office"`` names a DOE reference building
and ``weather = "ref:usa_il_chicago"`` a TMY3 file, both shipped with ``pyenergyplus-lbnl``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from bridge.names import building_name_problem, first_repeat
from bridge.security.settings import SERVER_KEYS, ServerSecurity, server_security
from bridge.security.users import SecurityError
from bridge.tagmap import TagMap, load_tagmap
from bridge.tomlfile import read_toml

CLOCK_MODES = ("lockstep", "paced", "fast")
ENGINES = ("energyplus", "energyplus-api", "twin")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ConfigError(ValueError):
    """A campus or building file that cannot be used; the message names file and key."""


@dataclass(frozen=True)
class RunPeriod:
    start: dt.date
    end: dt.date  # inclusive, as in an EnergyPlus RunPeriod
    timesteps_per_hour: int = 6

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


@dataclass(frozen=True)
class KpiConfig:
    """Tariff and grid emission factor of the run KPIs (``[kpi]``; see docs/kpis.md)."""

    price_usd_per_kwh: float = 0.12
    price_periods: tuple[tuple[float, float, float], ...] = ()  # (start h, end h, $/kWh) on weekdays
    emissions_kgco2_per_kwh: float = 0.40


@dataclass(frozen=True)
class CampusConfig:
    name: str
    buildings: tuple[BuildingConfig, ...]
    period: RunPeriod
    endpoint: str = "opc.tcp://127.0.0.1:4840"
    clock: str = "fast"
    speed: float = 60.0  # paced mode: simulated seconds per wall second
    lockstep_timeout_s: float = 10.0
    engine_start_timeout_s: float = 300.0
    engine_step_timeout_s: float = 60.0
    run_dir: Path = field(default_factory=lambda: Path("runs"))
    historian: bool = True
    kpi: "KpiConfig" = field(default_factory=lambda: KpiConfig())
    tracking: tuple[tuple[str, Path], ...] = ()  # (building, tracking file): docs/tracking.md
    security: ServerSecurity = field(default_factory=ServerSecurity)  # [server] security: docs/security.md
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
    if value.startswith("ref:"):
        return lookup(value[4:])
    path = (base / value).resolve()
    if not path.is_file():
        raise ConfigError(f"{where}: file not found: {path}")
    return path


def _date(value: object, year: int, where: str) -> dt.date:
    try:
        month, day = (int(part) for part in str(value).split("-"))
        return dt.date(year, month, day)
    except ValueError:
        raise ConfigError(f"{where}: expected a date as 'MM-DD', got {value!r}") from None


def load_config(path: str | Path) -> CampusConfig:
    """Read a building or campus file; raise ConfigError (or TagMapError) naming what is wrong."""
    path = Path(path).resolve()
    data = read_toml(path, ConfigError)
    base = path.parent
    campus = data.get("campus", {})
    run = data.get("run", {})
    server = data.get("server", {})
    year = int(run.get("year", 2025))
    period = RunPeriod(
        start=_date(run.get("start", "01-01"), year, f"{path}: [run] start"),
        end=_date(run.get("end", "01-03"), year, f"{path}: [run] end"),
        timesteps_per_hour=int(run.get("timesteps_per_hour", 6)),
    )
    buildings = []
    for i, entry in enumerate(data.get("buildings", [])):
        where = f"{path}: buildings[{i}]"
        for key in ("name", "tagmap"):
            if key not in entry:
                raise ConfigError(f"{where}: missing {key!r}")
        engine = entry.get("engine", "energyplus")
        buildings.append(BuildingConfig(
            name=str(entry["name"]),
            model=resolve_file(str(entry.get("model", "ref:small_office")), base, reference_model, where),
            weather=resolve_file(str(entry.get("weather", "ref:usa_il_chicago")), base, reference_weather, where),
            tagmap=load_tagmap(resolve_file(str(entry["tagmap"]), base, None, where)),
            engine=engine,
            twin_model=resolve_file(str(entry["twin_model"]), base, None, where) if "twin_model" in entry else None,
        ))
    config = CampusConfig(
        name=str(campus.get("name", path.stem.title().replace("_", ""))),
        buildings=tuple(buildings),
        period=period,
        endpoint=str(server.get("endpoint", "opc.tcp://127.0.0.1:4840")),
        clock=str(run.get("clock", "fast")),
        speed=float(run.get("speed", 60.0)),
        lockstep_timeout_s=float(run.get("lockstep_timeout_s", 10.0)),
        engine_start_timeout_s=float(run.get("engine_start_timeout_s", 300.0)),
        engine_step_timeout_s=float(run.get("engine_step_timeout_s", 60.0)),
        run_dir=(base / str(run.get("run_dir", "../runs"))).resolve(),
        historian=bool(run.get("historian", True)),
        kpi=_kpi(data.get("kpi", {}), f"{path}: [kpi]"),
        tracking=tuple(_tracking(entry, base, f"{path}: tracking[{i}]") for i, entry in enumerate(data.get("tracking", []))),
        security=_security(server, base, f"{path}: [server]"),
        path=str(path),
    )
    _check_campus(config)
    return config


def _tracking(entry: dict, base: Path, where: str) -> tuple[str, Path]:
    if set(entry) != {"building", "config"}:
        raise ConfigError(f"{where}: a [[tracking]] entry needs exactly 'building' and 'config'")
    return str(entry["building"]), resolve_file(str(entry["config"]), base, None, where)


def _security(section: dict, base: Path, where: str) -> ServerSecurity:
    unknown = set(section) - SERVER_KEYS - {"endpoint"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        return server_security(section, base, where)
    except SecurityError as exc:
        raise ConfigError(str(exc)) from None


def _kpi(section: dict, where: str) -> KpiConfig:
    unknown = set(section) - {"price_usd_per_kwh", "price_periods", "emissions_kgco2_per_kwh"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        periods = tuple((float(a), float(b), float(rate)) for a, b, rate in section.get("price_periods", []))
        return KpiConfig(float(section.get("price_usd_per_kwh", 0.12)), periods,
                         float(section.get("emissions_kgco2_per_kwh", 0.40)))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: prices and factors must be numbers; price_periods a list of "
                          "[start_hour, end_hour, usd_per_kwh]") from None


def _check_campus(config: CampusConfig) -> None:
    where = config.path or "campus"
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
    if 60 % (60 // max(config.period.timesteps_per_hour, 1)) or not 1 <= config.period.timesteps_per_hour <= 60:
        raise ConfigError(f"{where}: [run] timesteps_per_hour must divide 60, got {config.period.timesteps_per_hour}")
    if config.speed <= 0 or config.lockstep_timeout_s <= 0:
        raise ConfigError(f"{where}: [run] speed and lockstep_timeout_s must be positive")
    for building_name, _ in config.tracking:
        if building_name not in names:
            raise ConfigError(f"{where}: [[tracking]] names building {building_name!r}, not one of {names}")
    for building in config.buildings:
        if building.engine not in ENGINES:
            raise ConfigError(f"{where}: building {building.name}: engine must be one of {ENGINES}, "
                              f"got {building.engine!r}")
        if building.engine == "twin" and building.twin_model is None:
            raise ConfigError(f"{where}: building {building.name}: engine 'twin' needs 'twin_model'")
    in_process = [b.name for b in config.buildings if b.engine == "energyplus-api"]
    if len(in_process) > 1:
        raise ConfigError(f"{where}: only one building of a campus can use engine 'energyplus-api', got {in_process}: "
                          "EnergyPlus simulations in threads of one process are not independent (docs/bridge.md); "
                          "use engine 'energyplus' for the others")


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
