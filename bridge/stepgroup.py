"""Buildings stepped as one group: the buildings of one Ray node (bridge/engines/ray_actor.py), whose
engines take one call and give one answer per step. The campus clock hands a group the inputs of all
its running members at once (``StepGroup.step_members``) and awaits one answer for them all, instead of
one awaitable per building. When every member gave outputs of one simulation time (the usual step) the
answer is a ``Block``: each member's values in tag-map order (converted where the engines run), which the
campus clock publishes (``TagServer.publish_block``), sums and records (``Historian.record``) as one
block, without a ``Sample`` or a lookup per member; otherwise each member's outcome, its outputs as a
``Row`` that the tags and the historian take as it is (docs/scale.md)."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Iterator, Mapping, Sequence

from bridge.engines.base import Engine, Sample


class Row(Mapping[str, float]):
    """A building's outputs at one step: ``values`` in the order of ``tags`` (``RowLayout``, shared by
    every step's row), read as a mapping tag -> value."""

    __slots__ = ("tags", "index", "values")

    def __init__(self, tags: tuple[str, ...], index: Mapping[str, int], values: list[float]):
        self.tags, self.index, self.values = tags, index, values

    def __getitem__(self, tag: str) -> float:
        return self.values[self.index[tag]]

    def __contains__(self, tag: object) -> bool:
        return tag in self.index

    def __iter__(self) -> Iterator[str]:
        return iter(self.tags)

    def __len__(self) -> int:
        return len(self.tags)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self.tags, self.values))!r})"


class RowLayout:
    """The output tags of one building, in tag-map order: what makes its ``Row``s."""

    def __init__(self, tags: Sequence[str]):
        self.tags = tuple(tags)
        self.index = {tag: i for i, tag in enumerate(self.tags)}

    def sample(self, sim_time_s: float, values: list[float]) -> Sample:
        return Sample(sim_time_s, Row(self.tags, self.index, values))


Outcome = Sample | None | Exception  # a member's outputs, None (its run is over) or its failure


class Block:
    """Every member's outputs of one step, all of simulation time ``sim_time_s`` (s): ``rows[i]``, member
    ``i``'s values in the order of ``layouts[i]``."""

    __slots__ = ("sim_time_s", "layouts", "rows")

    def __init__(self, sim_time_s: float, layouts: list[RowLayout], rows: list[list[float]]):
        self.sim_time_s, self.layouts, self.rows = sim_time_s, layouts, rows

    def sample(self, index: int) -> Sample:
        """Member ``index``'s outputs as an outcome of its own."""
        return self.layouts[index].sample(self.sim_time_s, self.rows[index])

    def outcomes(self) -> list[Outcome]:
        return [self.sample(i) for i in range(len(self.rows))]


def sample_of(kept: Sample | tuple[Block, int] | None) -> Sample | None:
    """A member's outputs as kept: a Sample (or None) as it is, (Block, member index) made a Sample."""
    if type(kept) is tuple:
        block, index = kept
        return block.sample(index)
    return kept


def one_block(times: list[float], rows: list) -> bool:
    """Whether members' answers (each one's simulation time and row, or its outcome; at least one) make one
    ``Block``: every one a row (a ``list``) of the same time."""
    return times.count(times[0]) == len(times) and all(type(row) is list for row in rows)


def group_answer(layouts: list[RowLayout], times: list[float], rows: list) -> Block | list[Outcome]:
    """A group's answer from each member's simulation time and row (its values in its layout's order, a
    ``list``; or its outcome): a ``Block`` when every member gave a row of the same time (``one_block``),
    else each member's outcome."""
    if one_block(times, rows):
        return Block(times[0], layouts, rows)
    return [layout.sample(time_s, row) if type(row) is list else row for layout, time_s, row in zip(layouts, times, rows)]


class StepGroup(abc.ABC):
    """Engines that are stepped together, one call and one answer per step."""

    @abc.abstractmethod
    def step_members(self, engines: list["GroupedEngine"], inputs: list[Mapping[str, float]]) -> Awaitable[Block | list[Outcome]]:
        """One step of ``engines`` (running members of this group), each with its inputs; the awaitable
        gives each one's outcome, in order, or a ``Block`` of them all (``group_answer``). An input mapping
        that is the very object given for that engine's step before has not changed: a group may leave it
        unsent (the engine applies it again)."""


class GroupedEngine(Engine):
    """An Engine that belongs to a ``StepGroup`` (None until it is launched, or when it has none): the
    clock steps it with its group; ``step`` still steps it alone (a realtime start, a test)."""

    group: StepGroup | None = None
