"""The record of one campus run: its historian file, written as steps are published (a failed write
keeps its rows for the next), closed at the end of the run, and the run's KPIs beside it.

Rotation (``[run] historian_rotate``, for long realtime runs): the historian being written is always
``historian.sqlite``; when a step's time (its ``time`` column: UTC in realtime runs) enters a new day
("daily") or month ("monthly"), that file is closed and renamed ``historian-<YYYY-MM-DD | YYYY-MM>.sqlite``
and a new one begun, and with ``historian_keep_days`` the renamed files whose period ended more than
that many days before the new step are deleted."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import logging
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.building import BuildingState
from bridge.config import CampusConfig
from bridge.historian import BlockValues, Historian, Values

if TYPE_CHECKING:
    from bridge.server import TagServer

log = logging.getLogger(__name__)

Row = tuple[str, int, float, dt.datetime, Values]  # (building, step, sim time s, sim time, tag values)
# or a block row (``Historian.record``): (buildings, step, sim time s, sim time, their inputs and outputs)
BlockRow = tuple[tuple[str, ...], int, float, dt.datetime, BlockValues]
SEGMENT_FORMATS = {"daily": "%Y-%m-%d", "monthly": "%Y-%m"}
FAST_WRITE_S = 0.2  # fast mode: the historian is written at most this often (s of wall time), several steps at once
ROTATED = re.compile(r"^historian-(\d{4}-\d{2}(?:-\d{2})?)\.sqlite$")


def segment_of(time: dt.datetime, rotate: str) -> str:
    """The historian file (day or month of ``time``) that a row at ``time`` goes to under ``rotate``."""
    return time.strftime(SEGMENT_FORMATS[rotate])


def segment_end(segment: str) -> dt.datetime:
    """The time a rotated file's period ends: the next day or the next month."""
    if len(segment) == 10:
        return dt.datetime.fromisoformat(segment) + dt.timedelta(days=1)
    year, month = (int(part) for part in segment.split("-"))
    return dt.datetime(year + month // 12, month % 12 + 1, 1)


def expired(names: Iterable[str], now: dt.datetime, keep_days: float) -> list[str]:
    """The rotated historian files among ``names`` whose period ended more than ``keep_days`` before ``now``."""
    limit = now - dt.timedelta(days=keep_days)
    return sorted(name for name in names if (match := ROTATED.match(name)) and segment_end(match.group(1)) < limit)


class RunRecord:
    """Historian and KPIs of the runs of ``config`` (one at a time)."""

    def __init__(self, config: CampusConfig):
        self.config = config
        self.historian: Historian | None = None
        self.path: Path | None = None  # the historian file of the last run that has one
        self._unrecorded: list[Row | BlockRow] = []  # historian rows of the last published step
        self._opening: tuple[dict, dict] = ({}, {})  # the historian's tag maps and metadata, for a rotated file
        self._segment: str | None = None  # rotation: the day or month the historian being written holds
        self._written_at = 0.0  # monotonic time of the last write
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
        self._opening = ({b.name: b.tagmap for b in buildings},
                         {"campus": self.config.name, "config": self.config.path, "clock": self.config.clock,
                          "started": stamp, "time": "UTC" if self.config.clock == "realtime" else "simulation"})
        self._segment = None
        self.historian = Historian(self.path, *self._opening)
        log.info("historian: %s", self.path)

    def add(self, rows: list[Row | BlockRow]) -> None:
        """Rows of a published step, recorded at the next ``write`` (into a new file if they begin a new
        day or month under rotation)."""
        if rows and self.config.historian_rotate and self.historian is not None:
            segment = segment_of(rows[0][3], self.config.historian_rotate)
            if self._segment is not None and segment != self._segment:
                self._rotate(rows[0][3])
            self._segment = segment
        self._unrecorded.extend(rows)

    def _rotate(self, now: dt.datetime) -> None:
        """Close the historian, keep it as ``historian-<segment>.sqlite``, begin a new one, delete expired files."""
        self.close()
        kept = self.path.with_name(f"historian-{self._segment}.sqlite")
        self.path.rename(kept)
        self.historian = Historian(self.path, *self._opening)
        log.info("historian: %s kept; a new %s begun", kept.name, self.path.name)
        if self.config.historian_keep_days:
            for name in expired((p.name for p in self.path.parent.iterdir()), now, self.config.historian_keep_days):
                (self.path.parent / name).unlink(missing_ok=True)
                log.info("historian: %s deleted (older than %g days)", name, self.config.historian_keep_days)

    def write(self, batched: bool = False) -> None:
        """Append the published but unrecorded steps to the historian (a crash loses at most these). A
        failed write (a full disk) is logged and its rows kept for the next write; the run goes on.
        ``batched`` (fast mode): only once FAST_WRITE_S of wall time passed since the last write, so that
        a write holds several steps (one commit, one ``executemany`` per building)."""
        if self.historian is None or not self._unrecorded:
            return
        now = time.monotonic()
        if batched and now - self._written_at < FAST_WRITE_S:
            return
        self._written_at = now
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
                                       settings.emissions_kgco2_per_kwh, wall_s, settings.gas_price_usd_per_kwh,
                                       settings.gas_emissions_kgco2_per_kwh)
        path = kpi.write_kpis_json(self.path.parent / "kpis.json", kpis)
        await server.publish_kpis(None, kpis["campus"])
        for name, values in kpis["buildings"].items():
            await server.publish_kpis(name, values)
        log.info("KPIs (%s): %s", path, kpi.summary(kpis["campus"]))
