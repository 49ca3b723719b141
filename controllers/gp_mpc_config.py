"""The GP-MPC file (controllers/examples/large_office_gp_mpc.toml): its settings (``MpcConfig``), its
demand-response events (``CurtailmentEvent``) and its loader (``load_mpc``). What each setting does:
controllers/gp_mpc.py's docstring and docs/controllers.md."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bridge.config import ConfigError, reference_weather, resolve_file
from bridge.tagmap import TagMap, TagMapError, load_tagmap
from bridge.tomlfile import Table, file_path, read_toml
from bridge.twin.gp import GPModel, TwinModel
from bridge.twin.persist import ModelFileError, check_compatible, load_model
from bridge.twin.weather import WeatherError, weather_series
from controllers.base import ControllerConfigError
from controllers.schedule import Schedule, load_schedule

OBJECTIVES = ("tracking", "energy")
BASELINES = ("twin", "x_of_y", "twin_regression")
SHED_DIRECTIONS = ("up", "down")  # [mpc] shed: the direction a decided input moves to shed power
BASELINE_UPDATES = ("entry", "begin", "end")  # a twin baseline is corrected again at every decision until then


@dataclass(frozen=True)
class CurtailmentEvent:
    """A demand-response request: from ``begin`` to ``end`` (simulation time), ``curtail_kw`` below
    ``baseline`` (one of BASELINES, see controllers/gp_mpc.py)."""

    begin: dt.datetime
    end: dt.datetime
    curtail_kw: float
    baseline: str = "twin"

    def contains(self, time: dt.datetime) -> bool:
        """Whether the timestep ending at ``time`` (simulation time) lies in the event."""
        return self.begin < time <= self.end


@dataclass(frozen=True)
class MpcConfig:
    schedule: Schedule
    twin: TwinModel
    tagmap: TagMap
    weather: Path
    decide: tuple[str, ...]
    bounds: dict[str, tuple[float, float]]
    events: tuple[CurtailmentEvent, ...]
    comfort: dict[str, tuple[float, float]]
    power: str
    objective: str = "tracking"
    horizon: int = 12
    blocks: int = 3
    confidence: float = 0.95
    move_weight: float = 0.1
    outside_weight: float = 0.1
    max_iter: int = 100
    max_seconds: float | None = None  # wall-clock budget of one decision (None: max_iter alone bounds it)
    path: str = ""
    feedback: bool = True  # measured power corrects the predictions every step (controllers/gp_mpc.py)
    feedback_steps: int = 6  # one-step errors averaged into the disturbance estimate
    x_of_y: tuple[int, int] = (10, 10)  # X and Y of the x_of_y baseline
    baseline_update: str = "entry"  # one of BASELINE_UPDATES (controllers/gp_mpc.py)
    # ``model = [file, ...]``: (name as written, twin) of every file after the first (which is ``twin``); their
    # power models join the first's in an ensemble (controllers/gp_mpc.py); () for one file
    ensemble: tuple[tuple[str, TwinModel], ...] = ()
    model_name: str = "model"  # the first file of ``model`` as written (logs name the ensemble's members by it)
    # the optimiser's power prediction: base + response_gain * (prediction - base), the base the rollout under the
    # base schedule: a twin whose response to the setpoints a test event measured too strong (or weak) is scaled
    response_gain: float = 1.0
    # ``shed = { tag = "up" | "down" }``: while an event is in the horizon the decided input only moves from the base
    # schedule's value in that direction (the one that sheds power), whatever the twin's learned response says
    shed: dict[str, str] = field(default_factory=dict)

    def power_members(self) -> list[tuple[str, GPModel]]:
        """(file name, power model) of every twin of ``model``, the first file's first."""
        return [(name, twin.models[self.power]) for name, twin in ((self.model_name, self.twin), *self.ensemble)]


def load_mpc(path: str | Path) -> MpcConfig:
    """Read a GP-MPC file (controllers/examples/large_office_gp_mpc.toml); ControllerConfigError naming file and key."""
    path = Path(path)
    base = path.parent
    file = Table(read_toml(path, ControllerConfigError, "GP-MPC file"), str(path), ControllerConfigError)
    where = file.where
    file.check_keys({"schedule", "model", "tagmap", "weather", "mpc", "events"})
    tagmap_path, schedule_path = (file_path(file.text(key), base, ControllerConfigError, f"{where}: {key}")
                                  for key in ("tagmap", "schedule"))
    names = _model_names(file.values["model"] if "model" in file.values else file.text("model"), f"{where}: model")
    try:
        tagmap = load_tagmap(tagmap_path)
    except TagMapError as exc:
        raise ControllerConfigError(f"{where}: {exc}") from None
    twins = []
    for name in names:
        try:
            twin = load_model(file_path(name, base, ControllerConfigError, f"{where}: model"))
            check_compatible(twin, tagmap, name)
        except ModelFileError as exc:
            raise ControllerConfigError(f"{where}: model {name!r}: {exc}") from None
        twins.append(twin)
    twin = twins[0]
    try:
        weather = resolve_file(file.text("weather", "ref:usa_il_chicago"), base, reference_weather, f"{where}: weather")
    except ConfigError as exc:
        raise ControllerConfigError(str(exc)) from None
    mpc = file.table("mpc")
    mpc.check_keys({"objective", "horizon_steps", "blocks", "decide", "bounds", "comfort", "confidence", "move_weight",
                    "outside_weight", "max_iter", "max_seconds", "power", "feedback", "feedback_steps", "baseline",
                    "x_of_y", "baseline_update", "response_gain", "shed"})
    objective = mpc.text("objective", "tracking")
    if objective not in OBJECTIVES:
        raise ControllerConfigError(f"{where}: [mpc] objective must be one of {OBJECTIVES}, got {objective!r}")
    inputs = {item.tag for item in tagmap.inputs}
    decide = mpc.values.get("decide", [])
    if not isinstance(decide, list) or not decide or not all(isinstance(tag, str) for tag in decide) or set(decide) - inputs:
        raise ControllerConfigError(f"{where}: [mpc] decide must list input tags of {tagmap.name} ({sorted(inputs)}), "
                                    f"got {decide!r}")
    decide = tuple(decide)
    bounds = {tag: _pair(value, f"{where}: [mpc] bounds.{tag}") for tag, value in mpc.table("bounds").values.items()}
    if set(bounds) - set(decide):
        raise ControllerConfigError(f"{where}: [mpc] bounds given for {sorted(set(bounds) - set(decide))}, not decided")
    comfort = {tag: _pair(value, f"{where}: [mpc] comfort.{tag}") for tag, value in mpc.table("comfort").values.items()}
    unmodelled = [tag for tag in comfort if tag not in twin.models]
    power = mpc.text("power", next((o.tag for o in tagmap.outputs if o.role == "electric_power"), ""))
    if unmodelled or power not in twin.models:
        raise ControllerConfigError(f"{where}: the twin {names[0]} models {twin.targets}; it has no model of "
                                    f"{unmodelled or [power]} (comfort tags and the power tag need one)")
    for name, member in zip(names[1:], twins[1:]):
        if power not in member.models:
            raise ControllerConfigError(f"{where}: model {name!r} models {member.targets}; it has no model of "
                                        f"{power!r} (every file of the ensemble needs one)")
    try:
        schedule = load_schedule(schedule_path)
    except ControllerConfigError as exc:
        raise ControllerConfigError(f"{where}: schedule: {exc}") from None
    baseline = _baseline_name(mpc.text("baseline", "twin"), f"{where}: [mpc] baseline")
    events = tuple(_event(entry.values, entry.where, schedule, baseline) for entry in file.tables("events"))
    config = MpcConfig(schedule, twin, tagmap, weather, decide, bounds, events, comfort, power, objective,
                       mpc.integer("horizon_steps", 12), mpc.integer("blocks", 3), mpc.number("confidence", 0.95),
                       mpc.number("move_weight", 0.1), mpc.number("outside_weight", 0.1),
                       mpc.integer("max_iter", 100), _max_seconds(mpc), where, mpc.flag("feedback", True),
                       mpc.integer("feedback_steps", 6), _x_of_y_days(mpc), mpc.text("baseline_update", "entry"),
                       tuple(zip(names[1:], twins[1:])), names[0], mpc.number("response_gain", 1.0),
                       _shed(mpc.table("shed").values, decide, f"{where}: [mpc] shed"))
    if not 1 <= config.blocks <= config.horizon or not 0.5 < config.confidence < 1:
        raise ControllerConfigError(f"{where}: [mpc] need 1 <= blocks <= horizon_steps and 0.5 < confidence < 1")
    if config.baseline_update not in BASELINE_UPDATES:
        raise ControllerConfigError(f"{where}: [mpc] baseline_update must be one of {BASELINE_UPDATES}, "
                                    f"got {config.baseline_update!r}")
    if config.feedback_steps < 1 or config.max_iter < 1:
        raise ControllerConfigError(f"{where}: [mpc] feedback_steps and max_iter must be >= 1")
    if not 0 < config.response_gain <= 2:
        raise ControllerConfigError(f"{where}: [mpc] response_gain must be in (0, 2], got {config.response_gain:g}")
    try:
        weather_series(weather, pd.DatetimeIndex([dt.datetime(2025, 7, 1)]))
    except WeatherError as exc:
        raise ControllerConfigError(f"{where}: weather: {exc}") from None
    return config


def _shed(values: dict, decide: tuple[str, ...], where: str) -> dict[str, str]:
    """``[mpc] shed``: decided input -> "up" or "down"."""
    for tag, direction in values.items():
        if tag not in decide or direction not in SHED_DIRECTIONS:
            raise ControllerConfigError(f"{where}: {tag} = {direction!r}: each key a decided input ({list(decide)}), "
                                        f"each value one of {SHED_DIRECTIONS}")
    return dict(values)


def _model_names(value: object, where: str) -> list[str]:
    """``model``: one twin file, or a list of them (an ensemble of power models, the first file's comfort
    models), each named once."""
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(name, str) and name for name in names) or len(set(names)) < len(names):
        raise ControllerConfigError(f"{where}: expected a twin file or a list of distinct twin files, got {value!r}")
    return names


def _max_seconds(mpc: Table) -> float | None:
    """The optimiser's time limit per decision in seconds (None: no limit)."""
    if "max_seconds" not in mpc.values:
        return None
    value = mpc.number("max_seconds")
    if not 0 < value < float("inf"):
        raise ControllerConfigError(f"{mpc.where}: max_seconds must be a positive number of seconds, got {value!r}")
    return value


def _x_of_y_days(mpc: Table) -> tuple[int, int]:
    """``x_of_y = [X, Y]``: the days averaged and the eligible days looked at (1 <= X <= Y)."""
    value = mpc.values.get("x_of_y", [10, 10])
    if not (isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)
            and 1 <= value[0] <= value[1]):
        raise ControllerConfigError(f"{mpc.where}: x_of_y must be [X, Y], whole numbers with 1 <= X <= Y, "
                                    f"got {value!r}")
    return value[0], value[1]


def _pair(value, where: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ControllerConfigError(f"{where}: expected [low, high], got {value!r}") from None
    if not low < high:
        raise ControllerConfigError(f"{where}: low {low} must be below high {high}")
    return low, high


def _baseline_name(value: object, where: str) -> str:
    if value not in BASELINES:
        raise ControllerConfigError(f"{where} must be one of {BASELINES}, got {value!r}")
    return str(value)


def _event(entry: dict, where: str, schedule: Schedule, baseline: str) -> CurtailmentEvent:
    """An event of the file, its times on the base schedule's clock (``daylight_saving``), kept in
    simulation time; ``baseline`` unless the event names its own."""
    if not {"date", "start", "end", "curtail_kw"} <= set(entry) <= {"date", "start", "end", "curtail_kw", "baseline"}:
        raise ControllerConfigError(f"{where}: needs 'date' (YYYY-MM-DD), 'start', 'end' (HH:MM) and "
                                    f"'curtail_kw', and may name a 'baseline', got {sorted(entry)}")
    baseline = _baseline_name(entry.get("baseline", baseline), f"{where}: baseline")
    try:
        day = dt.date.fromisoformat(str(entry["date"]))
        begin, end = (dt.datetime.combine(day, dt.time.fromisoformat(str(entry[key]))) for key in ("start", "end"))
        event = CurtailmentEvent(schedule.simulation_time(begin), schedule.simulation_time(end), float(entry["curtail_kw"]),
                                 baseline)
    except (TypeError, ValueError) as exc:
        raise ControllerConfigError(f"{where}: {exc}") from None
    if event.end <= event.begin or event.curtail_kw < 0:
        raise ControllerConfigError(f"{where}: end must be after start and curtail_kw >= 0")
    return event
