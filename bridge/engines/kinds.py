"""Which engine class simulates a building in this process, and which tags it shows: the one place that maps
a building's ``engine`` kind to its ``Engine`` class (bridge/engines/factory.py chooses the executor; a Ray
node actor builds its engines here too)."""

from __future__ import annotations

from pathlib import Path

from bridge.config import BuildingConfig, CampusConfig
from bridge.engines.base import Engine
from bridge.protocol import EngineKind
from bridge.tagmap import TagMap


def engine_of_kind(building: BuildingConfig, config: CampusConfig, workdir: Path) -> Engine:
    """The engine of ``building``'s kind (EnergyPlus through ExternalInterface or its API, or a GP twin),
    to run in this process."""
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
