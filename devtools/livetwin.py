"""A twin beside a "live building" on another weather file: campus files and the lockstep driver.

Used by ``tests/test_live_twin.py`` and ``bench/bench_live_twin.py`` (docs/live.md, "A twin under
the live building's weather"). The live bridge runs the DOE Small Office on one city's TMY3 (and
faulted copies of it); the twin bridge runs the nominal Small Office on Chicago TMY3 with
``tagmaps/small_office_live.toml`` and mirrors the live building's site weather outputs and setpoints
into its inputs through ``[buildings.live]``.

Timing: the live weather of step k is an output of the live step k, so it exists only once that step
is computed. ``drive_lockstep`` runs both bridges in lockstep and, per step, steps the live campus,
waits until the twin's mirrored inputs hold the live values just published, then steps the twin: the
twin's step k runs on the live weather of step k (no lag).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from asyncua import Client, ua

from bridge.comfort import Occupancy
from bridge.config import RunPeriod, reference_model
from bridge.daylight import daylight_saving_rule, period_in, simulation_time
from bridge.epw import day_records, splice_day
from bridge.protocol import NAMESPACE
from bridge.tagmap import load_tagmap

LIVE_TAGMAP = Path(__file__).resolve().parent.parent / "tagmaps" / "small_office_live.toml"  # the twin's
LIVE_BUILDING_TAGMAP = Path(__file__).resolve().parent / "live_building.toml"  # the live building's: rain from its file
TWIN_WEATHER = "ref:usa_il_chicago"
LIVE_WEATHER = "ref:usa_nv_las_vegas"  # July: hot and dry where Chicago is mild and humid
SPIN_UP_DAYS = 1  # each run warms up on its own file's first day: the building's thermal state differs at first

#: twin input -> (folder, tag) of the live building whose value it mirrors (same units: "X->X")
MIRRORED: dict[str, tuple[str, str]] = {
    "OutdoorDryBulb": ("Outputs", "OutdoorTemp"),
    "OutdoorRelativeHumidity": ("Outputs", "OutdoorHumidity"),  # EnergyPlus keeps the file's RH otherwise
    "WindSpeed": ("Outputs", "SiteWindSpeed"),
    "WindDirection": ("Outputs", "SiteWindDirection"),  # the exterior convection's windward/leeward sides
    "DirectSolar": ("Outputs", "SiteDirectSolar"),
    "DiffuseSolar": ("Outputs", "SiteDiffuseSolar"),
    "SkyTemperature": ("Outputs", "SiteSkyTemperature"),  # the file's sky infrared: no Weather Data actuator
    "CoolingSetpoint": ("Inputs", "CoolingSetpoint"),
    "HeatingSetpoint": ("Inputs", "HeatingSetpoint"),
}
UNITS = {"OutdoorDryBulb": "degC", "OutdoorRelativeHumidity": "%", "WindSpeed": "m/s", "WindDirection": "deg",
         "DirectSolar": "W/m2", "DiffuseSolar": "W/m2", "SkyTemperature": "degC", "CoolingSetpoint": "degC",
         "HeatingSetpoint": "degC"}


def twin_occupancy() -> Occupancy:
    """The Small Office's occupied hours: its tag map's ``[occupancy]`` (the model's HVACOperationSchd on the
    building's clock, weekdays 06-22, Saturdays 06-18, with its daylight saving rule), for the after-hours rule."""
    return load_tagmap(LIVE_TAGMAP).occupancy


def standard_pressure_pa(elevation_m: float) -> float:
    """Standard-atmosphere air pressure (Pa) at ``elevation_m``: 101325 (1 - 2.25577e-5 z)^5.2559
    (ASHRAE Handbook of Fundamentals 2017, ch. 1, eq. 3; EnergyPlus's standard barometric pressure)."""
    return 101325.0 * (1 - 2.25577e-5 * elevation_m) ** 5.2559


def relocated_weather(source: Path, site: Path, out: Path) -> Path:
    """``source``'s weather data at ``site``'s location: its EPW with the LOCATION line of ``site`` and its
    station pressures brought to ``site``'s elevation.

    The "live building" stands at the twin's site under another weather: the same sun path, time zone
    and elevation, so that only the weather differs. With the other city's own location, sunset comes
    35 min apart and the daylighting switches the lights at different times (measured, docs/live.md).
    Air pressure is not a Weather Data actuator, so the twin keeps its file's; the source's pressures
    (Las Vegas, 648 m: 94 kPa) at the site's elevation (Chicago, 201 m: 99 kPa) would leave the live
    building 5.5 % thinner air than any building at that site has (fans move 5.5 % less mass, and on
    low-load days the unit cycling drifts a step out of phase: docs/live.md). Each hour's pressure is
    scaled by the standard-atmosphere ratio of the two elevations, which keeps the source's weather-driven
    variation (hour to hour, front to front)."""
    site_location = next(line for line in site.read_text(errors="replace").splitlines() if line.startswith("LOCATION,"))
    lines = source.read_text(errors="replace").splitlines(keepends=True)
    source_location = next(line for line in lines if line.startswith("LOCATION,"))
    ratio = (standard_pressure_pa(float(site_location.split(",")[9]))
             / standard_pressure_pa(float(source_location.split(",")[9])))
    out.write_text("".join(site_location + "\n" if line.startswith("LOCATION,")
                           else _pressure_scaled(line, ratio) for line in lines))
    return out


def _pressure_scaled(line: str, ratio: float) -> str:
    """An EPW data record with its atmospheric station pressure (field 10, Pa) times ``ratio``; header
    lines unchanged."""
    fields = line.split(",")
    if not line[:1].isdigit() or len(fields) < 10:
        return line
    fields[9] = f"{float(fields[9]) * ratio:.0f}"
    return ",".join(fields)


def warmed_weather(twin: Path, live: Path, day: dt.date, out: Path) -> Path:
    """``twin``'s weather file with the records of ``day`` (month and day; the run period's first day, the one
    EnergyPlus repeats in its warm-up) taken from ``live``'s: the twin starts from the thermal state the live
    building's weather made, not its own file's.

    Warmed on its own file, the twin started up to 2.2 K (zones) and, on the first night after the day of spin-up,
    1.1 kW (12-step window, autumn from Sep 24) apart from the live building; the slow mass took 3 days to come
    within 0.1 kW (docs/live.md, "Spin-up"). A twin started beside a real building gets the same from the building's
    recorded weather (``warm_up = "history"`` in ``[buildings.live]``, bridge/live/warmup.py), or is judged only after
    3 days."""
    return splice_day(twin, day, day_records(live, day), out)


def building_entry(name: str, model: Path | str, weather: str, live: str = "", tagmap: Path = LIVE_TAGMAP) -> str:
    """One ``[[buildings]]`` entry on ``tagmap`` (the twin's by default); ``live``: its ``[buildings.live]``
    table, if any."""
    return (f'[[buildings]]\nname = "{name}"\nmodel = "{model}"\nweather = "{weather}"\n'
            f'tagmap = "{tagmap}"\n{live}\n')


def live_table(live_url: str, live_campus: str, live_building: str, inputs: Sequence[str] = tuple(MIRRORED),
               max_age_s: float = 30.0) -> str:
    """``[buildings.live]`` mirroring ``inputs`` from ``live_building`` of the live bridge at ``live_url``."""
    text = (f'[buildings.live]\nendpoint = "{live_url}"\nnamespace = "{NAMESPACE}"\nmax_age_s = {max_age_s}\n'
            "publishing_interval_ms = 20\nbackoff_min_s = 0.2\nbackoff_max_s = 1\n")
    for name in inputs:
        folder, tag = MIRRORED[name]
        text += (f'\n[[buildings.live.inputs]]\ninput = "{name}"\n'
                 f'node = "{live_campus}.{live_building}.{folder}.{tag}"\n'
                 f'unit = "{UNITS[name]}->{UNITS[name]}"\n')
    return text


def campus_file(path: Path, campus: str, period: RunPeriod, entries: Sequence[str]) -> Path:
    """A lockstep campus TOML over ``period`` with the given ``[[buildings]]`` entries."""
    head = (f'[campus]\nname = "{campus}"\n\n[run]\nstart = "{period.start:%m-%d}"\nend = "{period.end:%m-%d}"\n'
            f'year = {period.start.year}\ntimesteps_per_hour = {period.timesteps_per_hour}\nclock = "lockstep"\n'
            "lockstep_timeout_s = 60\n\n")
    path.write_text(head + "\n".join(entries))
    return path


class Stepper:
    """One building's controller: a client of its own (Exchange blocks its connection) calling Exchange."""

    def __init__(self, client: Client, idx: int, path: str):
        self.client, self.idx, self.path = client, idx, path
        self.control = client.get_node(ua.NodeId(f"{path}.Control", idx))
        self.method = ua.NodeId(f"{path}.Control.Exchange", idx)

    async def step(self) -> tuple[int, list[float]]:
        """One lockstep step with the inputs the tags hold: (step, outputs in OutputTags order)."""
        step, outputs, _applied = await self.control.call_method(self.method, ua.Variant([], ua.VariantType.Double))
        return step, outputs


async def _stepper(stack: AsyncExitStack, url: str, path: str) -> Stepper:
    client = await stack.enter_async_context(Client(url, timeout=60, watchdog_intervall=120))
    return Stepper(client, await client.get_namespace_index(NAMESPACE), path)


async def drive_lockstep(live_url: str, twin_url: str, live: Sequence[str], twin: Sequence[str],
                         mirrored: Mapping[str, str], steps: int, timeout_s: float = 30.0) -> dict:
    """Step ``steps`` times: the live buildings (``"Campus.Building"`` paths), then, once every twin of
    ``mirrored`` (twin path -> live path) holds the live values just published, the twin buildings.

    Returns timing figures: wall seconds per step and the mean wait for the mirror (s)."""
    async with AsyncExitStack() as stack:
        live_steppers = [await _stepper(stack, live_url, path) for path in live]
        twin_steppers = [await _stepper(stack, twin_url, path) for path in twin]
        live_reader = await stack.enter_async_context(Client(live_url, timeout=30))
        twin_reader = await stack.enter_async_context(Client(twin_url, timeout=30))
        live_idx = await live_reader.get_namespace_index(NAMESPACE)
        twin_idx = await twin_reader.get_namespace_index(NAMESPACE)
        pairs = []
        for twin_path, live_path in mirrored.items():
            pairs.append(([live_reader.get_node(ua.NodeId(f"{live_path}.{folder}.{tag}", live_idx))
                           for folder, tag in MIRRORED.values()],
                          [twin_reader.get_node(ua.NodeId(f"{twin_path}.Inputs.{name}", twin_idx)) for name in MIRRORED]))
        started, waited = time.monotonic(), 0.0
        for _ in range(steps):
            await asyncio.gather(*(s.step() for s in live_steppers))
            before = time.monotonic()
            for live_nodes, twin_nodes in pairs:
                await _until_mirrored(live_reader, twin_reader, live_nodes, twin_nodes, timeout_s)
            waited += time.monotonic() - before
            await asyncio.gather(*(s.step() for s in twin_steppers))
        elapsed = time.monotonic() - started
    return {"wall_s_per_step": elapsed / max(steps, 1), "mirror_wait_s_per_step": waited / max(steps, 1)}


async def _until_mirrored(live_reader: Client, twin_reader: Client, live_nodes: list, twin_nodes: list,
                          timeout_s: float) -> None:
    """Wait until the twin inputs equal the live values (converted identically), or TimeoutError."""
    wanted = await live_reader.read_values(live_nodes)
    deadline = time.monotonic() + timeout_s
    while True:
        held = await twin_reader.read_values(twin_nodes)
        if all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(wanted, held)):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"twin inputs {held} did not take the live values {wanted} within {timeout_s} s")
        await asyncio.sleep(0.005)


def onset_of(period: RunPeriod, fault_day: int, model: Path | None = None) -> tuple[dt.date, dt.datetime]:
    """(first faulted day, onset in simulation (standard) time): the building clock's midnight starting that
    day, under ``model``'s daylight saving rule (the reference Small Office when None): 23:00 the evening
    before in summer, 00:00 in winter."""
    day = period.start + dt.timedelta(days=fault_day - 1)
    saving = period_in(daylight_saving_rule(model or reference_model("small_office")), day.year)
    return day, simulation_time(dt.datetime.combine(day, dt.time()), saving)
