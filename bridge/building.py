"""One building of a running campus: its run status, the outputs it computed and published, its
controller's turn (lockstep), the events its waiters wake on, and the end of its run."""

from __future__ import annotations

import asyncio
import functools
import logging
import operator
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bridge.config import BuildingConfig
from bridge.controltags import ControlTags
from bridge.engines.base import Engine, EngineFault, Sample
from bridge.protocol import Status
from bridge.stepgroup import Block, sample_of
from bridge.tagmap import TagMap

log = logging.getLogger(__name__)

RUNNING = frozenset((Status.RUNNING, Status.PAUSED))  # the statuses of a running building
_status = operator.attrgetter("status")


@dataclass
class BuildingState:
    config: BuildingConfig
    tagmap: TagMap  # what the server, historian and KPIs see (served_tagmap)
    engine: Engine | None = None
    status: str = Status.IDLE
    sample: Sample | None = None
    applied: dict[str, float] = field(default_factory=dict)  # inputs of the step that produced ``sample``
    sample_step: int = -1  # step whose outputs ``sample`` holds
    published_row: Sample | tuple[Block, int] | None = None  # the outputs on the tags (``published``)
    published_step: int = -1  # the step of ``published``
    exchanged_step: int = -1  # the step the last Control.Exchange call answered with
    exchange_caller: object = None  # the client session that made that call
    launched_step: int = -1  # the step the engine computes (or last computed) from the input tags it was handed
    input_ready: asyncio.Event = field(default_factory=asyncio.Event)
    awaiting_step: int = -1  # lockstep: the step whose controller answer the bridge is waiting for
    _changed: asyncio.Event | None = field(default=None, repr=False)  # ``changed``, once someone asked for it
    # its live mirror's (bridge.live.mirror): puts the live values back on the mirrored inputs after an Exchange
    restore_mirrored: Callable[[], Awaitable[None]] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @functools.cached_property
    def power_tags(self) -> tuple[str, ...]:
        """Outputs summed into the campus TotalElectricPower."""
        return tuple(o.tag for o in self.tagmap.outputs if o.role == "electric_power")

    @property
    def published(self) -> Sample | None:
        """The outputs on the tags; a group member's published in its group's Block (``published_row`` is
        (Block, its index)) are made a Sample when first asked for."""
        self.published_row = sample_of(self.published_row)
        return self.published_row

    @property
    def running(self) -> bool:
        return self.status in RUNNING

    @property
    def live(self) -> bool:
        """Its run is starting or going."""
        return self.status in (Status.IDLE, Status.RUNNING, Status.PAUSED)

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
        self.status, self.sample, self.published_row, self.applied = Status.IDLE, None, None, {}
        self.sample_step = self.published_step = self.exchanged_step = self.launched_step = self.awaiting_step = -1
        self.exchange_caller = None

    @property
    def changed(self) -> asyncio.Event:
        """Set (and replaced) by ``notify``; made when first asked for, so a step nobody waits on makes none."""
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def notify(self) -> None:
        """Wake everyone waiting for a change of this building (a turn, new outputs, the end of its run)."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def until(self, condition: Callable[[], bool], timeout_s: float) -> None:
        """Wait until ``condition()`` holds, checked at each change; TimeoutError after ``timeout_s`` in all."""
        async with asyncio.timeout(timeout_s):
            while not condition():
                await self.changed.wait()


def all_running(buildings: list[BuildingState]) -> bool:
    """Whether every one of ``buildings`` is ``running``, told in one pass (a group's members, each step)."""
    return set(map(_status, buildings)) <= RUNNING


def any_running(buildings: list[BuildingState]) -> bool:
    """Whether any of ``buildings`` is ``running``, told in one pass (each step)."""
    return not RUNNING.isdisjoint(map(_status, buildings))


async def end_building(building: BuildingState, control: ControlTags, status: str, fault: str = "") -> None:
    """End ``building``'s run. The status comes first: the step it may have in flight (which stopping
    its engine makes fail) no longer counts."""
    building.end(status)
    await control.set(building.name, Status=status, OutputReady=False, **({"Fault": fault} if fault else {}))
    if building.engine is not None:
        await building.engine.stop()


async def fault_building(building: BuildingState, control: ControlTags, exc: Exception) -> None:
    """Fault ``building`` alone. An EngineFault names its building; any other exception is a bug or an
    engine breaking its contract: logged with its traceback and named after the building."""
    fault = exc if isinstance(exc, EngineFault) else EngineFault(
        f"{building.name}: unexpected {type(exc).__name__} from its engine: {exc}")
    log.error("%s faulted: %s", building.name, fault, exc_info=None if fault is exc else exc)
    await end_building(building, control, Status.FAULTED, fault=str(fault))
