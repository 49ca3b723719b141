"""The stepping loop of a campus run: each step's inputs handed to the engines, their outputs
collected, published to the tags and recorded, in the order the clock mode asks for (docs/bridge.md):

- ``lockstep``: each step waits for the controllers (``bridge.handshake``);
- ``paced``: each step waits for its wall-clock turn (``bridge.pace``);
- ``fast``: the next step is sent to the engines before the outputs of the last one are published and
  recorded, so that work overlaps the engines' computation; the historian is written every
  ``FAST_WRITE_S`` (bridge/runrecord.py) of wall time, several steps at once;
- ``realtime``: each step is handed to the engines as soon as the last one is published (the inputs the
  tags hold as its simulated interval begins) and its outputs are held until its simulated end is reached
  on the wall clock (``bridge.realtime``; a paced schedule on the epoch clock that always catches up).

No step starts while the campus is paused; a building whose step fails faults alone."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import math
import operator
import time
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from bridge.building import BuildingState, all_running, any_running, fault_building
from bridge.config import CampusConfig
from bridge.controltags import ControlTags
from bridge.engines.base import Sample
from bridge.handshake import take_turns
from bridge.pace import Pace
from bridge.progress import Progress
from bridge.protocol import TOTAL_POWER, Clock, Status
from bridge.realtime import RealtimeSchedule
from bridge.runrecord import RunRecord
from bridge.stepgroup import Block, GroupedEngine, Outcome, StepGroup

if TYPE_CHECKING:
    from bridge.server import TagServer

log = logging.getLogger(__name__)

# a building, its outputs and its inputs; or a StepGroup's buildings, their outcomes and their inputs
Launched = (tuple[BuildingState, Awaitable[Sample | None], Mapping[str, float]]
            | tuple[list[BuildingState], Awaitable[Block | list[Outcome]], list[Mapping[str, float]]])
# a group's Block of a step: its buildings, the Block, their inputs, the step
Answered = tuple[list[BuildingState], Block, list[Mapping[str, float]], int]


async def _outcome(awaitable: Awaitable):
    """The result of ``awaitable``, or the exception it raised (as ``gather(return_exceptions=True)``)."""
    try:
        return await awaitable
    except Exception as exc:
        return exc


async def _outcomes(awaitables: list[Awaitable]) -> list:
    """The result of each awaitable, or the exception it raised (a cancelled one's CancelledError too), as
    ``gather(return_exceptions=True)`` without its callback per awaitable: futures already under way are
    awaited as they are. Cancelled itself, it cancels them all."""
    futures = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    results = []
    try:
        for future in futures:
            try:
                results.append(await future)
            except Exception as exc:
                results.append(exc)
            except asyncio.CancelledError as exc:
                if asyncio.current_task().cancelling():
                    raise
                results.append(exc)
    except BaseException:
        for future in futures:
            future.cancel()
        raise
    return results


async def _raise(exc: Exception):
    """An awaitable that raises ``exc``: a step that failed before it began."""
    raise exc


class BlockPlan:
    """A group's buildings as their Blocks are published (``CampusClock._plan``): their names, the row
    layouts the plan was made for, and the positions of their electric power outputs in the Block's
    values one building after the other (summed into TotalElectricPower)."""

    __slots__ = ("buildings", "names", "layouts", "power")

    def __init__(self, buildings: tuple[BuildingState, ...], names: tuple[str, ...], layouts: list, power: list[int]):
        self.buildings, self.names, self.layouts, self.power = buildings, names, layouts, power


class CampusClock:
    """Steps ``buildings`` together until none is running; ``step`` is the last step computed."""

    REALTIME_GRACE_S = 0.1  # realtime: a step published this long after its simulated end is still on time

    def __init__(self, config: CampusConfig, buildings: list[BuildingState], control: ControlTags,
                 record: RunRecord):
        self.config, self.buildings, self.control, self.record = config, buildings, control, record
        self.server: TagServer | None = None  # given by ``run``
        self.step = 0
        self.go = asyncio.Event()  # clear while the campus is paused
        self.go.set()
        self.wall_start = 0.0  # monotonic wall time (s) the run started, moved later by each pause
        self._paused_at = 0.0
        self.realtime = RealtimeSchedule(config) if config.clock == Clock.REALTIME else None
        if self.realtime is None:
            self.pace = Pace(config.period.step_s / config.speed, config.catch_up)  # paced clock only
        else:  # simulated time IS wall time: a stall is always caught up
            self.pace = Pace(config.period.step_s / config.speed, True, time.time, self.REALTIME_GRACE_S)
        self.period = config.period  # of the current run (realtime: of years, from its start's day)
        self.progress = Progress(config.period)
        self._reported: set[tuple[str, str, str]] = set()  # (building, tag, status) of this run, logged
        self._answered: list[Answered] = []  # the Blocks collected and not yet published
        self._sampled: list[BuildingState] = []  # the buildings given a sample since the last publish
        self._launches: list[tuple[StepGroup | None, list[BuildingState]]] = []  # ``_launch``: each group's buildings
        self._plans: dict[tuple[int, ...], BlockPlan] = {}  # ``_plan``, by the ids of its buildings (which it holds)

    @property
    def wall_s(self) -> float:
        """Wall time (s) of the run, pauses included."""
        return time.monotonic() - self.wall_start

    def pause(self) -> None:
        """No step starts until ``go`` is set again (after ``shift_schedule``)."""
        self.go.clear()
        self._paused_at = time.monotonic()

    def shift_schedule(self) -> None:
        """The pause is over: the wall-clock schedule moves later by its length (realtime: it stays, and the
        steps missed are computed back to back), the rate counts afresh."""
        now = time.monotonic()
        self.wall_start += now - self._paused_at
        if self.realtime is None:
            self.pace.shift(now - self._paused_at)
        self.progress.restart(now, self.step)

    def run_config(self) -> CampusConfig:
        """The config the engines of the next run get: realtime, with its run period of years from the
        start's day (``RealtimeSchedule.run_period``)."""
        if self.realtime is None:
            return self.config
        self.period = self.progress.period = self.realtime.run_period(dt.datetime.now(dt.timezone.utc))
        return replace(self.config, period=self.period)

    def start_time(self) -> dt.datetime:
        """Local standard time of the next run's step 0 (after ``run_config``): realtime, now on the step
        (``RealtimeSchedule.start``); else the run period's first midnight."""
        if self.realtime is None:
            return self.period.time_of(0.0)
        return self.realtime.start(dt.datetime.now(dt.timezone.utc))

    async def run(self, server: TagServer) -> None:
        """Publish the first outputs (step 0) and step until no building is running."""
        self.server = server
        self._reported.clear()
        self._answered.clear()
        self._sampled = list(self.buildings)  # step 0: their first outputs
        self._launches = self._launch_order()
        self.wall_start = time.monotonic()
        if self.realtime is None:
            self.pace.start(self.wall_start)
        else:
            await self._fast_forward()
        self.progress.restart(self.wall_start, 0)
        await self._publish(0)
        published = 0
        fast, paced = self.config.clock == Clock.FAST, self.config.clock in (Clock.PACED, Clock.REALTIME)
        while any_running(self.buildings):
            await self.go.wait()
            if not fast:
                await self._wait_for_turn()
            pending = self._launch()
            if fast and published < self.step:
                await self._publish(self.step)  # overlaps with the engines computing the next step
                published = self.step
            self.record.write(batched=fast)  # fast: the published steps (every FAST_WRITE_S), while the engines compute
            if not await self._collect(pending, self.step + 1):
                continue  # every engine finished, faulted or was stopped
            self.step += 1
            if self.realtime is not None:
                await self.pace.wait_for_turn(self.step + 1)  # the end of the step's simulated interval
            if not fast:
                await self._publish(self.step)
                published = self.step
                self.record.write()  # before the step is handed over: HistoryRead has every step on the tags
            if paced:
                self.pace.published(self.step)
            self.progress.step_done(self.step, self.buildings)
        if published < self.step:
            await self._publish(self.step)
        self.record.write()

    async def _wait_for_turn(self) -> None:
        """Paced: wait for wall time to catch up; lockstep: hand the step to the controllers. A building
        paused during the wait is not launched (``_launch``)."""
        if self.config.clock in (Clock.PACED, Clock.REALTIME):
            await self.pace.wait_for_turn(self.step + 1)  # realtime: the step before was published at this turn
            return
        await take_turns(self.buildings, self.step, self.config.lockstep_timeout_s, self.control)
        await self.go.wait()  # paused during the handshake: the answers stand, the step waits for Resume

    def _launch_order(self) -> list[tuple[StepGroup | None, list[BuildingState]]]:
        """The buildings of a run as ``_launch`` hands them over: those of each ``StepGroup`` together (in the
        order of its first member), each other building alone (None), in campus order."""
        order, groups = [], {}
        for building in self.buildings:
            engine = building.engine
            group = engine.group if isinstance(engine, GroupedEngine) else None
            if group is None:
                order.append((None, [building]))
            elif group in groups:
                groups[group].append(building)
            else:
                order.append((group, groups.setdefault(group, [building])))
        return order

    def _launch(self) -> list[Launched]:
        """Hand each running building's current input tag values to its engine (which may send them at once);
        the buildings of a ``StepGroup`` together, in one call to their group."""
        pending, running, step = [], Status.RUNNING, self.step + 1
        current = self.server.current_inputs
        for group, members in self._launches:
            buildings, inputs = [], []
            for building in members:
                if building.status != running:
                    continue
                building.launched_step = step
                try:
                    values = current(building.name)
                    if group is None:
                        pending.append((building, self._watched([building], building.engine.step(values)), values))
                        continue
                except Exception as exc:  # faults this building alone, in ``_collect``
                    pending.append((building, self._watched([building], _raise(exc)), {}))
                    continue
                buildings.append(building)
                inputs.append(values)
            if buildings:
                try:
                    outputs = group.step_members([b.engine for b in buildings], inputs)
                except Exception as exc:  # faults each of them, in ``_collect``
                    outputs = _raise(exc)
                pending.append((buildings, self._watched(buildings, outputs), inputs))
        return pending

    def _watched(self, buildings: list[BuildingState], outputs: Awaitable) -> Awaitable:
        """Paced: ``outputs`` watched for an overrun of the step's wall slot (``Pace.watch``)."""
        return self.pace.watch([b.name for b in buildings], outputs) if self.config.clock == Clock.PACED else outputs

    async def _collect(self, pending: list[Launched], step: int) -> bool:
        """Wait for the engines' outputs of ``step``; True if any building produced them. Paced: an
        overrun of the step's wall slot is reported when the slot ends."""
        alarm = self.pace.alarm(step) if self.config.clock in (Clock.PACED, Clock.REALTIME) else None
        try:
            if len(pending) == 1:  # awaited inline: outputs already received cost no event-loop turn
                results = [await _outcome(pending[0][1])]
            else:
                results = await _outcomes([outputs for _, outputs, _ in pending])
        finally:
            if alarm is not None:
                alarm.cancel()
        produced = False
        for (launched, _, applied), outcome in zip(pending, results):
            if isinstance(launched, list):  # a group: a Block, each member's outcome, or the failure of them all
                if type(outcome) is Block:
                    if all_running(launched):
                        self._answered.append((launched, outcome, applied, step))
                        produced = True
                        continue
                    outcome = outcome.outcomes()  # some were stopped while computing the step
                each = [outcome] * len(launched) if isinstance(outcome, BaseException) else outcome
                answered = zip(launched, each, applied)
            else:
                answered = ((launched, outcome, applied),)
            for building, result, inputs in answered:
                if not building.running:
                    continue  # stopped while computing the step: its outputs, or the failure the stop caused, do not count
                if isinstance(result, Exception):
                    await fault_building(building, self.control, result)
                elif isinstance(result, BaseException):
                    raise result  # cancelled: the run is being stopped
                elif result is None:
                    building.end(Status.FINISHED)
                    await self.control.set(building.name, Status=Status.FINISHED, OutputReady=False)
                else:
                    building.sample, building.applied, building.sample_step = result, inputs, step
                    self._sampled.append(building)
                    produced = True
        return produced

    async def _fast_forward(self) -> None:
        """Realtime: step every running building from the period's first midnight to the start, on the
        tag-map defaults, unpublished; then anchor the schedule so that step k is due at the start + k steps
        (over ``speed``) on the wall clock (``RealtimeSchedule.anchor``)."""
        now = dt.datetime.now(dt.timezone.utc)
        start = self.realtime.start(now)
        skip = self.realtime.skip_steps(start)
        local = self.realtime.zone.local(start)
        log.info("realtime: step 0 at %s UTC (%s local); %d step(s) from the period's midnight first, on the "
                 "tag-map defaults, unpublished", self.realtime.zone.utc(start).isoformat(timespec="seconds"),
                 local.isoformat(timespec="seconds"), skip)
        began = time.monotonic()
        await asyncio.gather(*(self._skip(b, skip) for b in self.buildings if b.running))
        log.info("realtime: %d step(s) skipped in %.2f s", skip, time.monotonic() - began)
        self.progress.step0_s = skip * self.period.step_s
        self.pace.start(self.realtime.anchor(start, time.time()) - self.pace.slot_s)  # turn(1): step 0 due

    async def _skip(self, building: BuildingState, steps: int) -> None:
        """Step ``building`` ``steps`` times on its tag-map defaults; its last sample becomes step 0's."""
        try:
            for _ in range(steps):
                sample = await building.engine.step(building.tagmap.defaults)
                if sample is None:
                    raise RuntimeError("the engine finished before the realtime start")
                building.sample = sample
        except Exception as exc:
            await fault_building(building, self.control, exc)

    def _times(self, sim_time_s: float) -> tuple[dt.datetime, dt.datetime, dict]:
        """(tag time, historian time, local-time Control values) of a simulation time: realtime, aware UTC,
        naive UTC and SimTimeLocal / UtcOffset; else the calendar time of the run period (naive) twice."""
        if self.realtime is None:
            time_ = self.period.time_of(sim_time_s)
            return time_, time_, {}
        instant, local = self.realtime.utc(sim_time_s), self.realtime.local(sim_time_s)
        return instant, instant.replace(tzinfo=None), {
            "SimTimeLocal": local.isoformat(), "UtcOffset": local.utcoffset().total_seconds() / 3600}

    async def _publish(self, step: int) -> None:
        """Outputs of ``step`` to the tags, and (for steps after the start) to the historian: each building's
        on its own, and a group's ``Block`` (every member's outputs of the step) as one block."""
        blocks = self._blocks_of(step)
        fresh = [b for b in self._sampled if b.running and b.sample_step == step]
        self._sampled = []
        if not fresh and not blocks:
            return
        times, powers, names, rows = {}, [], [], []  # simulated time -> its tag and historian times; the rest summed
        await self._publish_samples(fresh, step, times, powers, names, rows)
        await self._publish_blocks(blocks, step, times, powers, names, rows)
        sim_time_s = next(reversed(times))  # one step, one simulated time
        sim_time, _, local = times[sim_time_s]
        total = {TOTAL_POWER: math.fsum(powers)}  # the same sum whatever the buildings' order
        self._report_quality(self.config.name, step, total,
                             await self.server.publish_outputs(self.config.name, total, sim_time))
        # each Control value made once for every building and the campus
        await self.control.set_many(names + [None], Step=step, SimTime=sim_time,
                                    SimTimeSeconds=sim_time_s, **local)
        for building in fresh:
            building.notify()
        for plan, _, _ in blocks:
            for building in plan.buildings:
                building.notify()
        self.record.add(rows)

    def _blocks_of(self, step: int) -> list[tuple[BlockPlan, Block, list[Mapping[str, float]]]]:
        """The Blocks collected for ``step`` that are published as blocks (``_plan``); the members of the
        others (a member stopped since, or rows the tags do not take as they are) get their samples, to be
        published each on its own."""
        blocks = []
        for buildings, block, applied, answered in self._answered:
            if answered != step:
                continue
            plan = self._plan(buildings, block)
            if plan is not None and all_running(buildings):
                blocks.append((plan, block, applied))
                continue
            for building, sample, inputs in zip(buildings, block.outcomes(), applied):
                building.sample, building.applied, building.sample_step = sample, inputs, step
            self._sampled += buildings
        self._answered.clear()
        return blocks

    def _time_of(self, times: dict, sim_time_s: float) -> tuple[dt.datetime, dt.datetime, dict]:
        """``_times`` of ``sim_time_s``, made once per publish (``times``)."""
        made = times.get(sim_time_s)
        if made is None:
            made = times[sim_time_s] = self._times(sim_time_s)
        return made

    async def _publish_samples(self, fresh: list[BuildingState], step: int, times: dict, powers: list[float],
                               names: list[str], rows: list) -> None:
        """Each of ``fresh`` published on its own (grouped by simulated time), its power added to ``powers``,
        its name to ``names``, its historian row to ``rows``."""
        groups: dict[float, list] = {}
        for building in fresh:
            sample = building.sample
            recorded_time = self._time_of(times, sample.sim_time_s)[1]
            groups.setdefault(sample.sim_time_s, []).append((building.name, sample.outputs))
            powers.extend(sample.outputs[tag] for tag in building.power_tags if tag in sample.outputs)
            if step > 0:
                rows.append((building.name, step, sample.sim_time_s, recorded_time, (building.applied, sample.outputs)))
        for sim_time_s, group in groups.items():
            flagged = await self.server.publish_many(group, times[sim_time_s][0])
            for name, outputs in group if flagged else ():
                if name in flagged:
                    self._report_quality(name, step, outputs, flagged[name])
        for building in fresh:
            building.published_row, building.published_step = building.sample, step
            names.append(building.name)

    async def _publish_blocks(self, blocks: list, step: int, times: dict, powers: list[float], names: list[str],
                              rows: list) -> None:
        """Each Block published as one (``TagServer.publish_block``), its members' power added to ``powers`` by
        position, their names to ``names``, one historian block row to ``rows``."""
        for plan, block, applied in blocks:
            sim_time, recorded_time, _ = self._time_of(times, block.sim_time_s)
            values = list(itertools.chain.from_iterable(block.rows))
            powers.extend(map(values.__getitem__, plan.power))
            flagged = await self.server.publish_block(plan.names, values, sim_time)
            for name in flagged:
                index = plan.names.index(name)
                self._report_quality(name, step, block.sample(index).outputs, flagged[name])
            for index, building in enumerate(plan.buildings):
                building.published_row, building.published_step = (block, index), step
            names.extend(plan.names)
            if step > 0:
                rows.append((plan.names, step, block.sim_time_s, recorded_time, (applied, block.rows)))

    def _plan(self, buildings: list[BuildingState], block: Block) -> BlockPlan | None:
        """How a Block of ``buildings`` is published (``BlockPlan``), made once per set of buildings and
        layouts; None when a member's rows are not in its tag map's output order (the tags and the
        historian's columns), so that they are taken one by one."""
        key = tuple(map(id, buildings))
        plan = self._plans.get(key)
        if plan is None or not all(map(operator.is_, plan.layouts, block.layouts)):
            if any(layout.tags != tuple(o.tag for o in b.tagmap.outputs) for b, layout in zip(buildings, block.layouts)):
                return None
            power, first = [], 0
            for building, layout in zip(buildings, block.layouts):
                power += [first + layout.index[tag] for tag in building.power_tags]
                first += len(layout.tags)
            plan = self._plans[key] = BlockPlan(tuple(buildings), tuple(b.name for b in buildings), list(block.layouts),
                                                power)
        return plan

    def _report_quality(self, where: str, step: int, outputs: Mapping[str, float], flagged: Mapping[str, str]) -> None:
        """Log the outputs published with a status other than Good (``TagServer.publish_outputs``), once per
        tag and status in a run."""
        for tag, status in flagged.items():
            if (where, tag, status) not in self._reported:
                self._reported.add((where, tag, status))
                log.warning("%s.%s = %r at step %d, published as %s (said once per tag and status in a run)",
                            where, tag, outputs[tag], step, status)
