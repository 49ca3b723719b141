"""The Engine interface: what the bridge needs from anything that simulates a building.

An engine starts, then advances one timestep at a time: ``step(inputs)`` applies the input tag
values for the coming timestep and returns the outputs at its end. The OPC UA layer, the campus
clock and the historian only ever see this interface, so an EnergyPlus process, an in-process
engine or a data-driven twin are interchangeable.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass

from bridge.errors import TwinbridgeError


@dataclass(frozen=True)
class Sample:
    """Outputs of a building at one instant: simulation time (s since run-period start) and tag values."""

    sim_time_s: float
    outputs: Mapping[str, float]


class EngineFault(TwinbridgeError, RuntimeError):
    """The engine failed; ``details`` holds what it said (for EnergyPlus, Severe/Fatal lines of eplusout.err)."""

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = details or []

    def __str__(self) -> str:
        text = super().__str__()
        return text + "".join(f"\n  {line}" for line in self.details)


class Engine(abc.ABC):
    """One simulated building. Implementations: ExternalInterfaceEngine, TwinEngine."""

    async def launch(self) -> None:
        """Begin starting (spawn processes, open sockets) without waiting for the engine to be ready,
        so that a caller can do its own start-up meanwhile. ``start`` does it when it was not done."""

    @abc.abstractmethod
    async def start(self) -> Sample:
        """Launch the engine (if ``launch`` was not awaited) and return the outputs at the start of the run period."""

    @abc.abstractmethod
    def step(self, inputs: Mapping[str, float]) -> Awaitable[Sample | None]:
        """Apply ``inputs`` (tag -> value) for one timestep; await the outputs, or None when the run is over.

        An ``async def`` will do. An engine that computes elsewhere (another process) should send the
        inputs before returning, so that its computation overlaps what the caller does before awaiting."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop the engine and release its resources; safe to call at any time and more than once."""
