"""A twin bridge with ``warm_up = "history"`` beside a real "live" bridge (docs/live.md, "Spin-up"): the live bridge
runs the Small Office on Las Vegas weather (at Chicago's site) for two days and keeps serving; the twin, on
Chicago's file, starts the day after and, before its engine starts, reads the live building's recorded weather of
the day before by HistoryRead. Its engine's weather file holds that day on the run's first day; every other
record and field is Chicago's. And with no live server, the twin starts on its own file and says so."""

import asyncio
import datetime as dt
import time

import pytest
from asyncua import Client, ua

from bridge.config import RunPeriod, reference_weather
from bridge.epw import HORIZONTAL_INFRARED_FIELD, WEATHER_FIELDS, day_records
from bridge.historian import read_tag
from bridge.live.warmup import sky_infrared_w_per_m2
from bridge.protocol import NAMESPACE
from conftest import free_port, run_bridge
from devtools.livetwin import (LIVE_BUILDING_TAGMAP, LIVE_WEATHER, MIRRORED, TWIN_WEATHER, building_entry,
                               campus_file, live_table, relocated_weather)

LIVE_DAY, TWIN_DAY = dt.date(2025, 9, 24), dt.date(2025, 9, 25)  # the live building's recorded day, the twin's first
# twin input -> its EPW field; the file is written to 0.1
FIELDS = {"OutdoorDryBulb": WEATHER_FIELDS["Outdoor Dry Bulb"], "OutdoorRelativeHumidity":
          WEATHER_FIELDS["Outdoor Relative Humidity"], "WindSpeed": WEATHER_FIELDS["Wind Speed"],
          "WindDirection": WEATHER_FIELDS["Wind Direction"], "DirectSolar": WEATHER_FIELDS["Direct Solar"],
          "DiffuseSolar": WEATHER_FIELDS["Diffuse Solar"], "SkyTemperature": HORIZONTAL_INFRARED_FIELD}
SOLAR = {WEATHER_FIELDS["Direct Solar"], WEATHER_FIELDS["Diffuse Solar"]}
WARM_UP = '[buildings.live]\nwarm_up = "history"\nwarm_up_timeout_s = 20\n'


async def finished(endpoint: str, campus: str, timeout_s: float = 240.0) -> None:
    async with Client(endpoint, timeout=10) as client:
        status = client.get_node(ua.NodeId(f"{campus}.Control.Status", await client.get_namespace_index(NAMESPACE)))
        deadline = time.monotonic() + timeout_s
        while await status.read_value() not in ("Finished", "Stopped", "Faulted"):
            assert time.monotonic() < deadline, f"{campus} did not finish within {timeout_s} s"
            await asyncio.sleep(0.2)
        assert await status.read_value() == "Finished"


def twin_campus(tmp_path, endpoint: str) -> tuple:
    table = live_table(endpoint, "Live", "SmallOffice").replace("[buildings.live]\n", WARM_UP, 1)
    return campus_file(tmp_path / "twin.toml", "Twin", RunPeriod(TWIN_DAY, TWIN_DAY, 6),
                       [building_entry("SmallOffice", "ref:small_office", TWIN_WEATHER, table)])


def fields(record: bytes) -> list[str]:
    return record.decode("latin-1").rstrip("\r\n").split(",")


def test_twin_warms_up_on_the_live_buildings_recorded_day(tmp_path):
    chicago = reference_weather(TWIN_WEATHER.removeprefix("ref:"))
    live_weather = relocated_weather(reference_weather(LIVE_WEATHER.removeprefix("ref:")), chicago, tmp_path / "live.epw")
    live_toml = campus_file(tmp_path / "live.toml", "Live", RunPeriod(LIVE_DAY - dt.timedelta(days=1), LIVE_DAY, 6),
                            [building_entry("SmallOffice", "ref:small_office", str(live_weather),
                                            tagmap=LIVE_BUILDING_TAGMAP)])
    with run_bridge(live_toml, tmp_path, "--clock", "fast") as live:
        asyncio.run(finished(live.endpoint, "Live"))
        with run_bridge(twin_campus(tmp_path, live.endpoint), tmp_path, "--clock", "fast") as twin:
            asyncio.run(finished(twin.endpoint, "Twin"))
            [warmed] = list(twin.run_dir.glob("*/SmallOffice-warm-up.epw"))
            log = twin.log
        history = live.historian()
    assert "SmallOffice: warm-up day 09-25 of USA_IL_Chicago" in log and "no warm-up" not in log, log

    written, own = warmed.read_bytes().splitlines(), chicago.read_bytes().splitlines()
    first_day = {i for i, line in enumerate(own) if line in {r.rstrip(b"\r\n") for r in day_records(chicago, TWIN_DAY)}}
    assert len(first_day) == 24 and all(written[i] == own[i] for i in range(len(own)) if i not in first_day)
    replaced = set(FIELDS.values())
    recorded = {tag: dict(read_tag(history, "SmallOffice", MIRRORED[tag][1])) for tag in FIELDS}
    live_records = [fields(r) for r in day_records(live_weather, LIVE_DAY)]
    moved = 0
    for hour, (record, old) in enumerate(zip((fields(r) for r in day_records(warmed, TWIN_DAY)),
                                             (fields(r) for r in day_records(chicago, TWIN_DAY))), start=1):
        assert [f for i, f in enumerate(record) if i not in replaced] == [f for i, f in enumerate(old) if i not in replaced]
        mark = dt.datetime.combine(LIVE_DAY, dt.time()) + dt.timedelta(hours=hour)
        for tag, index in FIELDS.items():
            if index in SOLAR:  # hourly totals: the mean of the hour ending at h:00
                values = [v for t, v in recorded[tag].items() if mark - dt.timedelta(hours=1) < t <= mark]
                assert float(record[index]) == pytest.approx(sum(values) / len(values), abs=0.051), (tag, hour)
            else:  # the reading at h:00: EnergyPlus's value of the live file's hour h, so that file's record
                value = recorded[tag][mark]
                value = sky_infrared_w_per_m2(value) if tag == "SkyTemperature" else value
                assert float(record[index]) == pytest.approx(value, abs=0.051), (tag, hour)
                assert float(record[index]) == pytest.approx(float(live_records[hour - 1][index]), abs=0.11), (tag, hour)
            moved += abs(float(record[index]) - float(old[index])) > 1.0
    assert moved > 24, "the live day differs from Chicago's (the test can fail)"


def test_twin_without_its_live_server_starts_on_its_own_file(tmp_path):
    began = time.monotonic()
    with run_bridge(twin_campus(tmp_path, f"opc.tcp://127.0.0.1:{free_port()}"), tmp_path, "--clock", "fast") as twin:
        asyncio.run(finished(twin.endpoint, "Twin"))
        log = twin.log
        assert not list(twin.run_dir.glob("*/SmallOffice-warm-up.epw"))
    lines = [line for line in log.splitlines() if "no warm-up from the live history" in line]
    assert len(lines) == 1 and "spin_up_h = 72" in lines[0] and "09-25 of its own weather file" in lines[0], log
    assert time.monotonic() - began < 120
