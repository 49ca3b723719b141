"""GP-MPC: model-predictive demand response on the Gaussian-process twin (Jain et al., SimBuild 2018).

At every step whose prediction horizon reaches a demand-response event, the controller chooses the
decided setpoints (for example cooling, supply-air and chilled-water) over the next ``horizon``
steps, piecewise constant over ``blocks`` blocks (move blocking: the first step alone, the rest in
equal blocks), and writes the first step's values: a receding horizon. Outside that, and for every input it does not decide, it
writes the base schedule (a schedule file of controllers/schedule.py).

Predictions: the trained twin (bridge.twin) from the measured history the controller has seen,
with the model's own lags, the setpoints of a candidate trajectory and the weather of the EPW
file as a perfect forecast (as in the paper): zero-variance rollouts of the power model and of
the comfort models, all candidates of one optimizer iteration in one batch
(``GPModel.forecast_scenarios``).

Objectives (``objective``):
- ``"tracking"``: follow the reference ``baseline - curtail_kw`` during the event, where the
  baseline is the twin's forecast of power under the base schedule, made once when the event
  first enters the horizon and then frozen (the curtailment is measured against what the building
  would have done); before and after the event, stay near the baseline (weight ``outside_weight``);
- ``"energy"``: minimise the predicted energy over the event steps of the horizon.
Both add ``move_weight`` times the squared changes between blocks (in units of each input's range).

Comfort: chance constraints on every modelled zone temperature listed in ``comfort``: at every
step of the horizon, ``mean + z * std <= high`` and ``mean - z * std >= low``, with z the one-sided
normal quantile of ``confidence`` (1.645 for 0.95). The std is taken once per decision, along the
warm-start trajectory, and held while optimising (it hardly moves with the setpoints, and its
O(n^2) cost per predicted row would dominate every iteration).

Solver: SLSQP (scipy) on the decisions scaled to [0, 1], with forward-difference gradients
computed as one batch of rollouts; at most ``max_iter`` iterations, warm-started from the previous
decision. A solve that ends infeasible keeps the previous decision (or, at the first, the base
schedule) and says so in the log.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.stats import norm

from bridge.config import ConfigError, reference_weather, resolve_file
from bridge.tagmap import TagMap, TagMapError, load_tagmap
from bridge.tomlfile import Table, file_path, read_toml
from bridge.twin.gp import TwinModel
from bridge.twin.persist import ModelFileError, check_compatible, load_model
from bridge.twin.weather import WeatherError, weather_series
from controllers.base import ControllerConfigError, ControllerError, InputRange
from controllers.schedule import Schedule, load_schedule

log = logging.getLogger(__name__)

OBJECTIVES = ("tracking", "energy")
FD_STEP = 1e-3  # forward-difference step in scaled decision units (a thousandth of an input's range)
COMFORT_TOL_K = 1e-3  # a comfort margin above -COMFORT_TOL_K counts as met (the solver's own tolerance)


@dataclass(frozen=True)
class CurtailmentEvent:
    """A demand-response request: from ``begin`` to ``end`` (simulation time), ``curtail_kw`` below baseline."""

    begin: dt.datetime
    end: dt.datetime
    curtail_kw: float

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
    max_iter: int = 50
    max_seconds: float | None = None  # wall-clock budget of one decision (None: max_iter alone bounds it)
    path: str = ""


@dataclass
class Decision:
    """What one decision did, for logs and benchmarks."""

    time: dt.datetime
    values: dict[str, float]
    success: bool
    iterations: int  # SLSQP iterations; -1 when the time budget (max_seconds) stopped it
    seconds: float


class _OutOfTime(Exception):
    """A decision's time budget (``max_seconds``) is spent: the optimiser is stopped."""


class GpMpcController:
    """See the module docstring. ``decisions`` keeps one ``Decision`` per optimisation."""

    def __init__(self, config: MpcConfig):
        self.config = config
        self.decisions: list[Decision] = []
        self._history: list[dict[str, float]] = []
        self._times: list[dt.datetime] = []
        self._step: dt.timedelta | None = None  # the bridge's timestep, from the first two decisions
        self._last_inputs: dict[str, float] | None = None
        self._warm: np.ndarray | None = None
        self._weather: pd.DataFrame | None = None
        self._first_day: dt.date | None = None  # the run's first day as far as seen: the EPW's day sequence starts there
        self._baselines: dict[CurtailmentEvent, pd.Series] = {}
        self._ranges: dict[str, InputRange] = {}

    def check(self, inputs: Mapping[str, InputRange]) -> None:
        self.config.schedule.check(inputs)
        missing = [tag for tag in self.config.decide if tag not in inputs]
        if missing:
            raise ControllerConfigError(f"{self.config.path}: decide lists {missing}, not input tags of the building "
                                        f"(inputs: {sorted(inputs)})")
        for tag, (low, high) in self.config.bounds.items():
            if low < inputs[tag].low or high > inputs[tag].high:
                raise ControllerConfigError(f"{self.config.path}: bounds of {tag} [{low}, {high}] exceed the tag's "
                                            f"EURange [{inputs[tag].low}, {inputs[tag].high}]")
        self._ranges = dict(inputs)

    def decide(self, sim_time: dt.datetime, outputs: Mapping[str, float]) -> dict[str, float]:
        if self._times and sim_time == self._times[-1] and self._last_inputs is not None:
            # the same step again (paced mode, a retried Exchange): the same decision, fresher outputs
            self._history[-1].update(self._measured(outputs))
            return dict(self._last_inputs)
        self._remember(sim_time, outputs)
        values = self._base_inputs(sim_time)
        if self._step is not None:
            horizon_times = [sim_time + self._step * h for h in range(1, self.config.horizon + 1)]
            active = [event for event in self.config.events if any(event.contains(t) for t in horizon_times)]
            if active and len(self._times) > self._max_lag():
                values.update(self._optimise(sim_time, horizon_times, active))
            else:
                self._warm = None
        self._last_inputs = values
        return dict(values)

    # --- history -------------------------------------------------------------------------------
    def _remember(self, sim_time: dt.datetime, outputs: Mapping[str, float]) -> None:
        """Append the measured row at ``sim_time`` (outputs at the end of the step, inputs applied
        during it: the last decision). Time going back or jumping (a reset, a reconnect after a gap)
        starts the history again."""
        if self._times:
            gap = sim_time - self._times[-1]
            if self._step is None and gap > dt.timedelta(0):
                self._step = gap
            elif gap != self._step:
                log.info("%s: time went from %s to %s; history, baselines and warm start start again",
                         self.config.path, self._times[-1], sim_time)
                self._history.clear()
                self._times.clear()
                self._baselines.clear()
                self._last_inputs, self._warm = None, None
        # before the first decision the inputs applied are unknown: the base schedule's
        applied = self._last_inputs or self._base_inputs(sim_time - (self._step or dt.timedelta(0)))
        self._first_day = min(self._first_day or sim_time.date(), sim_time.date())
        row = self._measured(outputs)
        row.update({tag: applied[tag] for tag in self._input_tags()})
        self._history.append(row)
        self._times.append(sim_time)
        keep = self._max_lag() + 2
        del self._history[:-keep], self._times[:-keep]

    def _measured(self, outputs: Mapping[str, float]) -> dict[str, float]:
        return {tag: float(outputs[tag]) for tag in self._model_outputs() if tag in outputs}

    def _history_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._history, index=pd.DatetimeIndex(self._times))

    def _max_lag(self) -> int:
        return max(model.features.max_lag for model in self.config.twin.models.values())

    def _model_outputs(self) -> set[str]:
        return {tag for model in self.config.twin.models.values() for tag in (model.features.target,
                                                                             *model.features.disturbances)}

    def _input_tags(self) -> list[str]:
        return [item.tag for item in self.config.tagmap.inputs]

    def _base_inputs(self, time: dt.datetime) -> dict[str, float]:
        """Every input tag: the base schedule's setpoint, else the tag map's default."""
        scheduled = self.config.schedule.setpoints(time)
        return {item.tag: scheduled.get(item.tag, item.default) for item in self.config.tagmap.inputs}

    # --- optimisation --------------------------------------------------------------------------
    def _base_future(self, times: list[dt.datetime]) -> pd.DataFrame:
        """Rows of the coming timesteps ending at ``times``: the base inputs applied during each
        step and the weather (EPW, perfect forecast) of the disturbance tags."""
        index = pd.DatetimeIndex(times)
        future = pd.DataFrame([self._base_inputs(t - self._step) for t in times], index=index)
        weather = self._weather_at(index)
        for tag in {tag for model in self.config.twin.models.values() for tag in model.features.disturbances}:
            future[tag] = weather[self.config.tagmap.output(tag).variable].to_numpy()
        return future

    def _weather_at(self, index: pd.DatetimeIndex) -> pd.DataFrame:
        """EPW weather at ``index``, from a table of the coming days at the bridge's timestep (read
        again when the horizon leaves it); beyond the end of the year the last hour's values hold."""
        if self._weather is None or index[0] not in self._weather.index or index[-1] not in self._weather.index:
            end = max(index[-1], index[0] + pd.Timedelta(days=2))
            try:
                self._weather = weather_series(self.config.weather, pd.date_range(index[0], end, freq=self._step),
                                               run_start=self._first_day)
            except WeatherError as exc:
                raise ControllerError(f"{self.config.path}: no weather forecast for {index[0]} .. {end}: {exc}") from None
        return self._weather.loc[index]

    def _futures(self, base: pd.DataFrame, decisions: np.ndarray) -> list[pd.DataFrame]:
        """One future per decision vector (rows of scaled decisions, input-major): ``base`` (a
        ``_base_future``) with the decided inputs piecewise constant over the blocks."""
        config = self.config
        block = block_of_steps(config.horizon, config.blocks)
        futures = []
        for row in np.atleast_2d(decisions):
            future = base.copy()
            for i, tag in enumerate(config.decide):
                low, high = self._bounds(tag)
                future[tag] = low + (high - low) * row[i * config.blocks + block]
            futures.append(future)
        return futures

    def _bounds(self, tag: str) -> tuple[float, float]:
        if tag in self.config.bounds:
            return self.config.bounds[tag]
        limits = self._ranges[tag]
        return limits.low, limits.high

    def _scaled(self, values: Mapping[str, float]) -> np.ndarray:
        """Decision vector (scaled) holding ``values`` in every block."""
        out = []
        for tag in self.config.decide:
            low, high = self._bounds(tag)
            out += [np.clip((values[tag] - low) / (high - low), 0.0, 1.0)] * self.config.blocks
        return np.array(out)

    def _optimise(self, sim_time: dt.datetime, horizon_times: list[dt.datetime],
                  events: list[CurtailmentEvent]) -> dict[str, float]:
        config, started = self.config, time.perf_counter()
        history = self._history_frame()
        power_model = config.twin.models[config.power]
        in_event = np.array([any(e.contains(t) for e in events) for t in horizon_times])
        base = self._base_future(horizon_times)
        base_power, _ = power_model.forecast_scenarios(history, [base], with_std=False)
        reference = self._reference(sim_time, horizon_times, events, history, base_power[0])
        start = self._schedule_decisions(horizon_times) if self._warm is None else self._warm.copy()
        # the decided inputs now applied, where the first move starts from (scaled)
        previous = self._scaled(self._last_inputs or self._base_inputs(sim_time)).reshape(len(config.decide),
                                                                                           config.blocks)[:, :1]
        # comfort: std along the warm start, held during the optimisation
        z = norm.ppf(config.confidence)
        comfort_std = {tag: config.twin.models[tag].forecast_scenarios(history, self._futures(base, start))[1][0]
                       for tag in config.comfort}
        cache: dict[bytes, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        deadline = [None if config.max_seconds is None else started + config.max_seconds]
        best: list = [np.inf, None]  # cost and decisions of the best feasible point evaluated

        def rollouts(x: np.ndarray) -> None:
            """Power and comfort means at x and at x + FD_STEP e_i, one batch, into the cache; the
            best feasible point so far is kept under a time budget. Raises _OutOfTime once it is spent."""
            if deadline[0] is not None and time.perf_counter() > deadline[0]:
                raise _OutOfTime
            points = np.vstack([x, x + FD_STEP * np.eye(len(x))])
            futures = self._futures(base, points)
            power, _ = power_model.forecast_scenarios(history, futures, with_std=False)
            temps = {tag: config.twin.models[tag].forecast_scenarios(history, futures, with_std=False)[0]
                     for tag in config.comfort}
            cache[x.tobytes()] = (power, temps)
            if deadline[0] is not None:  # only a budget that runs out needs the best point so far
                value = cost(power[:1], x[None])[0]
                if value < best[0] and (not config.comfort or margins(temps)[0].min() >= -COMFORT_TOL_K):
                    best[:] = [value, x.copy()]

        def evaluated(x: np.ndarray):
            if x.tobytes() not in cache:
                rollouts(x)
            return cache[x.tobytes()]

        scale_kw = max(max((e.curtail_kw for e in events), default=0.0), 50.0)

        def cost(power: np.ndarray, x: np.ndarray) -> np.ndarray:
            """Cost of each row of ``power`` (scenarios x horizon); x: the decisions of each row."""
            if config.objective == "tracking":
                error = (power - reference) / scale_kw
                weights = np.where(in_event, 1.0, config.outside_weight)
                value = (weights * error ** 2).sum(axis=1)
            else:
                value = (power[:, in_event] / scale_kw).sum(axis=1)
            moves = x.reshape(len(x), len(config.decide), config.blocks)
            steps = np.diff(np.concatenate([np.broadcast_to(previous, (len(x), *previous.shape)), moves], axis=2), axis=2)
            return value + config.move_weight * (steps ** 2).sum(axis=(1, 2))

        def objective(x):
            power, _ = evaluated(x)
            points = np.vstack([x, x + FD_STEP * np.eye(len(x))])
            values = cost(power, points)
            return values[0], (values[1:] - values[0]) / FD_STEP

        def margins(temps: dict[str, np.ndarray]) -> np.ndarray:
            """Comfort margins (>= 0 when met), per scenario row: high - (mean + z std), (mean - z std) - low."""
            parts = []
            for tag, (low, high) in config.comfort.items():
                parts += [high - (temps[tag] + z * comfort_std[tag]), temps[tag] - z * comfort_std[tag] - low]
            return np.concatenate(parts, axis=1)

        def constraint(x):
            return margins(evaluated(x)[1])[0]

        def constraint_jac(x):
            values = margins(evaluated(x)[1])
            return ((values[1:] - values[0]) / FD_STEP).T

        constraints = [{"type": "ineq", "fun": constraint, "jac": constraint_jac}] if config.comfort else []
        try:
            result = minimize(lambda x: objective(x)[0], start, jac=lambda x: objective(x)[1], method="SLSQP",
                              bounds=[(0.0, 1.0)] * len(start), constraints=constraints,
                              options={"maxiter": config.max_iter, "ftol": 1e-6})
            x, success, message, iterations = np.clip(result.x, 0.0, 1.0), bool(result.success), result.message, result.nit
        except _OutOfTime:
            deadline[0] = None
            x, success, iterations = best[1], False, -1
            message = f"time budget of {config.max_seconds:g} s spent"
        feasible = x is not None and (not constraints or constraint(x).min() >= -COMFORT_TOL_K)
        if not (success or feasible):
            # the last decision (or the base schedule): a jump back to the base schedule mid-event
            # would undo the curtailment at once
            log.warning("%s: MPC at %s found no feasible trajectory (%s); %s kept", config.path, sim_time,
                        message, "the last decision" if self._warm is not None else "the base schedule (clipped)")
            x = start
        elif not success:
            log.warning("%s: MPC at %s: %s; the best feasible point found is used", config.path, sim_time, message)
        self._warm = x
        values = {}
        for i, tag in enumerate(config.decide):
            low, high = self._bounds(tag)
            values[tag] = float(low + (high - low) * x[i * config.blocks])
        seconds = time.perf_counter() - started
        self.decisions.append(Decision(sim_time, values, success, int(iterations), seconds))
        log.info("%s: MPC %s -> %s (predicted power %.0f kW, reference %.0f kW, %d iterations, %.2f s)", sim_time,
                 "ok" if success else message, {k: round(v, 2) for k, v in values.items()},
                 evaluated(x)[0][0, 0], reference[0], iterations, seconds)
        return values

    def _schedule_decisions(self, horizon_times: list[dt.datetime]) -> np.ndarray:
        """The base schedule as a decision vector (scaled, clipped to the bounds): per block, the
        schedule's value at the block's first step. The warm start when the controller was idle."""
        block = block_of_steps(self.config.horizon, self.config.blocks)
        firsts = [int(np.argmax(block == b)) for b in range(self.config.blocks)]
        out = []
        for tag in self.config.decide:
            low, high = self._bounds(tag)
            out += [np.clip((self._base_inputs(horizon_times[h] - self._step)[tag] - low) / (high - low), 0.0, 1.0)
                    for h in firsts]
        return np.array(out)

    def _reference(self, sim_time: dt.datetime, horizon_times: list[dt.datetime], events: list[CurtailmentEvent],
                   history: pd.DataFrame, base_power: np.ndarray) -> np.ndarray:
        """Power reference over the horizon: baseline - curtail_kw in events, the current baseline
        forecast elsewhere. An event's baseline is the power model's forecast under the base
        schedule, made once, when the event first enters the horizon, from then to its end, and frozen."""
        reference = base_power.copy()
        power_model = self.config.twin.models[self.config.power]
        for event in events:
            if event not in self._baselines:
                times = [sim_time + self._step * h for h in range(1, int(round((event.end - sim_time) / self._step)) + 1)]
                baseline, _ = power_model.forecast_scenarios(history, [self._base_future(times)], with_std=False)
                self._baselines[event] = pd.Series(baseline[0], index=pd.DatetimeIndex(times))
            frozen = self._baselines[event]
            for h, t in enumerate(horizon_times):
                if event.contains(t) and t in frozen.index:
                    reference[h] = frozen[t] - event.curtail_kw
        return reference


def block_of_steps(horizon: int, blocks: int) -> np.ndarray:
    """Block index of each horizon step: the first step is a block of its own (the move applied
    now), the other steps are split into ``blocks - 1`` equal blocks."""
    if blocks == 1:
        return np.zeros(horizon, dtype=int)
    return np.concatenate([[0], 1 + np.arange(horizon - 1) * (blocks - 1) // (horizon - 1)])


def load_mpc(path: str | Path) -> MpcConfig:
    """Read a GP-MPC file (controllers/examples/large_office_gp_mpc.toml); ControllerConfigError naming file and key."""
    path = Path(path)
    base = path.parent
    file = Table(read_toml(path, ControllerConfigError, "GP-MPC file"), str(path), ControllerConfigError)
    where = file.where
    file.check_keys({"schedule", "model", "tagmap", "weather", "mpc", "events"})
    tagmap_path, model_path, schedule_path = (file_path(file.text(key), base, ControllerConfigError, f"{where}: {key}")
                                              for key in ("tagmap", "model", "schedule"))
    try:
        tagmap = load_tagmap(tagmap_path)
        twin = load_model(model_path)
        check_compatible(twin, tagmap, file.text("model"))
    except (TagMapError, ModelFileError) as exc:
        raise ControllerConfigError(f"{where}: {exc}") from None
    try:
        weather = resolve_file(file.text("weather", "ref:usa_il_chicago"), base, reference_weather, f"{where}: weather")
    except ConfigError as exc:
        raise ControllerConfigError(str(exc)) from None
    mpc = file.table("mpc")
    mpc.check_keys({"objective", "horizon_steps", "blocks", "decide", "bounds", "comfort", "confidence", "move_weight",
                    "outside_weight", "max_iter", "max_seconds", "power"})
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
        raise ControllerConfigError(f"{where}: the twin {file.text('model')} models {twin.targets}; it has no model of "
                                    f"{unmodelled or [power]} (comfort tags and the power tag need one)")
    try:
        schedule = load_schedule(schedule_path)
    except ControllerConfigError as exc:
        raise ControllerConfigError(f"{where}: schedule: {exc}") from None
    events = tuple(_event(entry.values, entry.where, schedule) for entry in file.tables("events"))
    config = MpcConfig(schedule, twin, tagmap, weather, decide, bounds, events, comfort, power, objective,
                       mpc.integer("horizon_steps", 12), mpc.integer("blocks", 3), mpc.number("confidence", 0.95),
                       mpc.number("move_weight", 0.1), mpc.number("outside_weight", 0.1),
                       mpc.integer("max_iter", 50), _max_seconds(mpc), where)
    if not 1 <= config.blocks <= config.horizon or not 0.5 < config.confidence < 1:
        raise ControllerConfigError(f"{where}: [mpc] need 1 <= blocks <= horizon_steps and 0.5 < confidence < 1")
    try:
        weather_series(weather, pd.DatetimeIndex([dt.datetime(2025, 7, 1)]))
    except WeatherError as exc:
        raise ControllerConfigError(f"{where}: weather: {exc}") from None
    return config


def _max_seconds(mpc: Table) -> float | None:
    """The optimiser's time limit per decision in seconds (None: no limit)."""
    if "max_seconds" not in mpc.values:
        return None
    value = mpc.number("max_seconds")
    if not 0 < value < float("inf"):
        raise ControllerConfigError(f"{mpc.where}: max_seconds must be a positive number of seconds, got {value!r}")
    return value


def _pair(value, where: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ControllerConfigError(f"{where}: expected [low, high], got {value!r}") from None
    if not low < high:
        raise ControllerConfigError(f"{where}: low {low} must be below high {high}")
    return low, high


def _event(entry: dict, where: str, schedule: Schedule) -> CurtailmentEvent:
    """An event of the file, its times on the base schedule's clock (``daylight_saving``), kept in simulation time."""
    if set(entry) != {"date", "start", "end", "curtail_kw"}:
        raise ControllerConfigError(f"{where}: needs exactly 'date' (YYYY-MM-DD), 'start', 'end' (HH:MM) and "
                                    f"'curtail_kw', got {sorted(entry)}")
    try:
        day = dt.date.fromisoformat(str(entry["date"]))
        begin, end = (dt.datetime.combine(day, dt.time.fromisoformat(str(entry[key]))) for key in ("start", "end"))
        event = CurtailmentEvent(schedule.simulation_time(begin), schedule.simulation_time(end), float(entry["curtail_kw"]))
    except (TypeError, ValueError) as exc:
        raise ControllerConfigError(f"{where}: {exc}") from None
    if event.end <= event.begin or event.curtail_kw < 0:
        raise ControllerConfigError(f"{where}: end must be after start and curtail_kw >= 0")
    return event
