"""The control loop: one building, either clock mode, reconnecting after drops.

lockstep: poll the building's control tags and outputs (one Read per poll: every 1 ms for the first
50 ms of a wait, then backing off to every 50 ms) until OutputReady is True for a step not yet
handled; decide; write all inputs in one Write; raise InputReady.
exchange: lockstep through the bridge's ``Control.Exchange`` method: one Call per step carries
all inputs in and returns the next step's outputs (no polling); the simulation time of a step is
worked out from two (Step, SimTime) readings. A call the bridge answers without its inputs (Applied
false: later than the lockstep timeout) is logged as a warning naming the step decided on.
paced: every ``period_s`` wall seconds read the outputs and SimTime, decide, write the inputs.

When the bridge or the network drops, the loop closes the session, reconnects with exponential
backoff (browsing the building again) and resumes at whatever step the bridge is at. Every wait
is bounded: ``step_timeout_s`` for the bridge to show a new step, ``reconnect_timeout_s`` for it
to come back, ``request_timeout_s`` for each OPC UA request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from asyncua import ua

from bridge.protocol import Status
from bridge.security.settings import ClientSecurity
from controllers.base import Controller, ControllerError
from controllers.client import BridgeClient, ExchangeRefused, StepState

log = logging.getLogger(__name__)

MODES = ("lockstep", "exchange", "paced")
ENDED = "Ended"  # final status when the run ended but the bridge closed before its Status could be read
# What a dropped server or network looks like to an asyncua client.
CONNECTION_ERRORS = (OSError, ConnectionError, TimeoutError, asyncio.TimeoutError, ua.UaError)
# Status codes of a lost session or channel (worth reconnecting); any other status code is the
# bridge refusing a request (a viewer account writing, a bad value) and reconnecting cannot help.
CONNECTION_STATUS_CODES = frozenset(getattr(ua.StatusCodes, name) for name in (
    "BadConnectionClosed", "BadConnectionRejected", "BadDisconnect", "BadSessionClosed", "BadSessionIdInvalid",
    "BadSessionNotActivated", "BadSecureChannelClosed", "BadSecureChannelIdInvalid", "BadSecureChannelTokenUnknown",
    "BadCommunicationError", "BadNoCommunication", "BadNotConnected", "BadServerNotConnected", "BadServerHalted",
    "BadShutdown", "BadTimeout", "BadRequestTimeout", "BadTcpInternalError", "BadTooManySessions", "BadServerTooBusy"))


def is_connection_lost(exc: BaseException) -> bool:
    """True when ``exc`` (one of CONNECTION_ERRORS) means the session or network is gone, False
    when the bridge answered and refused the request."""
    return not isinstance(exc, ua.UaStatusCodeError) or exc.code in CONNECTION_STATUS_CODES


@dataclass(frozen=True)
class LoopOptions:
    mode: str = "lockstep"
    period_s: float = 1.0  # paced: wall seconds between two actions
    poll_s: float = 0.001  # lockstep: wall seconds between the first reads while waiting for OutputReady
    poll_max_s: float = 0.05  # lockstep: the interval doubles from poll_s up to this while the wait lasts
    step_timeout_s: float = 600.0  # longest wait for the bridge to show a new step
    reconnect_timeout_s: float = 120.0  # longest time the bridge may stay unreachable
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 5.0
    request_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if min(self.period_s, self.poll_s, self.step_timeout_s, self.reconnect_timeout_s) <= 0:
            raise ValueError("period, poll interval and timeouts must be positive")
        if self.poll_max_s < self.poll_s:
            raise ValueError(f"poll_max_s ({self.poll_max_s:g} s) must be >= poll_s ({self.poll_s:g} s)")


@dataclass
class LoopReport:
    """What a control loop did, for logs and benchmarks."""

    final_status: str = ""
    actions: int = 0  # times the controller wrote inputs
    not_applied: int = 0  # exchange: decisions the bridge answered without (Applied false), counted in actions
    reconnects: int = 0
    last_step: int | None = None
    last_done: float = 0.0  # wall time the last step was handled
    # lockstep: OutputReady seen -> InputReady raised; exchange: the whole Exchange call (the bridge's step included)
    handle_times_s: list[float] = field(default_factory=list)
    step_periods_s: list[float] = field(default_factory=list)  # lockstep, exchange: between two handled steps
    # BOPTEST's t_c(k), controller plus exchange, the simulation left out: lockstep, OutputReady seen -> InputReady
    # raised; exchange, the previous Exchange answered -> this one called (the call's own transport is not
    # separable from the bridge's step it waits for, and is left out)
    control_times_s: list[float] = field(default_factory=list)
    step_s: float | None = None  # simulated seconds per step (the control step), from two handled steps
    last_sim_time: dt.datetime | None = None
    # a controller's demand-response event reports (bridge.tracking.dr_event.EventReport), copied from its
    # ``event_reports`` mapping (the GP-MPC's) when the loop ends
    event_reports: list = field(default_factory=list)

    @property
    def time_rat(self) -> float | None:
        """BOPTEST's computational time ratio (``time_rat``, Blum et al. 2021; ``get_computational_time_ratio``):
        the mean over steps of t_c(k) / control step; None before two steps (lockstep and exchange only)."""
        if not self.control_times_s or not self.step_s:
            return None
        return sum(self.control_times_s) / len(self.control_times_s) / self.step_s


async def run_controller(controller: Controller, endpoint: str, building: str, campus: str | None = None,
                         options: LoopOptions = LoopOptions(), security: ClientSecurity = ClientSecurity()) -> LoopReport:
    """Drive ``building`` with ``controller`` until the building is Finished, Stopped or Faulted
    (``security``: how to connect to a secured bridge)."""
    report = LoopReport()
    # An Exchange call lasts until the bridge's next step: bound it by the step timeout, not the request timeout.
    request_timeout_s = options.step_timeout_s if options.mode == "exchange" else options.request_timeout_s
    client = BridgeClient(endpoint, building, campus, request_timeout_s, security)
    while True:
        await _connect(client, options)
        try:
            _check_clock(client, options.mode)
            controller.check(client.inputs)
            loop = {"lockstep": _lockstep, "exchange": _exchange, "paced": _paced}[options.mode]
            report.final_status = await loop(client, controller, options, report)
            report.event_reports = list(getattr(controller, "event_reports", {}).values())
            log.info("%s is %s after %d actions (%d not applied, %d reconnects)", building, report.final_status,
                     report.actions, report.not_applied, report.reconnects)
            return report
        except CONNECTION_ERRORS as exc:
            if not is_connection_lost(exc):
                raise ControllerError(f"{building}: the bridge at {endpoint} refused a request at step "
                                      f"{report.last_step}: {ua.StatusCode(exc.code).name} ({exc})") from None
            report.reconnects += 1
            log.warning("%s: lost the bridge at step %s (%s: %s); reconnecting", building, report.last_step,
                        type(exc).__name__, exc)
        finally:
            await client.close()


async def _connect(client: BridgeClient, options: LoopOptions) -> None:
    """Connect and browse, retrying with exponential backoff for up to ``reconnect_timeout_s``."""
    deadline = time.monotonic() + options.reconnect_timeout_s
    delay = options.backoff_initial_s
    while True:
        try:
            await client.connect()
            log.info("connected to %s, building %s/%s, inputs %s", client.endpoint, client.campus, client.building,
                     sorted(client.inputs))
            return
        except (*CONNECTION_ERRORS, ControllerError) as exc:
            if isinstance(exc, CONNECTION_ERRORS) and not is_connection_lost(exc):
                raise ControllerError(f"{client.endpoint} refused the connection to building {client.building!r}: "
                                      f"{ua.StatusCode(exc.code).name} ({exc})") from None
            if time.monotonic() + delay > deadline:
                raise ControllerError(f"cannot reach building {client.building!r} at {client.endpoint} within "
                                      f"{options.reconnect_timeout_s:g} s: {type(exc).__name__}: {exc}") from None
            log.info("bridge not reachable (%s: %s); retrying in %.1f s", type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, options.backoff_max_s)


def _check_clock(client: BridgeClient, mode: str) -> None:
    """Refuse a loop that cannot work with the bridge's clock (a lockstep loop would wait for an OutputReady
    that a paced or fast bridge never raises); warn about one that works badly."""
    clock = client.clock
    if mode == "lockstep" and clock in ("paced", "fast"):
        raise ControllerError(f"{client.building}: the bridge at {client.endpoint} runs a {clock} clock, which hands "
                              f"no step to controllers (OutputReady stays False): use --mode paced or exchange "
                              f"with it, or run the bridge with --clock lockstep")
    if mode == "paced" and clock == "lockstep":
        log.warning("%s: the bridge runs a lockstep clock and waits at every step for an InputReady that a paced "
                    "loop never raises (each step takes the lockstep timeout): use --mode lockstep or exchange",
                    client.building)


async def _lockstep(client: BridgeClient, controller: Controller, options: LoopOptions, report: LoopReport) -> str:
    while True:
        seen, state = await _next_step(client, options, report)
        if state.finished:
            return state.status
        await _act(client, controller, state)
        await client.raise_input_ready()
        _handled(report, state.step, seen, state.sim_time)


async def _exchange(client: BridgeClient, controller: Controller, options: LoopOptions, report: LoopReport) -> str:
    if not client.has_exchange:
        raise ControllerError(f"{client.endpoint} offers no Control.Exchange for {client.building}; use lockstep")
    clock = _SimClock()
    inputs = await client.read_inputs()  # tags the controller leaves alone keep their values
    while True:
        seen, state = await _next_step(client, options, report)
        if state.finished:
            return state.status
        clock.learn(state.step, state.sim_time)
        step, sim_time, outputs = state.step, state.sim_time, state.outputs
        while True:
            inputs |= controller.decide(sim_time, outputs)
            calling = time.monotonic()
            try:
                next_step, outputs, applied = await client.exchange(inputs)
            except ExchangeRefused as exc:
                if exc.code in (ua.StatusCodes.BadOutOfRange, ua.StatusCodes.BadInvalidArgument):
                    raise
                if exc.code == ua.StatusCodes.BadInvalidState:  # the building's run is over
                    return await _status_after_run(client)
                break  # no next step in time: look at the control tags again
            if not applied:
                report.not_applied += 1
                log.warning("%s: the inputs decided on step %d were not applied (the bridge answered with step %d "
                            "without them)", client.building, step, next_step)
            _handled(report, step, seen, sim_time, calling - seen)
            seen, step = time.monotonic(), next_step
            sim_time = clock.time_of(step)
            if sim_time is None:  # not calibrated yet: one extra Read
                state = await client.read_state()
                clock.learn(state.step, state.sim_time)
                sim_time = clock.time_of(step)


async def _status_after_run(client: BridgeClient) -> str:
    """The building's final status; ``ENDED`` when the bridge shut down before it could be read."""
    try:
        return (await client.read_state()).status
    except CONNECTION_ERRORS:
        log.info("%s: the run ended and the bridge closed before its final status could be read", client.building)
        return ENDED


async def _next_step(client: BridgeClient, options: LoopOptions, report: LoopReport) -> tuple[float, StepState]:
    """Poll until the bridge shows a step with OutputReady not yet handled, or the run is over.
    Returns (wall time of the read that saw it, state). Reads come every ``poll_s`` for the first
    ``poll_max_s`` of the wait (a bridge stepping alone answers within a few ms, and this keeps its
    handshake as fast as before), then the interval doubles up to ``poll_max_s`` (a paced bridge, or
    other controllers of a lockstep campus taking their time): a long wait costs about
    poll_max_s / poll_s + wait / poll_max_s reads, and the interval never exceeds the wait so far."""
    seen_first = time.monotonic()
    deadline = seen_first + options.step_timeout_s
    interval = options.poll_s
    while True:
        seen = time.monotonic()
        state = await client.read_state()
        if state.finished or (state.output_ready and state.step != report.last_step):
            return seen, state
        if time.monotonic() > deadline:
            raise ControllerError(f"{client.building}: no new step within {options.step_timeout_s:g} s "
                                  f"(status {state.status}, step {state.step})")
        await asyncio.sleep(interval)
        if time.monotonic() - seen_first >= options.poll_max_s:
            interval = min(2 * interval, options.poll_max_s)


def _handled(report: LoopReport, step: int, seen: float, sim_time: dt.datetime | None,
             control_s: float | None = None) -> None:
    """Record a handled step: ``seen`` when its outputs were seen, ``control_s`` BOPTEST's t_c(k) when it is not
    seen-to-done (exchange)."""
    done = time.monotonic()
    report.handle_times_s.append(done - seen)
    report.control_times_s.append(done - seen if control_s is None else control_s)
    if report.actions and report.last_done:
        report.step_periods_s.append(done - report.last_done)
    if sim_time is not None and report.last_sim_time is not None and report.last_step is not None \
            and step > report.last_step:
        report.step_s = (sim_time - report.last_sim_time).total_seconds() / (step - report.last_step)
    report.last_done, report.last_step, report.last_sim_time = done, step, sim_time
    report.actions += 1


class _SimClock:
    """Simulation time of a step, from two (step, SimTime) readings: time = start + step * step_s."""

    def __init__(self) -> None:
        self.readings: dict[int, dt.datetime] = {}

    def learn(self, step: int, sim_time: dt.datetime) -> None:
        self.readings[step] = sim_time

    def time_of(self, step: int) -> dt.datetime | None:
        if step in self.readings:
            return self.readings[step]
        if len(self.readings) < 2:
            return None
        (k0, t0), (k1, t1) = sorted(self.readings.items())[:2]
        return t0 + (t1 - t0) / (k1 - k0) * (step - k0)


async def _paced(client: BridgeClient, controller: Controller, options: LoopOptions, report: LoopReport) -> str:
    deadline = time.monotonic() + options.step_timeout_s
    seen_step = None  # the last step read, Running or not: only a new one pushes the deadline back
    while True:
        state = await client.read_state()
        if state.finished:
            return state.status
        if state.step != seen_step:
            seen_step = state.step
            deadline = time.monotonic() + options.step_timeout_s
        if state.status == Status.RUNNING:
            await _act(client, controller, state)
            report.last_step = state.step
            report.actions += 1
        if time.monotonic() > deadline:
            raise ControllerError(f"{client.building}: simulation did not advance within "
                                  f"{options.step_timeout_s:g} s (status {state.status}, step {state.step})")
        await asyncio.sleep(options.period_s)


async def _act(client: BridgeClient, controller: Controller, state: StepState) -> None:
    values = controller.decide(state.sim_time, state.outputs)
    if values:
        await client.write_inputs(values)
