"""Which engine simulates a building, and which tags it shows: the one place that maps a building's
``engine`` kind to its ``Engine`` class."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bridge.config import BuildingConfig, CampusConfig
from bridge.engines.base import Engine
from bridge.protocol import EngineKind
from bridge.tagmap import TagMap

EngineFactory = Callable[[BuildingConfig, CampusConfig, Path], Engine]  # (building, campus, work folder)


def make_engine(building: BuildingConfig, config: CampusConfig, workdir: Path) -> Engine:
    """The engine a building's config asks for; with ``[campus] executor = "ray"``, one that runs it in a
    Ray actor (bridge/engines/ray_actor.py), which builds the real engine with this function."""
    if config.executor.kind == "ray":
        from bridge.engines.ray_actor import RayEngine

        return RayEngine(building, config, workdir)
    if building.engine == EngineKind.TWIN:
        from bridge.engines.twin import TwinEngine

        return TwinEngine(building.name, building.twin_model, building.weather, building.tagmap, config.period)
    if building.engine == EngineKind.ENERGYPLUS_API:
        from bridge.engines.energyplus_api import EnergyPlusApiEngine as EnergyPlusEngine
    else:
        from bridge.engines.external_interface import ExternalInterfaceEngine as EnergyPlusEngine

    return EnergyPlusEngine(building.name, building.model, building.weather, building.tagmap, config.period, workdir,
                            config.engine_start_timeout_s, config.engine_step_timeout_s)


def served_tagmap(building: BuildingConfig, config: CampusConfig) -> TagMap:
    """The tags a building shows: its tag map, plus a ``<Tag>Std`` output per modelled tag for a twin."""
    if building.engine != EngineKind.TWIN:
        return building.tagmap
    from bridge.engines.twin import TwinEngine

    return TwinEngine(building.name, building.twin_model, building.weather, building.tagmap,
                      config.period).published_tagmap
