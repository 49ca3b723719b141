"""The warm-up from history: the twin's weather file with its live building's recorded weather on the run's first day.

EnergyPlus warms a run up on the first day of its weather file, so a twin whose file is not the live building's
weather starts in another thermal state and takes days to converge (docs/live.md, "Spin-up"). With
``warm_up = "history"`` in ``[buildings.live]``, before the engine is launched the bridge reads (OPC UA HistoryRead)
what the live server recorded of the mirrored weather inputs over the 24 h before the start, converts each value
as the mirror does (``MirroredInput.convert``) and writes a copy of the building's weather file whose run-start day
holds them; the engine runs on that copy. Only the fields of mirrored weather inputs are replaced
(``bridge.epw.WEATHER_FIELDS``; a sky temperature T as horizontal infrared sigma (T + 273.15)^4, from which
EnergyPlus derives its sky); every other field and record stays the file's (``bridge.epw.splice_day``).

- **Time.** Server time plus the endpoint's ``utc_offset_h`` is the twin's local standard time, EnergyPlus's clock
  (as tracking's ``[live]`` takes it: 0 for a bridge that stamps simulation time, -6 for a Chicago server that stamps
  true UTC). The start is step 0: the run period's first midnight, or in realtime the current time on the step.
- **Hour slots.** The record of hour h (1..24) stands for h:00; each slot takes its latest occurrence at or before
  the start: hours up to the start's time of day from the start's day, the later ones from the day before.
- **Values.** Each slot is made of the values of the hour ending at h:00. An EPW record holds the reading at h:00
  (EnergyPlus interpolates linearly between them): the slot takes the latest value of that hour, the one that
  holds at h:00 (also when the history records only changes); for direct and diffuse solar, hourly totals (Wh/m2:
  the mean W/m2 of the hour ending at h:00), the mean of the hour's values.
- **Too few.** Every mirrored weather input needs values in at least ``MIN_HOURS`` of the 24 slots; an empty slot
  takes the value interpolated in time between its neighbours. Otherwise, or when the server is absent, does not
  answer HistoryRead or takes longer than ``warm_up_timeout_s``, one line says so and the twin warms up on its own
  file (and needs ``spin_up_h = 72`` in its tracking file): nothing fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from asyncua import Client

from bridge.config import BuildingConfig
from bridge.epw import HORIZONTAL_INFRARED_FIELD, WEATHER_FIELDS, day_records, splice_day, with_fields
from bridge.live.config import LiveConfig
from bridge.tagmap import SKY_TEMPERATURE, TagMap

log = logging.getLogger(__name__)

MIN_HOURS = 18  # of the 24 hour slots, with a recorded value, for each mirrored weather input
SIGMA_W_PER_M2K4 = 5.670374419e-8
HOUR = dt.timedelta(hours=1)
INTEGRATED = {WEATHER_FIELDS["Direct Solar"], WEATHER_FIELDS["Diffuse Solar"]}  # hourly totals, not values at h:00

Samples = list[tuple[dt.datetime, float]]  # (local standard time, value in the EPW field's unit)


def sky_infrared_w_per_m2(sky_temperature_c: float) -> float:
    """Horizontal infrared (W/m2) of a sky at ``sky_temperature_c``: EnergyPlus's sky temperature inverted."""
    return SIGMA_W_PER_M2K4 * (sky_temperature_c + 273.15) ** 4


@dataclass(frozen=True)
class Field:
    """The EPW field (0-based) a mirrored weather input fills, and its value from the input's (tag map unit)."""

    index: int
    to_epw: Callable[[float], float] = float

    @property
    def integrated(self) -> bool:
        return self.index in INTEGRATED


def weather_fields(live: LiveConfig, tagmap: TagMap) -> dict[str, Field]:
    """Mirrored input -> the EPW field it fills, for the mirrored inputs of ``tagmap`` that are weather inputs."""
    fields = {}
    for mirrored in live.inputs:
        weather = tagmap.input(mirrored.input).weather
        if weather == SKY_TEMPERATURE:
            fields[mirrored.input] = Field(HORIZONTAL_INFRARED_FIELD, sky_infrared_w_per_m2)
        elif weather is not None:
            fields[mirrored.input] = Field(WEATHER_FIELDS[weather])
    return fields


def slot_marks(start: dt.datetime) -> dict[int, dt.datetime]:
    """Hour h (1..24) -> the latest h:00 at or before ``start`` (h = 24: a midnight)."""
    midnight = dt.datetime.combine(start.date(), dt.time())
    return {hour: midnight + hour * HOUR - dt.timedelta(days=1 if midnight + hour * HOUR > start else 0)
            for hour in range(1, 25)}


def hourly_values(samples: Samples, start: dt.datetime, field: Field) -> tuple[dict[int, float], int]:
    """(hour h (1..24) -> the EPW value of hour h, number of hours that held values) from ``samples`` of the hours
    ending at each slot's h:00 (``slot_marks``): the latest, or for an integrated field the mean (module docstring);
    empty slots interpolated in time between the others, none when no slot holds a value."""
    marks = slot_marks(start)
    ordered = sorted(samples)
    covered = {}
    for hour, mark in marks.items():
        values = [value for time, value in ordered if mark - HOUR < time <= mark]
        if values:
            covered[hour] = math.fsum(values) / len(values) if field.integrated else values[-1]
    if not covered:
        return {}, 0
    order = sorted(covered, key=marks.__getitem__)
    known_s = [marks[hour].timestamp() for hour in order]
    filled = {hour: covered[hour] if hour in covered else
              float(np.interp(marks[hour].timestamp(), known_s, [covered[h] for h in order])) for hour in marks}
    return filled, len(covered)


def weather_with_day(weather: Path, day: dt.date, values: dict[int, dict[int, float]], out: Path) -> Path:
    """Write ``out``: EPW file ``weather`` with the fields of ``values`` (0-based field -> hour 1..24 -> value) replaced
    in its records of ``day`` (month and day), written to 0.1; the rest of the file byte for byte."""
    records = [with_fields(record, {index: f"{hourly[int(record.split(b',')[3])]:.1f}" for index, hourly in values.items()})
               for record in day_records(weather, day)]
    out.parent.mkdir(parents=True, exist_ok=True)
    return splice_day(weather, day, records, out)


async def read_history(live: LiveConfig, names: Sequence[str], begin: dt.datetime, end: dt.datetime) -> dict[str, Samples]:
    """Input -> the (server time, live value) its live node recorded between aware ``begin`` and ``end`` (good values
    that are numbers only), by HistoryRead on the live server."""
    # imported here: the tracking link brings pandas, which the bridge does not import before EnergyPlus is launched
    from bridge.tracking.live import connect, disconnect, naive_utc, resolve_nodes

    client = Client(live.endpoint.url, timeout=live.endpoint.request_timeout_s)
    nodes = {m.input: m.node for m in live.inputs if m.input in names}
    await connect(client, live.endpoint)  # asyncua closes what a failed connect opened
    try:
        node_ids = await resolve_nodes(client, live.endpoint, nodes)
        history = {}
        for name, node_id in node_ids.items():
            values = await client.get_node(node_id).read_raw_history(begin, end, return_bounds=False)
            history[name] = [(naive_utc(v.SourceTimestamp or v.ServerTimestamp), float(v.Value.Value)) for v in values
                             if v.StatusCode.is_good() and isinstance(v.Value.Value, (int, float))
                             and not isinstance(v.Value.Value, bool)]
        return history
    finally:
        await disconnect(client)


async def warmed_config(building: BuildingConfig, tagmap: TagMap, day: dt.date, start: dt.datetime,
                        out: Path) -> BuildingConfig:
    """``building`` with its weather file replaced by a copy (``out``) whose records of ``day`` (the run period's
    first day) hold the live building's recorded weather of the 24 h before ``start`` (step 0, local standard time),
    when its ``[buildings.live]`` asks for it (``warm_up = "history"``) and the history is there; else ``building``
    itself, with one line saying why."""
    live = building.live
    if live is None or live.warm_up != "history":
        return building
    try:
        return replace(building, weather=await _warmed_weather(building, live, tagmap, day, start, out))
    except Exception as exc:  # whatever keeps the history away, the twin runs on its own file
        log.warning("%s: no warm-up from the live history (%s); EnergyPlus warms up on %s of its own weather file %s: "
                    "judge the twin only after spin_up_h = 72 (docs/live.md, \"Spin-up\")",
                    building.name, str(exc) or type(exc).__name__, f"{day:%m-%d}", building.weather)
        return building


async def _warmed_weather(building: BuildingConfig, live: LiveConfig, tagmap: TagMap, day: dt.date,
                          start: dt.datetime, out: Path) -> Path:
    fields = weather_fields(live, tagmap)
    offset = dt.timedelta(hours=live.endpoint.utc_offset_h)  # server time + offset = standard time
    begin = start - dt.timedelta(days=1)
    try:
        history = await asyncio.wait_for(
            read_history(live, list(fields), (begin - offset).replace(tzinfo=dt.timezone.utc),
                         (start - offset).replace(tzinfo=dt.timezone.utc)),
            live.warm_up_timeout_s)
    except asyncio.TimeoutError:
        raise TimeoutError(f"HistoryRead on {live.endpoint.url} took more than {live.warm_up_timeout_s:g} s") from None
    converted = {m.input: [(time + offset, fields[m.input].to_epw(m.convert(value))) for time, value in history[m.input]]
                 for m in live.inputs if m.input in fields}  # (standard time, value in the EPW field's unit)
    hourly, short = {}, []
    for name, samples in converted.items():
        hourly[name], hours = hourly_values(samples, start, fields[name])
        if hours < MIN_HOURS:
            short.append(f"{name} recorded in {hours} of the 24 hours before {start:%Y-%m-%d %H:%M}, "
                         f"fewer than {MIN_HOURS}")
    if short:
        raise LookupError("; ".join(short))
    weather_with_day(building.weather, day, {fields[name].index: values for name, values in hourly.items()}, out)
    log.info("%s: warm-up day %s of %s from the live history of %s .. %s (%d values of %s); its engine runs on %s",
             building.name, f"{day:%m-%d}", building.weather.name, f"{begin:%Y-%m-%d %H:%M}", f"{start:%Y-%m-%d %H:%M}",
             sum(len(s) for s in converted.values()), ", ".join(converted), out)
    return out
