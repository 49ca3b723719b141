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

This module is the run's lifecycle (Idle -> Running <-> Paused -> Finished | Stopped | Faulted) and
its OPC UA methods; the pieces it owns do the rest: ``bridge.building`` (one building's state),
``bridge.clock`` (the stepping loop), ``bridge.handshake`` (lockstep turns and Control.Exchange),
``bridge.runrecord`` (historian and KPIs), ``bridge.engines.factory`` (the engines).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.building import BuildingState, end_building, fault_building
from bridge.clock import CampusClock
from bridge.config import CampusConfig
from bridge.controltags import ControlTags
from bridge.engines.factory import EngineFactory, make_engine
from bridge.engines.kinds import served_tagmap
from bridge.handshake import exchange
from bridge.historian import Historian
from bridge.live.warmup import warmed_config
from bridge.protocol import Status
from bridge.runrecord import RunRecord
from bridge.tagmap import UNBOUNDED

if TYPE_CHECKING:
    from bridge.server import TagServer

log = logging.getLogger(__name__)


def campus_outcome(statuses: list[str]) -> str:
    """The status of a campus whose run is over, from its buildings' (each Finished, Stopped or Faulted):
    Faulted if any faulted, else Finished if any finished (the others were stopped), else Stopped."""
    if Status.FAULTED in statuses:
        return Status.FAULTED
    return Status.FINISHED if Status.FINISHED in statuses else Status.STOPPED


class Campus:
    """Lifecycle (Idle -> Running <-> Paused -> Finished | Stopped | Faulted) of one campus run."""

    def __init__(self, config: CampusConfig, engine_factory: EngineFactory = make_engine):
        self.config = config
        self.engine_factory = engine_factory
        self.buildings = [BuildingState(b, served_tagmap(b, config)) for b in config.buildings]
        self.status = Status.IDLE
        self.run_index = 0
        self.started = asyncio.Event()
        self.launched = asyncio.Event()  # the engines of the run are launching (or the run is over)
        self.serving = asyncio.Event()  # set once the server listens: no step is taken before clients can connect
        self.done = asyncio.Event()  # the run is over and no new one was started: the daemon may end
        self._lifecycle = asyncio.Lock()  # Start, Stop and Reset one at a time
        self._task: asyncio.Task | None = None
        self.control = ControlTags()
        self.record = RunRecord(config)
        self.clock = CampusClock(config, self.buildings, self.control, self.record)

    @property
    def server(self) -> TagServer | None:
        """The server, given by ``build_address_space``."""
        return self.control.server

    @property
    def step(self) -> int:
        """The last step computed."""
        return self.clock.step

    @property
    def historian(self) -> Historian | None:
        return self.record.historian

    @property
    def run_path(self) -> Path | None:
        """The historian file of the last run that has one."""
        return self.record.path

    # ----- address space and methods -------------------------------------------------------

    async def build_address_space(self, server: TagServer) -> None:
        """Serve the campus through ``server`` (initialized, not necessarily listening yet); the engines step
        once ``serving`` is set, when it listens."""
        self.control.server = server
        await server.add_campus_nodes(self._methods(None), self._total_power_high_kw())
        await self.control.set(None, Clock=self.config.clock)
        for building in self.buildings:
            await server.add_building(building.name, building.tagmap, self._methods(building),
                                      building.answer, exchange(building, self.config))
            await self.control.set(building.name, Clock=self.config.clock)

    def _total_power_high_kw(self) -> float:
        """High end of TotalElectricPower's EURange: the sum of the buildings' electric power ranges."""
        return sum(b.tagmap.output_range(b.tagmap.output(tag))[1] for b in self.buildings for tag in b.power_tags) \
            or UNBOUNDED[1]

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
            if self.status != Status.IDLE:
                raise ValueError(f"cannot start: campus is {self.status}")
            self._start_run()
        return "started"

    def _start_run(self) -> None:
        self.status = Status.RUNNING  # on the tags once the engines are up and the address space is built
        self.clock.go.set()
        self.done.clear()
        self.record.import_kpi()
        self.clock.wall_start = time.monotonic()
        self._task = asyncio.create_task(self._run(), name=f"campus {self.config.name}")
        self.started.set()

    async def pause(self) -> str:
        if self.status != Status.RUNNING:
            raise ValueError(f"cannot pause: campus is {self.status}")
        self.clock.pause()
        await self._set_status(Status.PAUSED)
        log.info("paused at step %d", self.step)
        return "paused"

    async def resume(self) -> str:
        if self.status != Status.PAUSED:
            raise ValueError(f"cannot resume: campus is {self.status}")
        self.clock.shift_schedule()
        await self._set_status(Status.RUNNING)
        self.clock.go.set()
        log.info("resumed at step %d", self.step)
        return "resumed"

    async def reset(self) -> str:
        """End the run (its historian and KPIs are kept) and start it again from its first step, into a
        new historian file; the daemon keeps serving."""
        async with self._lifecycle:
            await self._end_run(Status.STOPPED)
            await self.control.set(None, Status=Status.RESET)
            self.clock.step = 0
            for building in self.buildings:
                building.restart()
                await self.control.set(building.name, Status=Status.IDLE, Step=0, Fault="", OutputReady=False)
            self.status = Status.IDLE
            self._start_run()
        log.info("reset: the run starts again from its first step")
        return "reset"

    async def stop(self, final_status: str = Status.STOPPED) -> None:
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
            await end_building(building, self.control, Status.STOPPED)
            if not any(b.running for b in self.buildings):
                self.clock.go.set()  # the run is over, paused or not: let the stepping loop end it

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
                await end_building(building, self.control, status, fault)
            elif building.engine is not None:
                await building.engine.stop()

    async def _set_status(self, status: str) -> None:
        self.status = status
        await self.control.set(None, Status=status)
        for building in self.buildings:
            if building.running:
                building.status = status
                await self.control.set(building.name, Status=status)

    async def _conclude(self) -> None:
        """Close the run: its historian, its KPIs (when a step was recorded), the campus status from the
        buildings' (``campus_outcome``)."""
        wall_s = self.clock.wall_s
        self.record.close()
        outcome = campus_outcome([b.status for b in self.buildings])
        log.info("run %s after %d steps (%.1f s wall)", outcome.lower(), self.step, wall_s)
        if self.run_path is not None and self.step > 0:
            try:
                await self.record.report_kpis(self.server, self.buildings, wall_s)
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
            await self.control.set(None, Fault=str(exc))
            await self._stop_all(Status.FAULTED, str(exc))
        finally:
            self.launched.set()
        try:
            await self._conclude()
        finally:
            self.done.set()

    async def _run_steps(self) -> None:
        """Open the run's record, start its engines and step them (``CampusClock.run``)."""
        self.run_index += 1
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir = self.config.run_dir / f"{self.config.name}-{stamp}-{self.run_index}"
        self.record.open(run_dir, self.buildings, stamp)
        config = self.clock.run_config()
        log.info("starting %d engine(s) for %s .. %s, %d steps of %.0f s, clock %s",
                 len(self.buildings), config.period.start, config.period.end,
                 config.period.steps, config.period.step_s, config.clock)
        start = self.clock.start_time()
        engine_configs = await asyncio.gather(*(  # [buildings.live] warm_up = "history": the live weather's first day
            warmed_config(b.config, b.tagmap, config.period.start, start, run_dir / f"{b.name}-warm-up.epw")
            for b in self.buildings))
        for building, building_config in zip(self.buildings, engine_configs):
            building.engine = self.engine_factory(building_config, config, run_dir / building.name)
            building.applied = building.tagmap.defaults
        try:
            await asyncio.gather(*(b.engine.launch() for b in self.buildings))
        finally:
            self.launched.set()
        await asyncio.gather(*(self._start_building(b) for b in self.buildings))  # waits for the address space
        self.server.history.historian_path = self.run_path
        await self._set_status(self.status)
        await self.clock.run(self.server)

    async def _start_building(self, building: BuildingState) -> None:
        """Wait for the engine's first outputs; engines size their models while the server is built."""
        fault = None
        try:
            building.sample = await building.engine.start()
        except Exception as exc:  # the building faults (``fault_building``), the others start
            fault = exc
        # the tags to report on, served: built in well under a second, normally long before the engine is up
        await asyncio.wait_for(self.serving.wait(), self.config.engine_start_timeout_s)
        if fault is not None:
            await fault_building(building, self.control, fault)
            return
        building.sample_step = 0
        building.status = Status.RUNNING
        await self.control.set(building.name, Status=Status.RUNNING, Fault="")
