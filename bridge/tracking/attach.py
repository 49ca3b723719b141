"""Tracking inside a bridge: a building's tracking status on the bridge's own OPC UA server.

``attach_tracking`` adds ``Objects/<Campus>/<Building>/Tracking`` (node id
``<Campus>.<Building>.Tracking``, with ``Severity``, ``DeviationPct``, ``LastAlert`` and
``StaleData`` below it, OPC UA events fired from it and each pair's calibration view in
``Tracking.<Pair>``, see ``sinks.AsyncuaAlertSink``) and starts
a ``LiveLink`` on the tracking file as an asyncio task. Alerts also go to the log and to the
anomaly log of the tracking file. The caller cancels the task on shutdown.

A campus file lists the buildings to track (read by the bridge's CLI)::

    [[tracking]]
    building = "SmallOffice"                    # a building of this campus: the twin side
    config = "../tracking/small_office.toml"    # tracking TOML (bridge/tracking/config.py), relative to the campus file
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

from asyncua import ua

from bridge.server import TagServer
from bridge.tracking.config import TrackingConfigError, load_tracking_config
from bridge.tracking.live import LiveLink, default_sinks
from bridge.tracking.sinks import AsyncuaAlertSink


async def attach_tracking(tag_server: TagServer, campus_name: str, building: str, tracking_config_path: str | Path,
                          step_s: float) -> asyncio.Task:
    """Create ``<Campus>.<Building>.Tracking`` on ``tag_server`` and start tracking; return the LiveLink task.

    Call after ``tag_server.add_building(building, ...)`` (the building node must exist).
    ``step_s`` is the twin's step length in seconds (``CampusConfig.period.step_s``).
    The tracking file's ``[twin]`` endpoint is replaced by ``tag_server.endpoint`` (the twin is this
    bridge) and every pair's ``twin`` node must be a tag of this building (``<Campus>.<Building>.*``).
    Raises ``TrackingConfigError`` for a bad tracking file and ``LookupError`` for an unknown building.
    """
    config = load_tracking_config(tracking_config_path)
    if step_s <= 0:
        raise ValueError(f"step_s must be positive, got {step_s}")
    prefix = f"{campus_name}.{building}"
    parent = tag_server.server.get_node(ua.NodeId(prefix, tag_server.idx))
    try:
        await parent.read_browse_name()
    except ua.UaStatusCodeError:
        raise LookupError(f"no building node {prefix!r} on the server: call attach_tracking after add_building") from None
    foreign = [p.twin for p in config.pairs if not p.twin.startswith(f"{prefix}.")]
    if foreign:
        raise TrackingConfigError(f"{tracking_config_path}: twin nodes {foreign} are not tags of {prefix}")
    # The twin is this bridge: its own endpoint (which --endpoint may have overridden) replaces the file's.
    config = dataclasses.replace(config, twin=dataclasses.replace(config.twin, url=tag_server.endpoint))
    node = await parent.add_object(ua.NodeId(f"{prefix}.Tracking", tag_server.idx),
                                   ua.QualifiedName("Tracking", tag_server.idx))
    sink = AsyncuaAlertSink(tag_server.server, node, tag_server.idx)
    await sink.setup()
    await sink.setup_calibration(p.name for p in config.pairs)
    link = LiveLink(config, [*default_sinks(config), sink], dt.timedelta(seconds=step_s))
    return asyncio.create_task(link.run(), name=f"tracking {prefix}")
