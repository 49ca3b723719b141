"""Buildings stepped as one group: the buildings of one Ray node (bridge/engines/ray_actor.py), whose
engines take one call and give one answer per step. The campus clock hands a group the inputs of all
its running members at once (``StepGroup.step_members``) and awaits one answer for them all, instead of
one awaitable per building; each member's outputs come as a ``Row`` (its values in tag-map order,
converted where the engines run) that the tags (``TagServer.publish_many``) and the historian
(``Historian.record``) take as it is, without a lookup per tag (docs/scale.md)."""

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


class StepGroup(abc.ABC):
    """Engines that are stepped together, one call and one answer per step."""

    @abc.abstractmethod
    def step_members(self, engines: list["GroupedEngine"], inputs: list[Mapping[str, float]]) -> Awaitable[list[Outcome]]:
        """One step of ``engines`` (running members of this group), each with its inputs; the awaitable
        gives each one's outcome, in order. An input mapping that is the very object given for that
        engine's step before has not changed: a group may leave it unsent (the engine applies it again)."""


class GroupedEngine(Engine):
    """An Engine that belongs to a ``StepGroup`` (None until it is launched, or when it has none): the
    clock steps it with its group; ``step`` still steps it alone (a realtime start, a test)."""

    group: StepGroup | None = None
