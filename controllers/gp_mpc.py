"""GP-MPC: model-predictive demand response on the Gaussian-process twin (Jain et al., SimBuild 2018).

At every step whose prediction horizon reaches a demand-response event, the controller chooses the
decided setpoints (for example cooling, supply-air and chilled-water) over the next ``horizon``
steps, piecewise constant over ``blocks`` blocks (move blocking: the first step alone, the rest in
equal blocks), and writes the first step's values: a receding horizon. Outside that, and for every input it does not decide, it
writes the base schedule (a schedule file of controllers/schedule.py).

Predictions: the trained twin (bridge.twin) from the measured history the controller has seen,
with the model's own lags, the setpoints of a candidate trajectory and the weather of the EPW
file as a perfect forecast (as in the paper): zero-variance rollouts of the power model and of
the comfort models, written as CasADi expressions of the decisions (controllers/gp_rollout.py).

Disturbance estimate: at every step, the power model's one-step error (measured power minus the
twin's prediction of it from the measured lags and the inputs applied) is kept for the last
``feedback_steps`` steps; their mean ``d`` (kW) is the twin's current one-step error. It is an
output disturbance of the autoregressive power model: every forecast (baseline, base forecast,
the optimiser's rollouts) adds ``d`` to each step's prediction before feeding it back through the
output lags, so a steady one-step error moves the forecast's level by about d / (1 - the sum of the
model's sensitivities to its lags), as it moves the building's power (``GPModel.forecast_scenarios``
``offset``). Added after the rollout (as before issue 16), it fell short by that factor: 1.1-2.3 for
the Large Office's facility-power twin, 3-7 for its HVAC-power twin (bench/study_gp_baseline.py).

Baseline (what the building would draw without the event; an event's ``baseline``):
- ``"twin"`` (default): the twin's forecast under the base schedule from the history measured when
  the event first entered the horizon, to 2 h after the event's end, with ``d`` fed back; held
  (``baseline_update = "entry"``, the default), or made again at every decision with the current
  ``d`` until the event's start (``"begin"``) or end (``"end"``), the value of a step already
  passed staying the one it was tracked with. Measured (bench/study_gp_baseline.py, 11 validation
  days, base runs): the twin's error 2-5 h ahead is mostly not observable at entry (event-window
  RMSE of the entry baseline 22-32 kW on average), and made again every step from the base run's
  own errors it would be 5-14 kW; but in an event ``d`` also holds the twin's error in its response
  to the setpoints, which a baseline moving with it cannot tell from a level error (the shed becomes
  the twin's idea of it: with a twin ``G(u)`` off under the controller's inputs, a baseline that
  follows ``d`` asks ``twin(u) = twin(base) - request`` and the building sheds ``request - G(u)``).
  In closed loop on the validation days (HVAC twins, 100 kW) the re-corrected baseline's event RMSE
  was 32 kW on average against 22 kW held: "entry" is the default.
  Utility baselines take their day-of adjustment from hours before the event.
- ``"x_of_y"``: a utility baseline, bridge/tracking/dr_baseline.py's ``x_of_y_baseline`` ("X of Y"
  days, ``x_of_y = [X, Y]``, default CAISO's 10 of 10, multiplicative day-of adjustment capped at
  20 %) on the facility power the controller has measured (it keeps 45 days of it when an event
  needs this baseline); the base schedule's holidays and the days of the file's other events are
  excluded. Made when the event enters the horizon; until the adjustment window (the 3 h ending
  1 h before the event) is measured, the adjustment is taken over the 3 h ending at the newest
  measurement and the baseline is made again every step; from then on it is held. When it cannot
  be made (fewer than Y eligible days: a run started too few days before the event), the
  controller logs the BaselineError and falls back to the twin baseline for that event (its report
  says "twin (x_of_y refused)"). A ``baselines`` source given to the controller replaces it
  (for example the utility's own figures), called once and held.
- ``"twin_regression"`` (issue 16, round 13): the per-step mean of the twin baseline above and a
  regression customer baseline (bridge/tracking/dr_baseline.py's ``regression_baseline``: one least-squares
  fit per time of day on the last 30 eligible weekdays of power on outdoor temperature, its 6 h mean and
  humidity, plus the additive day-of adjustment over the 3 h ending at entry), made at entry and held. The
  controller keeps 61 days of measured power, outdoor temperature and humidity (the tag map's outputs of
  EnergyPlus's site dry bulb and relative humidity) when an event names it; the base schedule's holidays and
  the days of the file's other events are excluded; the EPW file is the weather forecast after entry. Offline
  on the 11 validation days (bench/study_combined_baseline.py) the mean was 9.05 kW mean / 14.2 kW worst
  event-window RMSE against 15.2 / 33.9 for the twin alone. When the regression cannot be made (fewer than 30
  eligible weekdays measured, no outdoor outputs), the BaselineError is logged and the twin baseline alone is
  tracked ("twin (regression refused)"). A ``baselines={"regression": source}`` source replaces the
  controller's own regression (called once at entry, held).

Ensemble (``model = [file, ...]``, issue 16): twins trained exactly alike from other excitation runs
make entry baselines that differ by tens of kW (bench/study_twin_realizations.py: held-baseline RMSE
15.0 kW with seed 0's twin, 43.3 / 30.9 / 19.7 with seeds 1-3's, 16.2 for the per-step median of the
four). With several files, each file's power model is a member with its own disturbance estimate (its
own one-step errors); a twin baseline is the per-step median of the members' baselines, each made as
above (held from entry, or corrected again with each member's current ``d``). The optimiser's power
dynamics, ``d`` and base forecast are one member's: at an event's entry, the member whose baseline is
closest (RMSE over the event) to the median (the first on a tie; the first before any event), so the
model the optimiser asks to shed agrees best with the baseline it tracks, and one NLP of the usual size
is solved (one is built per member used). The comfort models are the first file's. At entry the
members' baseline spread over the event (max - min per step: mean and max) and each member's RMSE to the
median are logged and kept in ``ensemble_entry``. One file: the controller as before, exactly.

Feedback (``feedback = true``, the default): the power predictions over the horizon are the
twin's plus ``d``, re-estimated every step (an output-disturbance model: offset-free MPC), so a
steady model error, in level or in the response to the setpoints, does not become a steady
shortfall. With ``feedback = false`` the optimiser trusts the twin's predictions as they are.

Shed directions (``shed = { tag = "up" | "down" }``): while an event is in the horizon each listed input's
decisions are bounded on the side of the base schedule's value that sheds power (``_shed_limits``), so a twin
whose learned response has the wrong sign in some regime cannot drive that input the wrong way.

Objectives (``objective``):
- ``"tracking"``: follow the reference ``baseline - curtail_kw`` during the event; before and
  after the event, stay near the current base forecast (weight ``outside_weight``);
- ``"energy"``: minimise the predicted energy over the event steps of the horizon.
Both add ``move_weight`` times the squared changes between blocks (in units of each input's range).

Comfort: chance constraints on every modelled zone temperature listed in ``comfort``: at every
step of the horizon, ``mean + z * std <= high`` and ``mean - z * std >= low``, with z the one-sided
normal quantile of ``confidence`` (1.645 for 0.95). The std is taken once per decision, along the
warm-start trajectory, and held while optimising (it hardly moves with the setpoints, and its
O(n^2) cost per predicted row would dominate every iteration).

Solver: IPOPT through CasADi on the decisions scaled to [0, 1], with exact first and second
derivatives of the GP rollouts (algorithmic differentiation: about 12 iterations a decision on the
Large Office, where a limited-memory Hessian took 10-100 and hit the limit); one NLP built once,
its parameters (feature tables, disturbance, reference, comfort std) set per decision; warm-started
from the previous decision; at most ``max_iter`` iterations and ``max_seconds`` of wall time.
A solve that ends infeasible keeps the previous decision (or, at the first, the base schedule) and
says so in the log.

Per event, once its post-event window is over, the controller logs the report of
bridge/tracking/dr_event.py against the baseline it used (``event_reports``; the pre-event window is
the 2 h before the event, or the part of them its baseline covers when the horizon is shorter).

Beyond reach: a decision inside an event whose plan, at the event's next step, sheds more than
``BEYOND_REACH_SHARE`` (5 %) of the request less than asked while every decided input's first move sits at
a bound or a comfort chance constraint is active somewhere in the horizon (within ``COMFORT_ACTIVE_K``) has
found the request beyond what the building gives within its bounds and comfort band, as far as the twin
(with its disturbance estimate) can tell. The first such decision of an event is logged as a warning; the
report counts them (``beyond_reach_share``). It is the twin's judgment: on the validation days with the true
baseline given it flagged the three days that stayed above 15 kW tracking RMSE (docs/controllers.md, round 14).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bridge.tracking.dr_baseline import (
    BaselineError,
    regression_baseline,
    x_of_y_baseline,
)
from bridge.tracking.dr_event import EventReport, EventReportError, event_report
from bridge.twin.gp import TwinModel
from bridge.twin.weather import WeatherError, weather_series
from controllers.base import ControllerConfigError, ControllerError, InputRange
from controllers.gp_mpc_config import CurtailmentEvent, MpcConfig, load_mpc
from controllers.gp_mpc_solver import MpcSolver, block_of_steps
from controllers.schedule import Schedule

__all__ = ["BaselineSource", "CurtailmentEvent", "Decision", "GpMpcController", "MpcConfig", "load_mpc"]

log = logging.getLogger(__name__)

TIMED_OUT = ("Maximum_WallTime_Exceeded", "Maximum_CpuTime_Exceeded")  # IPOPT's statuses of a spent budget
COMFORT_TOL_K = 1e-3  # a comfort margin above -COMFORT_TOL_K counts as met (the solver's own tolerance)
WINDOW = dt.timedelta(hours=2)  # the pre- and post-event windows of the baseline and the report
AT_BOUND = 1e-3  # a first move within this share of its range from a bound is at the bound
COMFORT_ACTIVE_K = 0.05  # a comfort chance constraint within this margin somewhere in the horizon is active
BEYOND_REACH_SHARE = 0.05  # planned shortfall (share of the request) that, at the limits, is "beyond reach"
LAG_SENSITIVITY_WARN = 0.9  # |output-lag sensitivity| at which a twin's baseline is warned about (10x and more)
LOOKBACK = dt.timedelta(days=46)  # measured power kept for an x_of_y baseline (dr_baseline's 45-day look-back)
REGRESSION_LOOKBACK = dt.timedelta(days=61)  # kept for a regression baseline: its 60-day look-back for 30 weekdays
REGRESSION_DAYS = 30  # eligible weekdays of the regression baseline (round 11's (d))
OUTDOOR = {"temperature": "Site Outdoor Air Drybulb Temperature", "humidity": "Site Outdoor Air Relative Humidity"}


@dataclass
class Decision:
    """What one decision did, for logs and benchmarks."""

    time: dt.datetime
    values: dict[str, float]
    success: bool
    iterations: int  # IPOPT iterations; -1 when the time budget (max_seconds) stopped it
    seconds: float
    offset_kw: float = 0.0  # the disturbance estimate added to the power predictions (0 without feedback)
    shortfall_kw: float = 0.0  # predicted - reference at the horizon's first event step (> 0: planned short)
    at_limit: bool = False  # every decided input's first move at a bound, or a comfort constraint active

    def beyond_reach(self, curtail_kw: float) -> bool:
        """Whether this decision found the request beyond reach: its plan sheds more than
        ``BEYOND_REACH_SHARE`` of ``curtail_kw`` less than asked with nothing left to move (``at_limit``)."""
        return self.at_limit and self.shortfall_kw > BEYOND_REACH_SHARE * curtail_kw


def x_of_y_excluded(event: CurtailmentEvent, events: Sequence[CurtailmentEvent], schedule: Schedule,
                    lookback: dt.timedelta = LOOKBACK) -> set[dt.date]:
    """The days an x_of_y (or regression) baseline of ``event`` leaves out (module docstring): the days of the
    earlier ``events`` and the base ``schedule``'s holidays (its rules, in each year of the ``lookback``)."""
    earlier = {e.begin.date() for e in events if e.begin.date() < event.begin.date()}
    days = [event.begin.date() - dt.timedelta(days=k) for k in range(1, lookback.days + 1)]
    return earlier | {day for day in days if schedule.is_holiday(day)}


def _keep_rolling(log: dict[dt.datetime, object], sim_time: dt.datetime, value: object, lookback: dt.timedelta) -> None:
    """Add ``value`` at ``sim_time`` to ``log``, which keeps the last ``lookback`` (emptied first when time went
    back: another run)."""
    if log and sim_time <= next(reversed(log)):
        log.clear()
    log[sim_time] = value
    while next(iter(log)) < sim_time - lookback:
        del log[next(iter(log))]


def median_baseline(made: np.ndarray) -> np.ndarray:
    """The ensemble's baseline: the per-step median of the members' baselines (rows of ``made``, kW)."""
    return np.median(np.asarray(made, float), axis=0)


def closest_member(made: np.ndarray, median: np.ndarray) -> tuple[int, np.ndarray]:
    """(index of the member whose baseline, a row of ``made``, has the lowest RMSE to ``median``, the
    first on a tie; every member's RMSE, kW)."""
    distance = np.sqrt(((np.asarray(made, float) - median) ** 2).mean(axis=1))
    return int(np.argmin(distance)), distance


# An event's utility baseline: (event, the timesteps ending at these times) -> kW per timestep
BaselineSource = Callable[[CurtailmentEvent, pd.DatetimeIndex], np.ndarray]


class GpMpcController:
    """See the module docstring. ``decisions`` keeps one ``Decision`` per optimisation, ``baselines``
    each event's baseline (kW per timestep), ``baseline_used`` the baseline each event was tracked
    against when not the one it names, and ``event_reports`` each reported event's report; the
    ``baselines`` argument maps "x_of_y" or "regression" to a source replacing the controller's own."""

    def __init__(self, config: MpcConfig, baselines: Mapping[str, BaselineSource] | None = None):
        self.config = config
        self.baseline_sources = dict(baselines or {})
        self.decisions: list[Decision] = []
        self._history: list[dict[str, float]] = []
        self._times: list[dt.datetime] = []
        self._step: dt.timedelta | None = None  # the bridge's timestep, from the first two decisions
        self._last_inputs: dict[str, float] | None = None
        self._warm: np.ndarray | None = None
        self._weather: pd.DataFrame | None = None
        self._first_day: dt.date | None = None  # the run's first day as far as seen: the EPW's day sequence starts there
        self.baselines: dict[CurtailmentEvent, pd.Series] = {}
        self._origins: dict[CurtailmentEvent, tuple[pd.DataFrame, pd.DataFrame]] = {}  # twin baselines: (history, base future) at entry
        self.baseline_used: dict[CurtailmentEvent, str] = {}
        self._provisional: set[CurtailmentEvent] = set()  # x_of_y baselines made again every step (module docstring)
        self._power_log: dict[dt.datetime, float] = {}  # measured power of the last LOOKBACK, for x_of_y
        # measured power, outdoor temperature and humidity of the last REGRESSION_LOOKBACK, for a regression
        self._meter_log: dict[dt.datetime, dict[str, float]] = {}
        self._regression: dict[CurtailmentEvent, pd.Series] = {}  # twin_regression events: the regression (kW)
        self._ranges: dict[str, InputRange] = {}
        self._members = config.power_members()  # (file, power model): one, or an ensemble (module docstring)
        # one-step power errors (kW) of each member
        self._errors: list[deque[float]] = [deque(maxlen=config.feedback_steps) for _ in self._members]
        self._dynamics = 0  # the member whose power model the optimiser rolls out (module docstring)
        self._solvers: dict[int, MpcSolver] = {}  # one per member that has been the dynamics member
        self.ensemble_entry: dict[CurtailmentEvent, dict[str, float]] = {}  # members' spread at entry (kW)
        self._measured_log: dict[dt.datetime, dict[str, float]] = {}  # event windows: power and zone temperatures
        self._reported: set[CurtailmentEvent] = set()
        self._beyond_reach_logged: set[CurtailmentEvent] = set()
        self.event_reports: dict[CurtailmentEvent, EventReport] = {}

    def revise(self, event: CurtailmentEvent, curtail_kw: float) -> CurtailmentEvent:
        """``event`` asking ``curtail_kw`` from the next decision on (a campus re-split); its baseline
        is kept and its report will name the new request. The revised event."""
        revised = dataclasses.replace(event, curtail_kw=curtail_kw)
        self.config = dataclasses.replace(self.config, events=tuple(revised if e == event else e
                                                                    for e in self.config.events))
        for store in (self.baselines, self.event_reports, self.baseline_used, self._origins, self.ensemble_entry,
                      self._regression):
            if event in store:
                store[revised] = store.pop(event)
        for keys in (self._reported, self._provisional, self._beyond_reach_logged):
            if event in keys:
                keys.discard(event)
                keys.add(revised)
        return revised

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
                self.baselines.clear()
                self._origins.clear()
                self._regression.clear()
                self.ensemble_entry.clear()
                for errors in self._errors:
                    errors.clear()
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
        self._record_error()
        self._record_event_outputs(sim_time, outputs)
        if self.config.power in outputs and "x_of_y" not in self.baseline_sources and any(
                e.baseline == "x_of_y" for e in self.config.events):
            _keep_rolling(self._power_log, sim_time, float(outputs[self.config.power]), LOOKBACK)
        if "regression" not in self.baseline_sources and any(e.baseline == "twin_regression" for e in self.config.events):
            # the measured power, outdoor temperature and humidity (NaN where the tag map has no output of them)
            tags = {"power": self.config.power, **self._outdoor_tags}
            _keep_rolling(self._meter_log, sim_time, {name: float(outputs[tag]) if tag in outputs else np.nan
                                                      for name, tag in tags.items()}, REGRESSION_LOOKBACK)

    @functools.cached_property
    def _outdoor_tags(self) -> dict[str, str | None]:
        """OUTDOOR's names -> the tag map's output of that EnergyPlus site variable (None without one)."""
        return {name: next((o.tag for o in self.config.tagmap.outputs if o.variable == variable), None)
                for name, variable in OUTDOOR.items()}

    def _record_error(self) -> None:
        """Each member's one-step power error at the newest row (measured minus the member's prediction
        from the measured lags and the inputs applied), into its disturbance estimate's window."""
        if self.config.power not in self._history[-1]:
            return
        frame = None
        for (_, model), errors in zip(self._members, self._errors):
            if len(self._history) < model.features.max_lag + 1:
                continue
            frame = self._history_frame() if frame is None else frame
            features = model.feature_rows(frame.iloc[-(model.features.max_lag + 1):]).to_numpy(float)[-1:]
            predicted = model.predict_features(features, fed_back=False, with_std=False)[0][0]
            if np.isfinite(predicted):
                errors.append(self._history[-1][self.config.power] - predicted)

    def _offset(self, member: int | None = None) -> float:
        """The disturbance estimate d (kW) of ``member``'s power model (default: the dynamics member's):
        the mean of its recent one-step errors, 0 before any."""
        errors = self._errors[self._dynamics if member is None else member]
        return float(np.mean(errors)) if errors else 0.0

    def _bands(self) -> dict[str, tuple[float, float]]:
        """Comfort band of every zone the per-event report covers: the tag map's, and the MPC's own."""
        return {**{o.tag: o.comfort for o in self.config.tagmap.outputs if o.comfort}, **self.config.comfort}

    def _record_event_outputs(self, sim_time: dt.datetime, outputs: Mapping[str, float]) -> None:
        """Keep power and zone temperatures in every event's report window; report events whose
        post-event window is over."""
        events = self.config.events
        if any(e.begin - WINDOW < sim_time <= e.end + WINDOW for e in events):
            tags = [self.config.power, *self._bands()]
            self._measured_log[sim_time] = {tag: float(outputs[tag]) for tag in tags if tag in outputs}
        for event in events:
            if event not in self._reported and sim_time >= event.end + WINDOW and event in self.baselines:
                self._reported.add(event)
                try:
                    self.event_reports[event] = report = self.report(event)
                except EventReportError as exc:  # a history started again within the windows
                    log.warning("%s: event %s - %s: no report: %s", self.config.path, event.begin, event.end, exc)
                    continue
                log.info("%s: event %s - %s: %s", self.config.path, event.begin, event.end, report.as_record())

    def report(self, event: CurtailmentEvent) -> EventReport:
        """bridge/tracking/dr_event.py's report of ``event`` so far, against the baseline it used; the
        pre-event window is the part of the 2 h before the event its baseline covers."""
        measured = pd.DataFrame.from_dict(self._measured_log, orient="index").sort_index()
        baseline = self.baselines[event]
        pre = min(WINDOW, event.begin - baseline.index[0] + self._step) / dt.timedelta(hours=1)
        seconds = [d.seconds for d in self.decisions if event.begin - self._step * self.config.horizon <= d.time < event.end]
        inside = [d for d in self.decisions if event.begin <= d.time < event.end]
        bands = {tag: band for tag, band in self._bands().items() if tag in measured}
        return event_report(measured[self.config.power], event.begin, event.end, event.curtail_kw, baseline, measured,
                            bands, seconds, pre_hours=pre, post_hours=WINDOW / dt.timedelta(hours=1),
                            baseline_name=self.baseline_used.get(event, event.baseline),
                            beyond_reach=(sum(d.beyond_reach(event.curtail_kw) for d in inside), len(inside)))

    def _measured(self, outputs: Mapping[str, float]) -> dict[str, float]:
        return {tag: float(outputs[tag]) for tag in self._model_outputs() if tag in outputs}

    def _history_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._history, index=pd.DatetimeIndex(self._times))

    def _models(self) -> list:
        """Every GPModel the controller predicts with: the twin's, and the other members' power models."""
        return [*self.config.twin.models.values(), *(model for _, model in self._members[1:])]

    def _max_lag(self) -> int:
        return max(model.features.max_lag for model in self._models())

    def _model_outputs(self) -> set[str]:
        return {tag for model in self._models() for tag in (model.features.target, *model.features.disturbances,
                                                            *model.features.known_load_tags)}

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
        for tag in {tag for model in self._models() for tag in model.features.disturbances}:
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
        baselines = {event: self._baseline(event, sim_time, history) for event in events}  # may set _dynamics
        power_model = self._members[self._dynamics][1]
        in_event = np.array([any(e.contains(t) for e in events) for t in horizon_times])
        base = self._base_future(horizon_times)
        offset = self._offset()
        base_power = power_model.forecast_scenarios(history, [base], with_std=False, offset=offset)[0][0]
        reference = self._reference(horizon_times, baselines, base_power)
        start = self._schedule_decisions(horizon_times) if self._warm is None else self._warm.copy()
        # the decided inputs now applied, where the first move starts from (scaled)
        previous = self._scaled(self._last_inputs or self._base_inputs(sim_time))[::config.blocks]
        # comfort: std along the warm start, held during the optimisation
        comfort_std = {tag: config.twin.models[tag].forecast_scenarios(history, self._futures(base, start))[1][0]
                       for tag in config.comfort}
        solver = self._solver()
        applied = offset if config.feedback else 0.0
        # what response_gain scales about: the base rollout with the offset the solver applies (unused at gain 1)
        unmoved = base_power if applied == offset or config.response_gain == 1.0 else \
            power_model.forecast_scenarios(history, [base], with_std=False, offset=applied)[0][0]
        params = solver.parameters(solver.rollout.tables_for(history, base), applied,
                                   reference, np.where(in_event, 1.0, config.outside_weight), in_event,
                                   max(max((e.curtail_kw for e in events), default=0.0), 50.0), previous, comfort_std,
                                   unmoved)
        lower, upper = self._shed_limits(horizon_times)
        start = np.clip(start, lower, upper)
        x, status, iterations = solver.solve(start, params, lower, upper)
        success = status == "Solve_Succeeded"
        predicted, margins = solver.evaluate(x, params)
        if not (success or margins.min(initial=0.0) >= -COMFORT_TOL_K):
            # the last decision (or the base schedule): a jump back to the base schedule mid-event
            # would undo the curtailment at once
            log.warning("%s: MPC at %s found no feasible trajectory (%s); %s kept", config.path, sim_time,
                        status, "the last decision" if self._warm is not None else "the base schedule (clipped)")
            x = start
            predicted, margins = solver.evaluate(x, params)
        elif not success:
            log.warning("%s: MPC at %s: %s; its last point is feasible and used", config.path, sim_time, status)
        self._warm = x
        values = {}
        for i, tag in enumerate(config.decide):
            low, high = self._bounds(tag)
            values[tag] = float(low + (high - low) * x[i * config.blocks])
        seconds = time.perf_counter() - started
        iterations = -1 if status in TIMED_OUT else iterations
        firsts = x[::config.blocks]
        at_limit = bool(np.all((firsts <= AT_BOUND) | (firsts >= 1.0 - AT_BOUND))
                        or margins.min(initial=np.inf) <= COMFORT_ACTIVE_K)
        first = int(np.argmax(in_event))  # the first event step of the horizon (the next step, inside an event)
        shortfall = float(predicted[first] - reference[first]) if in_event.any() else 0.0
        decision = Decision(sim_time, values, success, iterations, seconds, offset if config.feedback else 0.0,
                            shortfall, at_limit)
        self.decisions.append(decision)
        self._warn_beyond_reach(decision, events)
        log.info("%s: MPC %s -> %s (predicted power %.0f kW, reference %.0f kW, d %.1f kW, %d iterations, %.2f s)",
                 sim_time, "ok" if success else status, {k: round(v, 2) for k, v in values.items()}, predicted[0],
                 reference[0], offset, iterations, seconds)
        return values

    def _warn_beyond_reach(self, decision: Decision, events: list[CurtailmentEvent]) -> None:
        """Log once per event the first decision inside it that found its request beyond reach."""
        for event in events:
            if (event.contains(decision.time + self._step) and event not in self._beyond_reach_logged
                    and decision.beyond_reach(event.curtail_kw)):
                self._beyond_reach_logged.add(event)
                log.warning("%s: event %s - %s: %.0f kW is beyond reach at %s: with every decided input at a bound "
                            "or a comfort constraint active the plan sheds %.0f kW less than asked",
                            self.config.path, event.begin, event.end, event.curtail_kw, decision.time,
                            decision.shortfall_kw)

    def _shed_limits(self, horizon_times: list[dt.datetime]) -> tuple[np.ndarray | float, np.ndarray | float]:
        """(lower, upper) of every decision (scaled): [0, 1], narrowed by ``[mpc] shed`` to the side of the base
        schedule's value (per block, ``_schedule_decisions``) that sheds power."""
        if not self.config.shed:
            return 0.0, 1.0
        base = self._schedule_decisions(horizon_times)
        lower, upper = np.zeros_like(base), np.ones_like(base)
        for i, tag in enumerate(self.config.decide):
            part = slice(i * self.config.blocks, (i + 1) * self.config.blocks)
            direction = self.config.shed.get(tag)
            if direction == "up":
                lower[part] = base[part]
            elif direction == "down":
                upper[part] = base[part]
        return lower, upper

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

    def _solver(self) -> MpcSolver:
        """The NLP on the dynamics member's power model and the twin's comfort models, built once per member."""
        if self._dynamics not in self._solvers:
            config = self.config
            if self._dynamics:
                models = {**config.twin.models, config.power: self._members[self._dynamics][1]}
                config = dataclasses.replace(config, twin=TwinModel(models, config.twin.metadata))
            self._solvers[self._dynamics] = MpcSolver(config, {tag: self._bounds(tag) for tag in config.decide})
        return self._solvers[self._dynamics]

    def _reference(self, horizon_times: list[dt.datetime], baselines: Mapping[CurtailmentEvent, pd.Series],
                   base_power: np.ndarray) -> np.ndarray:
        """Power reference over the horizon: baseline - curtail_kw in events, the current base
        forecast (``base_power``, disturbance estimate included) elsewhere."""
        reference = base_power.copy()
        for event, baseline in baselines.items():
            for h, t in enumerate(horizon_times):
                if event.contains(t) and t in baseline.index:
                    reference[h] = baseline[t] - event.curtail_kw
        return reference

    def _baseline(self, event: CurtailmentEvent, sim_time: dt.datetime, history: pd.DataFrame) -> pd.Series:
        """The event's baseline (module docstring) from the step after the one at which the event
        first entered the horizon to 2 h after its end; a twin baseline is corrected again at every
        decision (``_recorrect``)."""
        if event in self._origins:
            until = {"entry": dt.datetime.min, "begin": event.begin, "end": event.end}[self.config.baseline_update]
            if sim_time < until:
                self._recorrect(event, sim_time)
        elif event not in self.baselines or event in self._provisional:
            times = pd.DatetimeIndex([sim_time + self._step * h for h in
                                      range(1, round((event.end + WINDOW - sim_time) / self._step) + 1)])
            if event.baseline == "x_of_y" and "x_of_y" in self.baseline_sources:
                values = np.asarray(self.baseline_sources[event.baseline](event, times), float)
                self.baselines[event] = pd.Series(values, index=times)
            elif event.baseline == "x_of_y" and event not in self.baseline_used:
                try:
                    self.baselines[event] = self._x_of_y(event, sim_time)
                except BaselineError as exc:
                    log.warning("%s: event %s - %s: no x_of_y baseline (%s); the twin baseline is used instead",
                                self.config.path, event.begin, event.end, exc)
                    self.baseline_used[event] = "twin (x_of_y refused)"
                    self._provisional.discard(event)
            if event.baseline == "twin_regression" and event not in self.baseline_used:
                try:
                    self._regression[event] = self._regression_at(event, sim_time, times)
                except BaselineError as exc:
                    log.warning("%s: event %s - %s: no regression baseline (%s); the twin baseline alone is used "
                                "instead", self.config.path, event.begin, event.end, exc)
                    self.baseline_used[event] = "twin (regression refused)"
            if event.baseline in ("twin", "twin_regression") or event in self.baseline_used:
                keep = max(model.features.max_lag for _, model in self._members) + 1
                self._origins[event] = (history.iloc[-keep:].copy(), self._base_future(list(times)))
                self._check_feedback_gain(event)
                self._recorrect(event, sim_time)
        return self.baselines[event]

    def _check_feedback_gain(self, event: CurtailmentEvent) -> None:
        """Log each power model's output-lag sensitivity s at the event's entry (``GPModel.output_lag_sensitivity``):
        the disturbance estimate fed back through the lags moves the baseline by 1 / (1 - s) times itself, so
        a twin at s >= LAG_SENSITIVITY_WARN makes a baseline that a small one-step error throws far off; at
        s <= -LAG_SENSITIVITY_WARN its rollouts swing from step to step (with one lag, |s| >= 1 diverges)."""
        history, future = self._origins[event]
        for name, model in self._members:
            who = f" ({name})" if len(self._members) > 1 else ""
            s = float(model.output_lag_sensitivity(model.next_row(history, future))[0])
            gain = f"{1 / (1 - s):.1f}x" if s < 1 else "without bound"
            if abs(s) >= LAG_SENSITIVITY_WARN:
                log.warning("%s: event %s - %s: the power twin%s's output-lag sensitivity is %.2f at entry (a fed-back "
                            "offset moves its baseline %s; |s| >= %g): that baseline is unreliable (check the twin, or "
                            "promise the event against x_of_y)", self.config.path, event.begin, event.end, who, s, gain,
                            LAG_SENSITIVITY_WARN)
            else:
                log.info("%s: event %s - %s: power twin%s output-lag sensitivity %.2f at entry (a fed-back offset moves "
                         "the baseline %s)", self.config.path, event.begin, event.end, who, s, gain)

    def _recorrect(self, event: CurtailmentEvent, sim_time: dt.datetime) -> None:
        """The twin baseline of ``event`` after ``sim_time``: each member's rollout under the base
        schedule from the history measured when the event entered the horizon, with its current
        disturbance estimate fed back through the output lags at every step, and their per-step median
        (one member: its rollout), averaged step by step with the event's regression baseline when it has
        one (``"twin_regression"``); its steps up to ``sim_time`` keep the values they were tracked with."""
        history, future = self._origins[event]
        made = np.array([model.forecast_scenarios(history, [future], with_std=False, offset=self._offset(m))[0][0]
                         for m, (_, model) in enumerate(self._members)])
        values = pd.Series(made[0] if len(made) == 1 else median_baseline(made), index=future.index)
        if len(made) > 1 and event not in self.ensemble_entry:
            self._enter_ensemble(event, made, values)
        if event in self._regression:
            values = 0.5 * (values + self._regression[event].reindex(values.index))
        if event in self.baselines:
            values = values.where(values.index > sim_time, self.baselines[event])
        self.baselines[event] = values

    def _enter_ensemble(self, event: CurtailmentEvent, made: np.ndarray, median: pd.Series) -> None:
        """At the event's entry: log the members' baseline spread over the event and make the member
        closest to the median (``closest_member``) the optimiser's dynamics from now on."""
        during = np.array([event.contains(t) for t in median.index])
        spread = made[:, during].max(axis=0) - made[:, during].min(axis=0)
        self._dynamics, distance = closest_member(made[:, during], median.to_numpy()[during])
        self.ensemble_entry[event] = {"spread_mean_kw": float(spread.mean()), "spread_max_kw": float(spread.max()),
                                      "dynamics_member": float(self._dynamics)}
        log.info("%s: event %s - %s: %d power twins' entry baselines over the event: spread (max - min) mean %.1f kW, "
                 "max %.1f kW; RMSE to their median %s kW; the optimiser rolls out %s", self.config.path, event.begin,
                 event.end, len(made), spread.mean(), spread.max(),
                 ", ".join(f"{name} {value:.1f}" for (name, _), value in zip(self._members, distance)),
                 self._members[self._dynamics][0])

    def _x_of_y(self, event: CurtailmentEvent, sim_time: dt.datetime) -> pd.Series:
        """The event's x_of_y baseline (module docstring) over (begin - 2 h, end + 2 h], from the power
        measured up to ``sim_time``; provisional (made again next step) until the adjustment window
        ending 1 h before the event is measured. BaselineError when it cannot be made."""
        if not self._power_log:
            raise BaselineError("no measured power")
        gap = max(1.0, (event.begin - sim_time) / dt.timedelta(hours=1))  # the adjustment window ends by now
        excluded = x_of_y_excluded(event, self.config.events, self.config.schedule)
        x, y = self.config.x_of_y
        baseline = x_of_y_baseline(pd.Series(self._power_log), event.begin, event.end, x, y, excluded,
                                   adjustment_gap_hours=gap, margin=WINDOW)
        (self._provisional.add if gap > 1.0 else self._provisional.discard)(event)
        return baseline.kw

    def _regression_at(self, event: CurtailmentEvent, sim_time: dt.datetime, times: pd.DatetimeIndex) -> pd.Series:
        """The event's regression baseline (module docstring) at ``times``, made at ``sim_time`` from the power,
        outdoor temperature and humidity measured up to then and the EPW forecast after (or the ``"regression"``
        source's). BaselineError when it cannot be made."""
        if "regression" in self.baseline_sources:
            values = np.asarray(self.baseline_sources["regression"](event, times), float)
            if values.shape != (len(times),) or not np.isfinite(values).all():
                raise BaselineError(f"the regression source gave {values.shape[0] if values.ndim else 0} values "
                                    f"({int((~np.isfinite(values)).sum())} not finite) for {len(times)} steps")
            return pd.Series(values, index=times)
        missing = [OUTDOOR[name] for name, tag in self._outdoor_tags.items() if tag is None]
        if missing:
            raise BaselineError(f"the tag map has no output of {missing} (the regression's weather)")
        if not self._meter_log:
            raise BaselineError("no measured power")
        measured = pd.DataFrame.from_dict(self._meter_log, orient="index")
        margin = max(WINDOW, event.begin - sim_time)
        after = pd.date_range(sim_time + self._step, event.end + margin, freq=self._step)
        weather = self._weather_at(after)
        forecast = pd.DataFrame({name: weather[variable].to_numpy() for name, variable in OUTDOOR.items()}, index=after)
        excluded = x_of_y_excluded(event, self.config.events, self.config.schedule, REGRESSION_LOOKBACK)
        baseline = regression_baseline(measured, forecast, event.begin, event.end, sim_time, REGRESSION_DAYS, excluded,
                                       lookback_days=REGRESSION_LOOKBACK.days - 1, margin=margin)
        log.info("%s: event %s - %s: regression baseline on %d weekdays %s .. %s, day-of offset %.1f kW",
                 self.config.path, event.begin, event.end, len(baseline.days), baseline.days[0], baseline.days[-1],
                 baseline.adjustment.offset_kw)
        return baseline.kw.reindex(times)
