"""The campus clock: steps every building of a campus together and keeps the tags current.

No building starts step k+1 before every running building has finished step k. Clock modes:

- ``lockstep``: publish outputs, raise OutputReady, wait (up to ``lockstep_timeout_s``) for each
  building's controller to raise InputReady, then advance. A silent controller is logged and its
  building advances with the inputs its tags hold (the last written values, or the tag-map defaults).
- ``paced``: simulated time runs ``speed`` times faster than wall time; inputs are whatever the
  tags hold when a step starts. A step that overruns its wall slot is logged (``Pace``), and the
  schedule moves later by the overrun unless the config asks to catch up.
- ``fast``: as fast as the engines go. The next step is sent to the engines before the outputs of
  the last one are published and recorded, so that work overlaps the engines' computation.

No step starts while the campus is paused. A run ends when no building is running
any more (each one Finished, Faulted or Stopped by its Stop method) or when the campus is stopped
or reset; then its historian is closed and its KPIs are written (if a step was recorded).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import importlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from bridge.config import BuildingConfig, CampusConfig
from bridge.engines.base import Engine, EngineFault, Sample
from bridge.historian import Historian
from bridge.tagmap import UNBOUNDED, TagMap

if TYPE_CHECKING:
    from bridge.server import Exchange, TagServer

log = logging.getLogger(__name__)


def make_engine(building: BuildingConfig, config: CampusConfig, workdir: Path) -> Engine:
    """The engine a building's config asks for; with ``[campus] executor = "ray"``, one that runs it in a
    Ray actor (bridge/engines/ray_actor.py)."""
    if config.executor.kind == "ray":
        from bridge.engines.ray_actor import RayEngine

        return RayEngine(building, config, workdir)
    if building.engine == "twin":
        from bridge.engines.twin import TwinEngine

        return TwinEngine(building.name, building.twin_model, building.weather, building.tagmap, config.period)
    if building.engine == "energyplus-api":
        from bridge.engines.energyplus_api import EnergyPlusApiEngine as EnergyPlusEngine
    else:
        from bridge.engines.external_interface import ExternalInterfaceEngine as EnergyPlusEngine

    return EnergyPlusEngine(building.name, building.model, building.weather, building.tagmap, config.period, workdir,
                            config.engine_start_timeout_s, config.engine_step_timeout_s)


async def _outcome(awaitable: Awaitable):
    """The result of ``awaitable``, or the exception it raised (as ``gather(return_exceptions=True)``)."""
    try:
        return await awaitable
    except Exception as exc:
        return exc


async def _raise(exc: Exception):
    """An awaitable that raises ``exc``: a step that failed before it began."""
    raise exc


def served_tagmap(building: BuildingConfig, config: CampusConfig) -> TagMap:
    """The tags a building shows: its tag map, plus a ``<Tag>Std`` output per modelled tag for a twin."""
    if building.engine != "twin":
        return building.tagmap
    from bridge.engines.twin import TwinEngine

    return TwinEngine(building.name, building.twin_model, building.weather, building.tagmap,
                      config.period).published_tagmap


def campus_outcome(statuses: list[str]) -> str:
    """The status of a campus whose run is over, from its buildings' (each Finished, Stopped or Faulted):
    Faulted if any faulted, else Finished if any finished (the others were stopped), else Stopped."""
    if "Faulted" in statuses:
        return "Faulted"
    return "Finished" if "Finished" in statuses else "Stopped"


class Pace:
    """Wall-clock schedule of a paced run: step k is handed to the engines at ``turn(k)`` = anchor + k *
    ``slot_s`` (the step length over the speed) and is due on the tags by ``turn(k + 1)``, the end of its slot.

    A step still computing when its slot ends overruns it: a warning names the buildings not done yet, and
    the first step in time again logs how long the campus was behind. At most one overrun a minute is
    warned about; the others are counted into the next warning (seconds behind: from the end of the first
    late slot to the publication of the last late step). Without ``catch_up`` the schedule moves
    later by each overrun (as after a pause): the next step starts at once and the ones after it a slot
    apart, no burst. With ``catch_up`` the steps run back to back until the schedule is met again."""

    WARNING_INTERVAL_S = 60.0

    def __init__(self, slot_s: float, catch_up: bool):
        self.slot_s, self.catch_up = slot_s, catch_up
        self.anchor = 0.0  # monotonic wall time (s) of step 0's turn
        self.computing: set[str] = set()  # buildings whose step is in flight
        self._behind_since: float | None = None  # end of the slot the current overrun began with
        self._behind_until = 0.0  # when its last late step was published
        self._late_steps = 0  # steps published after their slot in the current overrun
        self._moved_s = 0.0  # how much later the current overrun moved the schedule
        self._warned = False  # the current overrun was warned about
        self._last_warning = -math.inf
        self._unwarned = (0, 0.0)  # overruns since the last warning that were not warned about, seconds behind

    def start(self, now: float) -> None:
        """Step 0 is at ``now`` (monotonic s); nothing in flight, no overrun going."""
        self.anchor, self._behind_since = now, None
        self.computing.clear()

    def shift(self, seconds: float) -> None:
        """Move the schedule ``seconds`` later (a pause)."""
        self.anchor += seconds

    def turn(self, step: int) -> float:
        """Monotonic wall time (s) at which ``step`` is handed to the engines."""
        return self.anchor + step * self.slot_s

    async def wait_for_turn(self, step: int) -> None:
        delay = self.turn(step) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def watch(self, building: str, outputs: Awaitable[Sample | None]) -> Awaitable[Sample | None]:
        """``outputs`` of ``building``'s step, counted in ``computing`` until they are in."""
        self.computing.add(building)
        return self._computed(building, outputs)

    async def _computed(self, building: str, outputs: Awaitable[Sample | None]) -> Sample | None:
        try:
            return await outputs
        finally:
            self.computing.discard(building)

    def alarm(self, step: int) -> asyncio.TimerHandle:
        """Report an overrun if ``step`` is not in when its slot ends (cancel the handle when it is)."""
        return asyncio.get_running_loop().call_later(max(self.turn(step + 1) - time.monotonic(), 0),
                                                     self._overrun, step)

    def _overrun(self, step: int) -> None:
        """The slot of ``step`` is over before all its outputs are in: an overrun begins (if none is going)."""
        if self._behind_since is not None:
            return
        self._behind_since = self._behind_until = self.turn(step + 1)
        self._late_steps, self._moved_s = 0, 0.0
        now = time.monotonic()
        self._warned = now - self._last_warning >= self.WARNING_INTERVAL_S
        if not self._warned:
            return
        count, behind_s = self._unwarned
        waiting = f", waiting for {', '.join(sorted(self.computing))}" if self.computing else ""
        earlier = f" ({count} more overrun(s) since the last warning, {behind_s:.1f} s behind in all)" if count else ""
        policy = "the steps after it catch up" if self.catch_up else "the schedule moves later by the overrun"
        log.warning("paced clock: step %d overruns its %.3g s wall slot%s; %s%s", step, self.slot_s, waiting,
                    policy, earlier)
        self._last_warning, self._unwarned = now, (0, 0.0)

    def published(self, step: int) -> None:
        """``step`` is on the tags: an overrun goes on (and, without catch_up, the schedule moves later) if it
        is past its slot, else the overrun going on ends."""
        now, due = time.monotonic(), self.turn(step + 1)
        if now <= due:
            if self._behind_since is not None:
                self._back_on_pace(step)
            return
        self._overrun(step)
        self._late_steps += 1
        self._behind_until = now
        if not self.catch_up:
            self.anchor += now - due
            self._moved_s += now - due

    def _back_on_pace(self, step: int) -> None:
        behind_s = self._behind_until - self._behind_since
        if self._warned:
            moved = f"; the schedule moved {self._moved_s:.1f} s later" if self._moved_s else ""
            log.warning("paced clock: back on pace at step %d after %.1f s behind (%d late step(s))%s", step,
                        behind_s, self._late_steps, moved)
        else:
            count, total_s = self._unwarned
            self._unwarned = (count + 1, total_s + behind_s)
        self._behind_since = None


class StepRate:
    """Steps per wall second over the last ``window_s`` (at least over the last two samples)."""

    def __init__(self, window_s: float = 60.0):
        self.window_s = window_s
        self.samples: deque[tuple[float, int]] = deque()

    def restart(self, now: float, step: int) -> None:
        """Count from ``step`` at ``now`` (the run starts or resumes)."""
        self.samples.clear()
        self.samples.append((now, step))

    def add(self, now: float, step: int) -> float:
        """Note ``step`` done at ``now``; the rate since the oldest sample of the window (0 with none yet)."""
        self.samples.append((now, step))
        while len(self.samples) > 2 and self.samples[1][0] <= now - self.window_s:
            self.samples.popleft()
        then, first = self.samples[0]
        return (step - first) / (now - then) if now > then else 0.0


def eta(remaining_steps: int, rate: float) -> str:
    """Wall time left at ``rate`` steps/s, as H:MM:SS ("unknown" when nothing advances)."""
    if remaining_steps <= 0:
        return "0:00:00"
    if rate <= 0:
        return "unknown"
    return str(dt.timedelta(seconds=round(remaining_steps / rate)))


@dataclass
class BuildingState:
    config: BuildingConfig
    tagmap: TagMap  # what the server, historian and KPIs see (served_tagmap)
    engine: Engine | None = None
    status: str = "Idle"
    sample: Sample | None = None
    applied: dict[str, float] = field(default_factory=dict)  # inputs of the step that produced ``sample``
    sample_step: int = -1  # step whose outputs ``sample`` holds
    published: Sample | None = None  # the outputs on the tags
    published_step: int = -1  # the step of ``published``
    exchanged_step: int = -1  # the step the last Control.Exchange call answered with
    exchange_caller: object = None  # the client session that made that call
    launched_step: int = -1  # the step the engine computes (or last computed) from the input tags it was handed
    input_ready: asyncio.Event = field(default_factory=asyncio.Event)
    awaiting_step: int = -1  # lockstep: the step whose controller answer the bridge is waiting for
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set (and replaced) by ``notify``

    @property
    def name(self) -> str:
        return self.config.name

    @functools.cached_property
    def power_tags(self) -> tuple[str, ...]:
        """Outputs summed into the campus TotalElectricPower."""
        return tuple(o.tag for o in self.tagmap.outputs if o.role == "electric_power")

    @property
    def running(self) -> bool:
        return self.status in ("Running", "Paused")

    @property
    def live(self) -> bool:
        """Its run is starting or going."""
        return self.status in ("Idle", "Running", "Paused")

    def answer(self) -> None:
        """A controller raised InputReady: it counts only while the bridge waits for this building, so a
        late answer to a step that already timed out cannot release the next step unseen."""
        if self.awaiting_step >= 0:
            self.input_ready.set()

    def begin_turn(self, step: int) -> None:
        self.input_ready.clear()
        self.awaiting_step = step
        self.notify()

    def end(self, status: str) -> None:
        """Its run is over: release the bridge's wait for its controller and wake every waiter."""
        self.status = status
        self.input_ready.set()
        self.notify()

    def restart(self) -> None:
        """Back to Idle for a new run."""
        self.status, self.sample, self.published, self.applied = "Idle", None, None, {}
        self.sample_step = self.published_step = self.exchanged_step = self.launched_step = self.awaiting_step = -1
        self.exchange_caller = None

    def notify(self) -> None:
        """Wake everyone waiting for a change of this building (a turn, new outputs, the end of its run)."""
        self.changed.set()
        self.changed = asyncio.Event()

    async def until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        """Wait until ``condition()`` holds, checked at each change; TimeoutError after ``timeout_s`` in all."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                await self.changed.wait()


class Campus:
    """Lifecycle (Idle -> Running <-> Paused -> Finished | Stopped | Faulted) of one campus run."""

    def __init__(self, config: CampusConfig,
                 engine_factory: Callable[[BuildingConfig, CampusConfig, Path], Engine] = make_engine):
        self.config = config
        self.server: TagServer | None = None  # given by build_address_space
        self.engine_factory = engine_factory
        self.buildings = [BuildingState(b, served_tagmap(b, config)) for b in config.buildings]
        self.status = "Idle"
        self.step = 0
        self.run_index = 0
        self.historian: Historian | None = None
        self.run_path: Path | None = None
        self.started = asyncio.Event()
        self.launched = asyncio.Event()  # the engines of the run are launching (or the run is over)
        self.serving = asyncio.Event()  # set once the server listens: no step is taken before clients can connect
        self.done = asyncio.Event()  # the run is over and no new one was started: the daemon may end
        self._resume = asyncio.Event()
        self._resume.set()
        self._lifecycle = asyncio.Lock()  # Start, Stop and Reset one at a time
        self._task: asyncio.Task | None = None
        self._kpi_module: asyncio.Future | None = None
        self._wall_start = 0.0
        self._pause_wall = 0.0
        self._last_progress = 0.0
        self._rate = StepRate()  # of the progress line
        self.pace = Pace(config.period.step_s / config.speed, config.catch_up)  # paced clock only
        self._unrecorded: list = []  # historian rows of the last published step
        self._reported: set[tuple[str, str, str]] = set()  # (building, tag, status) of this run, logged

    # ----- address space and methods -------------------------------------------------------

    async def build_address_space(self, server: TagServer) -> None:
        """Serve the campus through ``server`` (initialized, not necessarily listening yet); the engines step
        once ``serving`` is set, when it listens."""
        self.server = server
        await self.server.add_campus_nodes(self._methods(None), self._total_power_high_kw())
        await self._set_control(None, Clock=self.config.clock)
        for building in self.buildings:
            await self.server.add_building(building.name, building.tagmap, self._methods(building),
                                           building.answer, self._exchange(building))
            await self._set_control(building.name, Clock=self.config.clock)

    def _total_power_high_kw(self) -> float:
        """High end of TotalElectricPower's EURange: the sum of the buildings' electric power ranges."""
        return sum(b.tagmap.output_range(b.tagmap.output(tag))[1] for b in self.buildings for tag in b.power_tags) \
            or UNBOUNDED[1]

    def _exchange(self, building: BuildingState) -> Exchange:
        """Control.Exchange of ``building``: write the caller's inputs when the bridge asks for them, raise
        InputReady, answer with the next step. In lockstep the inputs are for the step after the one the
        caller's previous call answered with; if the bridge has moved past that step (its controller was
        later than the lockstep timeout) they are not written and the call answers at once with the newest
        step, whose outputs the caller then decides on. The answer says whether the inputs drove its step:
        not for a late call, nor when the engine was handed the step's inputs before the write ended.
        ``caller`` identifies the client session: the first call of a session (a controller that replaces
        one that died, say) is taken for the step the bridge is at, not as late for its predecessor's."""

        async def exchange(write_inputs: Callable[[], Awaitable[None]], caller: object) -> tuple[int, list[float], bool]:
            await building.until(lambda: building.published_step >= 0 or not building.live,
                                 self.config.engine_start_timeout_s)  # the first outputs
            lockstep = self.config.clock == "lockstep"
            follows = lockstep and building.exchanged_step >= 0 and caller is building.exchange_caller
            seen = building.exchanged_step if follows else building.published_step
            timeout_s = self.config.lockstep_timeout_s + self.config.engine_step_timeout_s
            if lockstep and not await self._turn_after(building, seen, timeout_s):
                log.warning("%s: Exchange inputs for the step after %d came when the bridge was at step %d "
                            "(lockstep timeout): not applied", building.name, seen, building.published_step)
                return self._exchange_answer(building, caller, False)
            if not building.running:
                raise ValueError(f"{building.name} is {building.status}")
            await write_inputs()
            written = building.launched_step  # steps after it are computed from the written inputs
            if building.awaiting_step == seen:  # lockstep: a write outlasting its turn must not release the next
                building.answer()
            await building.until(lambda: building.published_step > seen or not building.running, timeout_s)
            if building.published_step <= seen:
                raise ValueError(f"{building.name} is {building.status}")
            return self._exchange_answer(building, caller, building.published_step > written)

        return exchange

    @staticmethod
    async def _turn_after(building: BuildingState, step: int, timeout_s: float) -> bool:
        """Lockstep: wait until the bridge asks for the inputs after ``step`` (or the building's run is
        over); False if it has published a newer step instead."""
        await building.until(lambda: building.awaiting_step == step or building.published_step > step
                             or not building.running, timeout_s)
        return building.published_step <= step

    @staticmethod
    def _exchange_answer(building: BuildingState, caller: object, applied: bool) -> tuple[int, list[float], bool]:
        building.exchanged_step, building.exchange_caller = building.published_step, caller
        outputs = building.published.outputs
        return building.published_step, [float(outputs[o.tag]) for o in building.tagmap.outputs], applied

    def _methods(self, building: BuildingState | None):
        async def stop() -> str:
            if building is None:
                await self.stop()
                return "campus stopped"
            await self.stop_building(building)
            return f"{building.name} stopped"

        return {"Start": self.start, "Pause": self.pause, "Resume": self.resume, "Reset": self.reset, "Stop": stop}

    async def start(self) -> str:
        async with self._lifecycle:
            if self.status != "Idle":
                raise ValueError(f"cannot start: campus is {self.status}")
            self._start_run()
        return "started"

    def _start_run(self) -> None:
        self.status = "Running"  # on the tags once the engines are up and the address space is built
        self._resume.set()
        self.done.clear()
        if self._kpi_module is None:  # pandas, imported while the engines start, when the bridge mostly waits
            self._kpi_module = asyncio.ensure_future(asyncio.to_thread(importlib.import_module, "bridge.kpi"))
        self._wall_start = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"campus {self.config.name}")
        self.started.set()

    async def pause(self) -> str:
        if self.status != "Running":
            raise ValueError(f"cannot pause: campus is {self.status}")
        self._resume.clear()
        self._pause_wall = time.monotonic()
        await self._set_status("Paused")
        log.info("paused at step %d", self.step)
        return "paused"

    async def resume(self) -> str:
        if self.status != "Paused":
            raise ValueError(f"cannot resume: campus is {self.status}")
        now = time.monotonic()
        self._wall_start += now - self._pause_wall
        self.pace.shift(now - self._pause_wall)
        self._rate.restart(now, self.step)
        await self._set_status("Running")
        self._resume.set()
        log.info("resumed at step %d", self.step)
        return "resumed"

    async def reset(self) -> str:
        """End the run (its historian and KPIs are kept) and start it again from its first step, into a
        new historian file; the daemon keeps serving."""
        async with self._lifecycle:
            await self._end_run("Stopped")
            await self._set_control(None, Status="Reset")
            self.step = 0
            for building in self.buildings:
                building.restart()
                await self._set_control(building.name, Status="Idle", Step=0, Fault="", OutputReady=False)
            self.status = "Idle"
            self._start_run()
        log.info("reset: the run starts again from its first step")
        return "reset"

    async def stop(self, final_status: str = "Stopped") -> None:
        """End the run (Control.Stop, a signal, the daemon's exit); buildings still going take
        ``final_status``. The server keeps serving the last values; ``done`` is set."""
        async with self._lifecycle:
            await self._end_run(final_status)
        self.done.set()

    async def stop_building(self, building: BuildingState) -> None:
        """Stop one building (its Control.Stop); the others go on."""
        async with self._lifecycle:
            if not building.running:
                raise ValueError(f"cannot stop: {building.name} is {building.status}")
            log.info("%s stopped at step %d", building.name, building.published_step)
            await self._stop_building(building, "Stopped")
            if not any(b.running for b in self.buildings):
                self._resume.set()  # the run is over, paused or not: let the stepping loop end it

    async def _end_run(self, status: str) -> None:
        """Cancel the stepping if it is going, stop every engine, and conclude the run (once)."""
        task = self._task
        if task is None:  # never started
            await self._set_status(status)
            return
        going = not task.done()
        if going:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(task, 30)
        await self._stop_all(status)
        if going:
            await self._conclude()

    async def _stop_all(self, status: str, fault: str = "") -> None:
        for building in self.buildings:
            if building.live:
                await self._stop_building(building, status, fault)
            elif building.engine is not None:
                await building.engine.stop()

    async def _stop_building(self, building: BuildingState, status: str, fault: str = "") -> None:
        """End ``building``'s run. The status comes first: the step it may have in flight (which stopping
        its engine makes fail) no longer counts."""
        building.end(status)
        await self._set_control(building.name, Status=status, OutputReady=False,
                                **({"Fault": fault} if fault else {}))
        if building.engine is not None:
            await building.engine.stop()

    async def _set_status(self, status: str) -> None:
        self.status = status
        await self._set_control(None, Status=status)
        for building in self.buildings:
            if building.running:
                building.status = status
                await self._set_control(building.name, Status=status)

    async def _set_control(self, key: str | None, **values) -> None:
        if self.server is not None:  # before the address space is built there are no tags to update
            await self.server.set_control(key, **values)

    async def _close_historian(self) -> None:
        """Record what was published and close the file, even when that last write fails."""
        self._record()
        if self._unrecorded:
            log.error("historian: %d published rows were never recorded (see the errors above)", len(self._unrecorded))
        self._unrecorded = []
        if self.historian is not None:
            self.historian.close()
            self.historian = None

    async def _conclude(self) -> None:
        """Close the run: its historian, its KPIs (when a step was recorded), the campus status from the
        buildings' (``campus_outcome``)."""
        wall_s = time.monotonic() - self._wall_start
        await self._close_historian()
        outcome = campus_outcome([b.status for b in self.buildings])
        log.info("run %s after %d steps (%.1f s wall)", outcome.lower(), self.step, wall_s)
        if self.run_path is not None and self.step > 0:
            try:
                await self._report_kpis(await self._kpi_module, wall_s)
            except Exception:  # the run itself is fine: say why the KPIs are missing, keep its status
                log.exception("could not compute the run KPIs")
        await self._set_status(outcome)

    # ----- the run ---------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._run_steps()
        except asyncio.CancelledError:
            raise  # stop() and reset() end the run themselves
        except Exception as exc:  # a bug or an I/O failure: fault the campus, never hang
            log.exception("campus run failed")
            await self._set_control(None, Fault=str(exc))
            await self._stop_all("Faulted", str(exc))
        finally:
            self.launched.set()
        try:
            await self._conclude()
        finally:
            self.done.set()

    async def _run_steps(self) -> None:
        self.run_index += 1
        self._reported.clear()
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = self.config.run_dir / f"{self.config.name}-{stamp}-{self.run_index}"
        if self.config.historian:
            self.run_path = run_dir / "historian.sqlite"
            self.historian = Historian(self.run_path, {b.name: b.tagmap for b in self.buildings},
                                       {"campus": self.config.name, "config": self.config.path,
                                        "clock": self.config.clock, "started": stamp})
            log.info("historian: %s", self.run_path)
        log.info("starting %d engine(s) for %s .. %s, %d steps of %.0f s, clock %s",
                 len(self.buildings), self.config.period.start, self.config.period.end,
                 self.config.period.steps, self.config.period.step_s, self.config.clock)
        for building in self.buildings:
            building.engine = self.engine_factory(building.config, self.config, run_dir / building.name)
            building.applied = building.tagmap.defaults
        try:
            await asyncio.gather(*(b.engine.launch() for b in self.buildings))
        finally:
            self.launched.set()
        await asyncio.gather(*(self._start_building(b) for b in self.buildings))  # waits for the address space
        self.server.history.historian_path = self.run_path
        await self._set_status(self.status)
        self._wall_start = time.monotonic()
        self.pace.start(self._wall_start)
        self._rate.restart(self._wall_start, 0)
        await self._publish(0)
        published = 0
        fast, paced = self.config.clock == "fast", self.config.clock == "paced"
        while any(b.running for b in self.buildings):
            await self._resume.wait()
            if not fast:
                await self._wait_for_turn()
            pending = self._launch()
            if fast and published < self.step:
                await self._publish(self.step)  # overlaps with the engines computing the next step
                published = self.step
            self._record()  # fast: the last published step, while the engines compute the next one
            if not await self._collect(pending, self.step + 1):
                continue  # every engine finished, faulted or was stopped
            self.step += 1
            if not fast:
                await self._publish(self.step)
                published = self.step
                self._record()  # before the step is handed over: HistoryRead has every step on the tags
            if paced:
                self.pace.published(self.step)
            self._progress()
        if published < self.step:
            await self._publish(self.step)
        self._record()

    async def _start_building(self, building: BuildingState) -> None:
        """Wait for the engine's first outputs; engines size their models while the server is built."""
        fault = None
        try:
            building.sample = await building.engine.start()
        except Exception as exc:  # the building faults (``_fault``), the others start
            fault = exc
        # the tags to report on, served: built in well under a second, normally long before the engine is up
        await asyncio.wait_for(self.serving.wait(), self.config.engine_start_timeout_s)
        if fault is not None:
            await self._fault(building, fault)
            return
        building.sample_step = 0
        building.status = "Running"
        await self._set_control(building.name, Status="Running", Fault="")

    async def _fault(self, building: BuildingState, exc: Exception) -> None:
        """Fault ``building`` alone. An EngineFault names its building; any other exception is a bug or an
        engine breaking its contract: logged with its traceback and named after the building."""
        fault = exc if isinstance(exc, EngineFault) else EngineFault(
            f"{building.name}: unexpected {type(exc).__name__} from its engine: {exc}")
        log.error("%s faulted: %s", building.name, fault, exc_info=None if fault is exc else exc)
        await self._stop_building(building, "Faulted", fault=str(fault))

    def _launch(self) -> list[tuple[BuildingState, Awaitable[Sample | None], dict[str, float]]]:
        """Hand each running building's current input tag values to its engine (which may send them at once)."""
        pending = []
        for building in self.buildings:
            if building.status == "Running":
                try:
                    inputs = self.server.read_inputs(building.name)
                    outputs = building.engine.step(inputs)
                except Exception as exc:  # faults this building alone, in ``_collect``
                    inputs, outputs = {}, _raise(exc)
                if self.config.clock == "paced":
                    outputs = self.pace.watch(building.name, outputs)
                pending.append((building, outputs, inputs))
                building.launched_step = self.step + 1
        return pending

    async def _collect(self, pending, step: int) -> bool:
        """Wait for the engines' outputs of ``step``; True if any building produced them. Paced: an
        overrun of the step's wall slot is reported when the slot ends."""
        alarm = self.pace.alarm(step) if self.config.clock == "paced" else None
        try:
            if len(pending) == 1:  # awaited inline: outputs already received cost no event-loop turn
                results = [await _outcome(pending[0][1])]
            else:
                results = await asyncio.gather(*(outputs for _, outputs, _ in pending), return_exceptions=True)
        finally:
            if alarm is not None:
                alarm.cancel()
        produced = False
        for (building, _, inputs), result in zip(pending, results):
            if not building.running:
                continue  # stopped while computing the step: its outputs, or the failure the stop caused, do not count
            if isinstance(result, Exception):
                await self._fault(building, result)
            elif isinstance(result, BaseException):
                raise result  # cancelled: the run is being stopped
            elif result is None:
                building.end("Finished")
                await self._set_control(building.name, Status="Finished", OutputReady=False)
            else:
                building.sample, building.applied, building.sample_step = result, inputs, step
                produced = True
        return produced

    async def _publish(self, step: int) -> None:
        """Outputs of ``step`` to the tags, and (for steps after the start) to the historian."""
        fresh = [b for b in self.buildings if b.running and b.sample_step == step]
        if not fresh:
            return
        rows, total_kw = [], 0.0
        for building in fresh:
            sample = building.sample
            sim_time = self.config.period.time_of(sample.sim_time_s)
            self._report_quality(building.name, step, sample.outputs,
                                 await self.server.publish_outputs(building.name, sample.outputs, sim_time))
            await self._set_control(building.name, Step=step, SimTime=sim_time, SimTimeSeconds=sample.sim_time_s)
            total_kw += sum(sample.outputs[tag] for tag in building.power_tags if tag in sample.outputs)
            if step > 0:
                rows.append((building.name, step, sample.sim_time_s, sim_time, {**building.applied, **sample.outputs}))
            building.published, building.published_step = sample, step
            building.notify()
        total = {"TotalElectricPower": total_kw}
        self._report_quality(self.config.name, step, total,
                             await self.server.publish_outputs(self.config.name, total, sim_time))
        await self._set_control(None, Step=step, SimTime=sim_time, SimTimeSeconds=sample.sim_time_s)
        self._unrecorded.extend(rows)

    def _report_quality(self, where: str, step: int, outputs: Mapping[str, float], flagged: Mapping[str, str]) -> None:
        """Log the outputs published with a status other than Good (``TagServer.publish_outputs``), once per
        tag and status in a run."""
        for tag, status in flagged.items():
            if (where, tag, status) not in self._reported:
                self._reported.add((where, tag, status))
                log.warning("%s.%s = %r at step %d, published as %s (said once per tag and status in a run)",
                            where, tag, outputs[tag], step, status)

    def _record(self) -> None:
        """Append the published but unrecorded steps to the historian (a crash loses at most these). A
        failed write (a full disk) is logged and its rows kept for the next write; the run goes on."""
        if self.historian is None or not self._unrecorded:
            return
        try:
            self.historian.record(self._unrecorded)
        except Exception:
            log.exception("historian: could not record %d rows; kept for the next write", len(self._unrecorded))
            return
        self._unrecorded = []

    async def _report_kpis(self, kpi: ModuleType, wall_s: float) -> None:
        """BOPTEST core KPIs of the run (docs/kpis.md, ``bridge.kpi``) to ``kpis.json`` beside the historian
        and to KPIs tags."""
        settings = self.config.kpi
        price = (kpi.TimeOfUse(settings.price_periods, settings.price_usd_per_kwh) if settings.price_periods
                 else settings.price_usd_per_kwh)
        tagmaps = {b.name: b.tagmap for b in self.buildings if b.published_step > 0}
        kpis = await asyncio.to_thread(kpi.compute_kpis, self.run_path, tagmaps, price,
                                       settings.emissions_kgco2_per_kwh, wall_s)
        path = kpi.write_kpis_json(self.run_path.parent / "kpis.json", kpis)
        await self.server.publish_kpis(None, kpis["campus"])
        for name, values in kpis["buildings"].items():
            await self.server.publish_kpis(name, values)
        log.info("KPIs (%s): %s", path, kpi.summary(kpis["campus"]))

    async def _wait_for_turn(self) -> None:
        """Paced: wait for wall time to catch up; lockstep: hand the step to the controllers. A building
        paused during the wait is not launched (``_launch``)."""
        if self.config.clock == "paced":
            await self.pace.wait_for_turn(self.step + 1)
            return
        await self._handshake()
        await self._resume.wait()  # paused during the handshake: the answers stand, the step waits for Resume

    async def _handshake(self) -> None:
        """Lockstep: hand the step to the controllers and wait for their InputReady."""
        running = [b for b in self.buildings if b.status == "Running"]
        for building in running:
            building.begin_turn(self.step)
            await self._set_control(building.name, InputReady=False, OutputReady=True)
        deadline = time.monotonic() + self.config.lockstep_timeout_s
        for building in running:
            try:
                await asyncio.wait_for(building.input_ready.wait(), max(deadline - time.monotonic(), 0))
            except asyncio.TimeoutError:
                log.warning("%s: no InputReady within %.1f s at step %d; holding its inputs",
                            building.name, self.config.lockstep_timeout_s, self.step)
            building.awaiting_step = -1
            if building.running:
                await self._set_control(building.name, OutputReady=False)

    def _progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress < 2.0 and self.step < self.config.period.steps:
            return
        self._last_progress = now
        rate = self._rate.add(now, self.step)
        steps = self.config.period.steps
        sim = self.config.period.time_of(self.step * self.config.period.step_s)
        log.info("step %d/%d  sim %s  %s steps/s  ETA %s  %s", self.step, steps, sim.strftime("%Y-%m-%d %H:%M"),
                 f"{rate:.0f}" if rate >= 10 else f"{rate:.2g}", eta(steps - self.step, rate),
                 " ".join(f"{b.name}={b.status}" for b in self.buildings))
