"""Engines that answer at once, stepped in ``StepGroup``s of ``size`` buildings (as the buildings of
one Ray node are): the campus clock's own cost, with no engine competing for the cores
(bench/bench_scale.py), and its group path tried without Ray (tests/test_scale_units.py).

Each building's outputs are a function of its step and its inputs (``output``), so that a historian
tells which inputs drove which step; ``fail_at`` (building -> step) makes a member fail alone."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from bridge.config import BuildingConfig, CampusConfig
from bridge.engines.base import EngineFault, Sample
from bridge.stepgroup import Block, GroupedEngine, Outcome, RowLayout, StepGroup, group_answer


def output(step: int, inputs: Mapping[str, float], index: int) -> float:
    """The value of a building's ``index``-th output at ``step`` after ``inputs``: in [0, 11), within the
    EURange of the reference tag maps' outputs."""
    return outputs(step, inputs, index + 1)[index]


def outputs(step: int, inputs: Mapping[str, float], count: int) -> list[float]:
    """The first ``count`` outputs (``output``) at once: the stand-in's own work kept small, so that what
    the bench measures is the head's."""
    base = step % 10 + sum(inputs.values()) % 10 / 10
    return [base + index / 100 for index in range(count)]


class InstantGroup(StepGroup):
    """A group whose members' steps are answered at once, at the next turn of the event loop (as an
    answer received is), or ``answer_s`` seconds later (a node's engines computing, the head waiting)."""

    def __init__(self, fail_at: Mapping[str, int] | None = None, answer_s: float = 0.0):
        self.fail_at, self.answer_s = dict(fail_at or {}), answer_s
        self.calls: list[list[str]] = []  # the members of each ``step_members`` call
        self.sent: list[dict[str, Mapping[str, float]]] = []  # the inputs each call would send (changed ones)
        self.answers: list[Block | list[Outcome]] = []  # each call's answer

    def step_members(self, engines: list["InstantEngine"], inputs: list[Mapping[str, float]]) -> asyncio.Future:
        """As a node actor answers: a ``Block`` when every member gave outputs (``group_answer``)."""
        self.calls.append([e.name for e in engines])
        changed = {}
        for engine, values in zip(engines, inputs):
            if values is not engine.sent:
                changed[engine.name] = engine.sent = values
        self.sent.append(changed)
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        times, rows = zip(*(engine.advance(values) for engine, values in zip(engines, inputs)))
        outcomes = group_answer([engine.layout for engine in engines], list(times), list(rows))
        self.answers.append(outcomes)
        if self.answer_s:
            loop.call_later(self.answer_s, answer.set_result, outcomes)
        else:
            loop.call_soon(answer.set_result, outcomes)
        return answer


class InstantEngine(GroupedEngine):
    def __init__(self, building: BuildingConfig, group: InstantGroup, last_step: int):
        self.name, self.group, self.last_step = building.name, group, last_step
        self.layout = RowLayout([o.tag for o in building.tagmap.outputs])
        self.steps, self.sent = 0, None

    def advance(self, inputs: Mapping[str, float]) -> tuple[float, list[float] | Outcome]:
        """(simulation time s, outputs in layout order), or (0, its outcome: a fault, None at the end)."""
        self.steps += 1
        if self.group.fail_at.get(self.name) == self.steps:
            return 0.0, EngineFault(f"{self.name}: failed at step {self.steps}")
        if self.steps > self.last_step:
            return 0.0, None
        return self.steps * 600.0, outputs(self.steps, inputs, len(self.layout.tags))

    async def start(self) -> Sample:
        return self.layout.sample(0.0, [0.0] * len(self.layout.tags))

    async def step(self, inputs: Mapping[str, float]) -> Sample | None:
        time_s, outcome = self.advance(inputs)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome if outcome is None else self.layout.sample(time_s, outcome)

    async def stop(self) -> None:
        pass


def instant_factory(size: int, fail_at: Mapping[str, int] | None = None, answer_s: float = 0.0):
    """An engine factory (``Campus(engine_factory=...)``): the buildings in campus order, dealt into groups
    of ``size``; the groups made, in ``factory.groups``."""
    groups: list[InstantGroup] = []

    def factory(building: BuildingConfig, config: CampusConfig, workdir: Path) -> InstantEngine:
        index = [b.name for b in config.buildings].index(building.name)
        while len(groups) <= index // size:
            groups.append(InstantGroup(fail_at, answer_s))
        return InstantEngine(building, groups[index // size], config.period.steps)

    factory.groups = groups
    return factory


class WaitingEngine(InstantEngine):
    """An ``InstantEngine`` of its own (no group of the head) whose steps take ``answer_s`` seconds: the
    engines of a Ray node actor that stand in for EnergyPlus (``in_ray_workers``)."""

    def __init__(self, building: BuildingConfig, last_step: int, answer_s: float):
        super().__init__(building, InstantGroup(), last_step)
        self.answer_s = answer_s

    async def step(self, inputs: Mapping[str, float]) -> Sample | None:
        await asyncio.sleep(self.answer_s)
        return await super().step(inputs)


RAY_ANSWER_S = 0.02  # a node's step with stand-in engines (about one step of 64 Small Offices here)


def in_ray_workers() -> None:
    """Ray's ``worker_process_setup_hook`` (bench/bench_scale.py, kind "ray_instant"): the node actors of this
    job build ``WaitingEngine``s instead of real engines, so that the head's cost with Ray's calls is measured
    at node sizes this machine's memory cannot hold in EnergyPlus processes."""
    from bridge.engines import kinds

    kinds.engine_of_kind = lambda building, config, workdir: WaitingEngine(building, config.period.steps, RAY_ANSWER_S)
