"""Campus demand response: one request (e.g. 300 kW below baseline, 14-17 h) split across buildings by their twins.

Chosen where issue 16 is silent: one coordinator process, one GP-MPC controller per building in it
(controllers/gp_mpc.py, each over its own OPC UA session, all in one asyncio loop), split once
per event, before it, and revised during it when the measured sheds fall short:

1. Curves. Shortly before the event (``lead``: the MPC horizon, the twin's lags and 3 steps), each
   building's twin forecasts, from the measured history, the event and the ``rebound_hours`` after
   it under its base schedule and under relaxed setpoints: every decided input moved during the
   event from its base value a fraction ``level`` (0, 0.1, .. 1) of the way to the end of its
   bounds that lowers power (the end whose forecast power is lower, found by the twin too). For
   each level: the curtailment (kW, mean over the event of base - relaxed power forecast), whether
   the comfort constraints of the building's ``[mpc] comfort`` hold (mean + z std inside the band at
   every event step, as the MPC's chance constraints; no worse than under the base schedule), and
   the cost: comfort (the modelled zones' mean warming above their base forecast, K h, times the
   floor area: K h m2, occupants exposed) plus ``energy_weight`` x the rebound energy above base (kWh).
2. Split (``split_request``). Each building's feasible points, with (0, 0), are reduced to their
   lower convex hull: a piecewise-linear cost of curtailment with increasing marginal cost. The
   request is filled from the cheapest segments of all buildings first (the last one in part):
   the marginal costs of the buildings that shed part of their range are then equal, the least
   total cost for the request (the equal-marginal-cost rule of economic dispatch). Parts sum to
   the request. A request beyond the campus's forecast capacity is still split, each building
   its capacity plus the excess in proportion to it, and the split says it is not feasible.
3. Control. Each building's GP-MPC then runs with its share as the event's ``curtail_kw`` (its
   own baseline, feedback and comfort), the base schedule before.
4. Re-split (``resplit``). During the event every building running one reports its measured shed
   at each step (its GP-MPC's baseline minus its measured power). Every ``REVIEW_STEPS`` event
   steps (and as many after a change; not at its last step), the campus gap is the request minus the sum of the
   buildings' sheds over those steps; when it exceeds ``RESPLIT_TOLERANCE`` of the request, it is
   added to the shares of the buildings that deliver their share (within 10 %), split on what their
   curves offer beyond their shares at equal marginal cost (the same curves: the cheapest
   curtailment left first); the buildings short of their share keep it (they are already at what
   their comfort allows, or getting there). A share only grows: the shares then sum to more than
   the request, by what the short buildings are measured not to deliver. A building that runs no
   event (share under ``MIN_SHARE_KW``) takes no part: its GP-MPC has no event baseline to measure
   a shed against.

A building without a twin cannot forecast what it can shed: the campus file is refused.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from bridge.security.settings import ClientSecurity
from bridge.tomlfile import Table, file_path, read_toml
from bridge.twin.weather import weather_series
from controllers.base import ControllerConfigError, InputRange
from controllers.gp_mpc import CurtailmentEvent, GpMpcController, MpcConfig, load_mpc
from controllers.loop import LoopOptions, LoopReport, run_controller

log = logging.getLogger(__name__)

LEVELS = np.linspace(0.0, 1.0, 11)  # relaxation levels of the curves
MIN_SHARE_KW = 0.5  # a smaller share runs no event (the base schedule)
REVIEW_STEPS = 3  # event steps between reviews of the measured sheds (30 min at 10-minute steps)
RESPLIT_TOLERANCE = 0.05  # a campus gap above this fraction of the request is re-split
SHORT_FRACTION = 0.9  # a building measured below this fraction of its share is short of it


@dataclass(frozen=True)
class CurtailmentCurve:
    """What one building can shed in an event and at what cost, forecast by its twin: points (kW,
    cost) of its feasible relaxation levels, (0, 0) first; cost in K h m2 (+ energy_weight x kWh)."""

    building: str
    kw: tuple[float, ...]
    cost: tuple[float, ...]
    levels: tuple[float, ...] = ()

    @property
    def capacity_kw(self) -> float:
        return max(self.kw)

    def segments(self) -> list[tuple[float, float]]:
        """(kW, marginal cost per kW) of the lower convex hull from (0, 0), in order: increasing cost."""
        cheapest: dict[float, float] = {}  # the least cost of each curtailment
        for k, c in zip(self.kw, self.cost):
            if k > 0:
                cheapest[k] = min(c, cheapest.get(k, c))
        hull = [(0.0, 0.0)]
        for point in sorted(cheapest.items()):
            while len(hull) >= 2 and _cross(hull[-2], hull[-1], point) <= 0:
                hull.pop()
            hull.append(point)
        return [((b[0] - a[0]), (b[1] - a[1]) / (b[0] - a[0])) for a, b in zip(hull, hull[1:])]


def _cross(o, a, b) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


@dataclass(frozen=True)
class CampusSplit:
    """The shares (kW) of a request, each building's forecast capacity, the marginal cost (per kW)
    of the last segment used, and whether the campus can shed the request (within comfort)."""

    request_kw: float
    shares: dict[str, float]
    capacity_kw: dict[str, float]
    marginal_cost: float
    feasible: bool


def split_request(curves: Mapping[str, CurtailmentCurve], request_kw: float) -> CampusSplit:
    """Split ``request_kw`` across the buildings of ``curves`` at equal marginal cost (module docstring)."""
    if request_kw < 0:
        raise ValueError(f"a curtailment request is >= 0 kW, got {request_kw}")
    capacity = {name: curve.capacity_kw for name, curve in curves.items()}
    total = sum(capacity.values())
    if request_kw > total:
        weights = capacity if total > 0 else {name: 1.0 for name in curves}
        excess = (request_kw - total) / sum(weights.values())
        shares = {name: capacity[name] + excess * weights[name] for name in curves}
        return CampusSplit(request_kw, shares, capacity, float("inf"), False)
    order = sorted(((cost, i, name, kw) for i, (name, curve) in enumerate(curves.items())
                    for kw, cost in curve.segments()), key=lambda s: (s[0], s[1]))
    shares, left, marginal, last = {name: 0.0 for name in curves}, request_kw, 0.0, None
    for cost, _, name, kw in order:
        if left <= 0:
            break
        take = min(kw, left)
        shares[name] += take
        left -= take
        marginal, last = cost, name
    if last is not None:  # the parts sum to the request exactly: rounding goes to the last building used
        shares[last] += request_kw - sum(shares.values())
    return CampusSplit(request_kw, shares, capacity, marginal, True)


def remaining_curve(curve: CurtailmentCurve, share_kw: float) -> CurtailmentCurve:
    """What ``curve`` offers beyond ``share_kw``: the segments of its lower convex hull past the
    share, from (0, 0) (kW, cost of the extra kW)."""
    kw, cost, used = [0.0], [0.0], share_kw
    for length, marginal in curve.segments():
        extra = length - min(length, max(used, 0.0))
        used -= length
        if extra > 1e-9:
            kw.append(kw[-1] + extra)
            cost.append(cost[-1] + extra * marginal)
    return CurtailmentCurve(curve.building, tuple(kw), tuple(cost))


def resplit(curves: Mapping[str, CurtailmentCurve], shares: Mapping[str, float], gap_kw: float,
            open_buildings: list[str]) -> tuple[dict[str, float], bool]:
    """New shares: ``gap_kw`` more, split across ``open_buildings`` at equal marginal cost on what
    their curves offer beyond their ``shares`` (``split_request`` on ``remaining_curve``s); and
    whether their curves hold the gap."""
    extra = split_request({name: remaining_curve(curves[name], shares[name]) for name in open_buildings}, gap_kw)
    return {name: share + extra.shares.get(name, 0.0) for name, share in shares.items()}, extra.feasible


@dataclass(frozen=True)
class CampusBuilding:
    name: str
    mpc: MpcConfig
    floor_area_m2: float


@dataclass(frozen=True)
class CampusDrConfig:
    """A campus request (times on the buildings' clocks) and the buildings that share it."""

    request_kw: float
    begin: dt.datetime
    end: dt.datetime
    buildings: tuple[CampusBuilding, ...]
    energy_weight: float = 0.0
    rebound_hours: float = 1.0
    path: str = ""


def load_campus_dr(path: str | Path) -> CampusDrConfig:
    """Read a campus demand-response file (controllers/examples/campus_dr.toml); ControllerConfigError
    naming the file and key, and refusing a building without a twin."""
    path = Path(path)
    file = Table(read_toml(path, ControllerConfigError, "campus demand-response file"), str(path), ControllerConfigError)
    file.check_keys({"request_kw", "date", "start", "end", "energy_weight", "rebound_hours", "buildings"})
    try:
        day = dt.date.fromisoformat(file.text("date"))
        begin, end = (dt.datetime.combine(day, dt.time.fromisoformat(file.text(key))) for key in ("start", "end"))
    except ValueError as exc:
        raise ControllerConfigError(f"{file.where}: date, start, end: {exc}") from None
    request = file.number("request_kw")
    if end <= begin or request <= 0:
        raise ControllerConfigError(f"{file.where}: end must be after start and request_kw > 0")
    buildings = []
    for entry in file.tables("buildings"):
        entry.check_keys({"name", "mpc"})
        name = entry.text("name")
        if "mpc" not in entry.values:
            raise ControllerConfigError(
                f"{entry.where}: building {name!r} has no twin (no 'mpc' file naming a trained model): its share of "
                f"the request cannot be forecast; train one (twinbridge twin fit) or leave the building out")
        mpc = load_mpc(file_path(entry.text("mpc"), path.parent, ControllerConfigError, f"{entry.where}: mpc"))
        buildings.append(CampusBuilding(name, mpc, mpc.tagmap.floor_area_m2 or 1.0))
    if not buildings or len({b.name for b in buildings}) != len(buildings):
        raise ControllerConfigError(f"{file.where}: [[buildings]] must name at least one building, each once")
    return CampusDrConfig(request, begin, end, tuple(buildings), file.number("energy_weight", 0.0),
                          file.number("rebound_hours", 1.0), file.where)


def curtailment_curve(building: CampusBuilding, history: pd.DataFrame, step: dt.timedelta,
                      event: tuple[dt.datetime, dt.datetime], bounds: Mapping[str, tuple[float, float]],
                      first_day: dt.date, energy_weight: float = 0.0, rebound_hours: float = 1.0,
                      levels: np.ndarray = LEVELS) -> CurtailmentCurve:
    """The building's curtailment curve for ``event`` (simulation times), forecast by its twin from
    the measured ``history`` (its last row is now); ``bounds`` of the decided inputs (module docstring)."""
    config, (begin, end) = building.mpc, event
    now = history.index[-1]
    times = pd.date_range(now + step, end + dt.timedelta(hours=rebound_hours), freq=step)
    in_event = np.asarray((times > begin) & (times <= end))
    after = np.asarray(times > end)
    base = _base_future(config, times, step, first_day)
    power_model = config.twin.models[config.power]

    def relaxed(targets: Mapping[str, float], level: float) -> pd.DataFrame:
        future = base.copy()
        for tag, target in targets.items():
            future.loc[in_event, tag] = base.loc[in_event, tag] + level * (target - base.loc[in_event, tag])
        return future

    # the end of each decided input's bounds that lowers the event's power
    ends = [relaxed({tag: bound}, 1.0) for tag in config.decide for bound in bounds[tag]]
    power, _ = power_model.forecast_scenarios(history, ends, with_std=False)
    event_power = power[:, in_event].mean(axis=1).reshape(len(config.decide), 2)
    targets = {tag: bounds[tag][int(np.argmin(event_power[i]))] for i, tag in enumerate(config.decide)}
    futures = [relaxed(targets, level) for level in levels]
    power, _ = power_model.forecast_scenarios(history, futures, with_std=False)
    hours = step / dt.timedelta(hours=1)
    shed = (power[0] - power)[:, in_event].mean(axis=1)
    cost = energy_weight * (power - power[0])[:, after].clip(min=0).sum(axis=1) * hours
    feasible = np.ones(len(levels), bool)
    z = norm.ppf(config.confidence)
    warming = np.zeros(len(levels))
    for tag, (low, high) in config.comfort.items():
        mean, std = config.twin.models[tag].forecast_scenarios(history, futures)
        margin = np.minimum(high - (mean + z * std), mean - z * std - low)[:, in_event].min(axis=1)
        feasible &= margin >= np.minimum(margin[0], 0.0) - 1e-6
        warming += (mean - mean[0])[:, in_event | after].clip(min=0).sum(axis=1) * hours
    if config.comfort:
        cost = cost + building.floor_area_m2 * warming / len(config.comfort)
    keep = feasible & (shed > 0)
    return CurtailmentCurve(building.name, (0.0, *shed[keep].tolist()), (0.0, *cost[keep].tolist()),
                            (0.0, *levels[keep].tolist()))


def _base_future(config: MpcConfig, times: pd.DatetimeIndex, step: dt.timedelta, first_day: dt.date) -> pd.DataFrame:
    """Rows of the coming steps ending at ``times``: the base schedule's inputs applied during each
    step (the tag map's defaults for inputs it does not set) and the EPW weather of the twin's
    disturbance tags (a perfect forecast, as the GP-MPC's)."""
    rows = []
    for time in times:
        scheduled = config.schedule.setpoints((time - step).to_pydatetime())
        rows.append({item.tag: scheduled.get(item.tag, item.default) for item in config.tagmap.inputs})
    future = pd.DataFrame(rows, index=times)
    weather = weather_series(config.weather, times, run_start=first_day)
    for tag in {tag for model in config.twin.models.values() for tag in model.features.disturbances}:
        future[tag] = weather[config.tagmap.output(tag).variable].to_numpy()
    return future


class CampusCoordinator:
    """One campus request, one GP-MPC per building (module docstring). ``controllers()`` gives the
    per-building controllers to run; ``split`` is set once every building's curve is in, ``resplits``
    lists the changes made during the event."""

    def __init__(self, config: CampusDrConfig):
        self.config = config
        self.curves: dict[str, CurtailmentCurve] = {}
        self.split: CampusSplit | None = None
        self.buildings = {b.name: BuildingShare(b, self) for b in config.buildings}
        self.resplits: list[tuple[dt.datetime, dict[str, float]]] = []  # (time, shares from then on)
        self._sheds: dict[str, dict[dt.datetime, float]] = {}  # building: measured shed (kW) per event step
        self._reviewed: dt.datetime | None = None  # the last event step the shares were reviewed or changed at

    def offer(self, curve: CurtailmentCurve) -> None:
        """A building's curve; the split is made when the last one comes."""
        self.curves[curve.building] = curve
        if self.split is None and len(self.curves) == len(self.buildings):
            self.split = split_request({name: self.curves[name] for name in self.buildings}, self.config.request_kw)
            log.info("%s: %.0f kW split %s (forecast capacity %s kW%s)", self.config.path, self.config.request_kw,
                     {k: round(v, 1) for k, v in self.split.shares.items()},
                     {k: round(v, 1) for k, v in self.split.capacity_kw.items()},
                     "" if self.split.feasible else ": beyond the campus's forecast capacity within comfort")

    def review(self, building: str, time: dt.datetime, shed_kw: float) -> None:
        """A building's measured shed (kW) at an event step; once every building running the event
        has reported the step, the shares are reviewed (module docstring, 4. Re-split)."""
        self._sheds.setdefault(building, {})[time] = shed_kw
        active = [name for name, share in self.buildings.items() if share.current_event is not None]
        if any(time not in self._sheds.get(name, {}) for name in active):
            return
        seen = sorted(t for t in self._sheds[building] if self._reviewed is None or t > self._reviewed)
        if len(seen) < REVIEW_STEPS or time >= self.buildings[building].event[1]:  # at the last step: too late
            return
        self._reviewed = time
        recent = {name: float(np.mean([self._sheds[name][t] for t in seen])) for name in active}
        shares = {name: self.buildings[name].share_kw for name in active}
        gap = self.config.request_kw - sum(recent.values())
        if gap <= RESPLIT_TOLERANCE * self.config.request_kw:
            return
        open_buildings = [name for name in active if recent[name] >= SHORT_FRACTION * shares[name]]
        if not open_buildings:
            log.info("%s: %s: campus %.1f kW short of the request; every building is short of its share, no re-split",
                     self.config.path, time, gap)
            return
        new, within = resplit(self.curves, shares, gap, open_buildings)
        log.info("%s: %s: measured sheds %s kW, %.1f kW short of the request: shares %s kW%s", self.config.path, time,
                 {k: round(v, 1) for k, v in recent.items()}, gap, {k: round(v, 1) for k, v in new.items()},
                 "" if within else " (beyond the forecast capacity)")
        for name, share in new.items():
            if share != shares[name]:
                self.buildings[name].revise(share)
        self.resplits.append((time, new))

    async def run(self, endpoint: str, campus: str | None = None, options: LoopOptions | None = None,
                  security: ClientSecurity | None = None) -> dict[str, LoopReport]:
        """Every building's controller against the bridge at ``endpoint``, concurrently; their reports."""
        options, security = options or LoopOptions(), security or ClientSecurity()
        reports = await asyncio.gather(*(run_controller(share, endpoint, name, campus, options, security)
                                         for name, share in self.buildings.items()))
        return dict(zip(self.buildings, reports))


class BuildingShare:
    """One building's controller in a campus event: its GP-MPC under the base schedule until the
    split, then a fresh GP-MPC whose event asks its share. Records the measured history its curve
    needs (the twin's lags)."""

    def __init__(self, building: CampusBuilding, coordinator: CampusCoordinator):
        self.building, self.coordinator = building, coordinator
        config = building.mpc
        self.event = (config.schedule.simulation_time(coordinator.config.begin),
                      config.schedule.simulation_time(coordinator.config.end))
        self.mpc = GpMpcController(dataclasses.replace(config, events=()))
        self.share_kw: float | None = None
        self.current_event: CurtailmentEvent | None = None  # the GP-MPC's event once it runs one
        self.decisions: list = []  # every optimisation of the building's GP-MPC (gp_mpc.Decision)
        self._inputs: dict[str, InputRange] = {}
        self._rows: list[dict[str, float]] = []
        self._times: list[dt.datetime] = []
        self._last: dict[str, float] | None = None
        self._first_day: dt.date | None = None  # the run's first day: typical-year weather is read in sequence from it
        self._curve_done = False

    def check(self, inputs: Mapping[str, InputRange]) -> None:
        self.mpc.check(inputs)
        self._inputs = dict(inputs)

    def decide(self, sim_time: dt.datetime, outputs: Mapping[str, float]) -> dict[str, float]:
        if not (self._times and sim_time == self._times[-1]):
            self._remember(sim_time, outputs)
            step = self._step()
            if step is not None and not self._curve_done and sim_time >= self.event[0] - step * self._lead():
                self._curve_done = True
                self.coordinator.offer(self._curve(step))
            split = self.coordinator.split
            if split is not None and self.share_kw is None:
                self._start_event(split.shares[self.building.name])
            event = self.current_event
            power = self.building.mpc.power
            if event is not None and event.contains(sim_time) and power in outputs:
                baseline = self.mpc.baselines.get(event)
                if baseline is not None and sim_time in baseline.index:
                    self.coordinator.review(self.building.name, sim_time, float(baseline[sim_time] - outputs[power]))
        self._last = self.mpc.decide(sim_time, outputs)
        return dict(self._last)

    def _start_event(self, share: float) -> None:
        self.share_kw = share
        self.decisions.extend(self.mpc.decisions)
        self.current_event = CurtailmentEvent(*self.event, share) if share >= MIN_SHARE_KW else None
        events = (self.current_event,) if self.current_event else ()
        self.mpc = GpMpcController(dataclasses.replace(self.building.mpc, events=events))
        self.mpc.check(self._inputs)
        log.info("%s: share %.1f kW of the campus request", self.building.name, share)

    def revise(self, share: float) -> None:
        """A new share of a running event (a re-split): the GP-MPC's event asks it from the next decision on."""
        self.share_kw = share
        self.current_event = self.mpc.revise(self.current_event, share)

    def _lead(self) -> int:
        return self.building.mpc.horizon + self._max_lag() + 3

    def _max_lag(self) -> int:
        return max(model.features.max_lag for model in self.building.mpc.twin.models.values())

    def _step(self) -> dt.timedelta | None:
        return self._times[-1] - self._times[-2] if len(self._times) >= 2 else None

    def _remember(self, sim_time: dt.datetime, outputs: Mapping[str, float]) -> None:
        """The measured row at ``sim_time``: outputs at the end of the step, the inputs applied during it."""
        config = self.building.mpc
        applied = self._last or {item.tag: config.schedule.setpoints(sim_time).get(item.tag, item.default)
                                 for item in config.tagmap.inputs}
        self._rows.append({**{tag: float(value) for tag, value in outputs.items()}, **applied})
        self._times.append(sim_time)
        self._first_day = self._first_day or sim_time.date()
        keep = self._max_lag() + 2
        del self._rows[:-keep], self._times[:-keep]

    def _curve(self, step: dt.timedelta) -> CurtailmentCurve:
        config = self.building.mpc
        bounds = {tag: config.bounds.get(tag, (self._inputs[tag].low, self._inputs[tag].high)) for tag in config.decide}
        history = pd.DataFrame(self._rows, index=pd.DatetimeIndex(self._times))
        curve = curtailment_curve(self.building, history, step, self.event, bounds, self._first_day,
                                  self.coordinator.config.energy_weight, self.coordinator.config.rebound_hours)
        log.info("%s: can shed up to %.1f kW in the event within comfort (forecast)", self.building.name, curve.capacity_kw)
        return curve

    @property
    def event_reports(self) -> dict:
        """The building's GP-MPC's event reports (bridge.tracking.dr_event.EventReport)."""
        return self.mpc.event_reports

    @property
    def all_decisions(self) -> list:
        return self.decisions + self.mpc.decisions
