"""Where a building's engine runs: in this process (``[campus] executor = "local"``, the engine of its kind,
bridge/engines/kinds.py) or in a Ray actor (``"ray"``, bridge/engines/ray_actor.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bridge.config import BuildingConfig, CampusConfig
from bridge.engines.base import Engine
from bridge.engines.kinds import engine_of_kind

EngineFactory = Callable[[BuildingConfig, CampusConfig, Path], Engine]  # (building, campus, work folder)


def make_engine(building: BuildingConfig, config: CampusConfig, workdir: Path) -> Engine:
    """The engine a building's config asks for; with ``[campus] executor = "ray"``, one that runs it in a
    Ray actor, which builds the engine of the building's kind there (``engine_of_kind``)."""
    if config.executor.kind == "ray":
        from bridge.engines.ray_actor import RayEngine

        return RayEngine(building, config, workdir)
    return engine_of_kind(building, config, workdir)
