"""The record of one campus run: its historian file, written as steps are published (a failed write
keeps its rows for the next), closed at the end of the run, and the run's KPIs beside it."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.building import BuildingState
from bridge.config import CampusConfig
from bridge.historian import Historian

if TYPE_CHECKING:
    from bridge.server import TagServer

log = logging.getLogger(__name__)

Row = tuple[str, int, float, object, dict[str, float]]  # (building, step, sim time s, sim time, tag values)


class RunRecord:
    """Historian and KPIs of the runs of ``config`` (one at a time)."""

    def __init__(self, config: CampusConfig):
        self.config = config
        self.historian: Historian | None = None
        self.path: Path | None = None  # the historian file of the last run that has one
        self._unrecorded: list[Row] = []  # historian rows of the last published step
        self._kpi_module: asyncio.Future | None = None

    def import_kpi(self) -> None:
        """Import the KPI code (pandas) in a thread, while the engines start, when the bridge mostly waits."""
        if self._kpi_module is None:
            self._kpi_module = asyncio.ensure_future(asyncio.to_thread(importlib.import_module, "bridge.kpi"))

    def open(self, run_dir: Path, buildings: Iterable[BuildingState], stamp: str) -> None:
        """Start the historian of a run in ``run_dir`` (if the config keeps one); ``stamp`` its start time."""
        if not self.config.historian:
            return
        self.path = run_dir / "historian.sqlite"
        self.historian = Historian(self.path, {b.name: b.tagmap for b in buildings},
                                   {"campus": self.config.name, "config": self.config.path,
                                    "clock": self.config.clock, "started": stamp})
        log.info("historian: %s", self.path)

    def add(self, rows: list[Row]) -> None:
        """Rows of a published step, recorded at the next ``write``."""
        self._unrecorded.extend(rows)

    def write(self) -> None:
        """Append the published but unrecorded steps to the historian (a crash loses at most these). A
        failed write (a full disk) is logged and its rows kept for the next write; the run goes on."""
        if self.historian is None or not self._unrecorded:
            return
        try:
            self.historian.record(self._unrecorded)
        except Exception:
            log.exception("historian: could not record %d rows; kept for the next write", len(self._unrecorded))
            return
        self._unrecorded = []

    def close(self) -> None:
        """Record what was published and close the file, even when that last write fails."""
        self.write()
        if self._unrecorded:
            log.error("historian: %d published rows were never recorded (see the errors above)", len(self._unrecorded))
        self._unrecorded = []
        if self.historian is not None:
            self.historian.close()
            self.historian = None

    async def report_kpis(self, server: TagServer, buildings: Iterable[BuildingState], wall_s: float) -> None:
        """BOPTEST core KPIs of the run (docs/kpis.md, ``bridge.kpi``) to ``kpis.json`` beside the historian
        and to KPIs tags; ``wall_s`` the run's wall time."""
        kpi = await self._kpi_module
        settings = self.config.kpi
        price = (kpi.TimeOfUse(settings.price_periods, settings.price_usd_per_kwh) if settings.price_periods
                 else settings.price_usd_per_kwh)
        tagmaps = {b.name: b.tagmap for b in buildings if b.published_step > 0}
        kpis = await asyncio.to_thread(kpi.compute_kpis, self.path, tagmaps, price,
                                       settings.emissions_kgco2_per_kwh, wall_s)
        path = kpi.write_kpis_json(self.path.parent / "kpis.json", kpis)
        await server.publish_kpis(None, kpis["campus"])
        for name, values in kpis["buildings"].items():
            await server.publish_kpis(name, values)
        log.info("KPIs (%s): %s", path, kpi.summary(kpis["campus"]))
