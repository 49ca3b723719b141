"""The controllers' side of a step: the lockstep turn (OutputReady raised, InputReady awaited) and
Control.Exchange, a controller's whole step in one call (docs/protocol.md)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from bridge.building import BuildingState
from bridge.config import CampusConfig
from bridge.controltags import ControlTags
from bridge.protocol import Clock, Status

if TYPE_CHECKING:
    from bridge.server import Exchange

log = logging.getLogger(__name__)


async def take_turns(buildings: Iterable[BuildingState], step: int, timeout_s: float, control: ControlTags) -> None:
    """Lockstep: hand ``step``'s outputs to the controllers of the running buildings and wait up to
    ``timeout_s`` in all for their InputReady; a silent one is logged and its building holds its inputs."""
    running = [b for b in buildings if b.status == Status.RUNNING]
    for building in running:
        building.begin_turn(step)
        await control.set(building.name, InputReady=False, OutputReady=True)
    deadline = time.monotonic() + timeout_s
    for building in running:
        try:
            await asyncio.wait_for(building.input_ready.wait(), max(deadline - time.monotonic(), 0))
        except asyncio.TimeoutError:
            log.warning("%s: no InputReady within %.1f s at step %d; holding its inputs",
                        building.name, timeout_s, step)
        building.awaiting_step = -1
        if building.running:
            await control.set(building.name, OutputReady=False)


def exchange(building: BuildingState, config: CampusConfig) -> Exchange:
    """Control.Exchange of ``building``: write the caller's inputs when the bridge asks for them, raise
    InputReady, answer with the next step. In lockstep the inputs are for the step after the one the
    caller's previous call answered with; if the bridge has moved past that step (its controller was
    later than the lockstep timeout) they are not written and the call answers at once with the newest
    step, whose outputs the caller then decides on. The answer says whether the inputs drove its step:
    not for a late call, nor when the engine was handed the step's inputs before the write ended.
    ``caller`` identifies the client session: the first call of a session (a controller that replaces
    one that died, say) is taken for the step the bridge is at, not as late for its predecessor's."""

    async def call(write_inputs: Callable[[], Awaitable[None]], caller: object) -> tuple[int, list[float], bool]:
        await building.until(lambda: building.published_step >= 0 or not building.live,
                             config.engine_start_timeout_s)  # the first outputs
        lockstep = config.clock == Clock.LOCKSTEP
        follows = lockstep and building.exchanged_step >= 0 and caller is building.exchange_caller
        seen = building.exchanged_step if follows else building.published_step
        timeout_s = config.lockstep_timeout_s + config.engine_step_timeout_s
        if lockstep and not await _turn_after(building, seen, timeout_s):
            log.warning("%s: Exchange inputs for the step after %d came when the bridge was at step %d "
                        "(lockstep timeout): not applied", building.name, seen, building.published_step)
            return _answer(building, caller, False)
        if not building.running:
            raise ValueError(f"{building.name} is {building.status}")
        await write_inputs()
        if building.restore_mirrored is not None:  # mirrored inputs take the live values, not the call's
            await building.restore_mirrored()
        written = building.launched_step  # steps after it are computed from the written inputs
        if building.awaiting_step == seen:  # lockstep: a write outlasting its turn must not release the next
            building.answer()
        await building.until(lambda: building.published_step > seen or not building.running, timeout_s)
        if building.published_step <= seen:
            raise ValueError(f"{building.name} is {building.status}")
        return _answer(building, caller, building.published_step > written)

    return call


async def _turn_after(building: BuildingState, step: int, timeout_s: float) -> bool:
    """Lockstep: wait until the bridge asks for the inputs after ``step`` (or the building's run is
    over); False if it has published a newer step instead."""
    await building.until(lambda: building.awaiting_step == step or building.published_step > step
                         or not building.running, timeout_s)
    return building.published_step <= step


def _answer(building: BuildingState, caller: object, applied: bool) -> tuple[int, list[float], bool]:
    """Exchange's answer (Step, Outputs in tag-map order, Applied), remembered as the caller's last."""
    building.exchanged_step, building.exchange_caller = building.published_step, caller
    outputs = building.published.outputs
    return building.published_step, [float(outputs[o.tag]) for o in building.tagmap.outputs], applied
