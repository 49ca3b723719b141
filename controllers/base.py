"""What every controller shares: the input tags it may write, the interface it implements, its errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from bridge.errors import TwinbridgeError


class ControllerConfigError(TwinbridgeError, ValueError):
    """A controller configuration that cannot be used; the message names the file, row or key, and column or tag."""


class ControllerError(TwinbridgeError, RuntimeError):
    """The control loop cannot go on (bridge refused a write, no step within the timeout, bridge unreachable)."""

    exit_code = 1  # the run went wrong, not the input


@dataclass(frozen=True)
class InputRange:
    """A writable input tag of a building, as browsed from the bridge (EURange and engineering unit)."""

    tag: str
    low: float
    high: float
    unit: str = ""

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


class Controller(Protocol):
    """A control strategy. ``decide`` gets the simulation time at the start of the step the inputs will
    apply to, and the outputs the bridge published at that time; it returns {input tag: value}."""

    def check(self, inputs: Mapping[str, InputRange]) -> None:
        """Raise ControllerConfigError if the strategy cannot drive a building with these inputs."""

    def decide(self, sim_time: dt.datetime, outputs: Mapping[str, float]) -> dict[str, float]:
        """Input values for the step starting at ``sim_time``."""
