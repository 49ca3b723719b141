"""The realtime clock (bridge/realtime.py): time zones and daylight saving, the run period and the steps
skipped to the start, historian rotation, and real runs of the Small Office at 600x on the wall clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from asyncua import Client, ua

from bridge.config import ConfigError, load_config, reference_model, reference_weather
from bridge.daylight import daylight_saving_rule
from bridge.epw import read_records
from bridge.realtime import RealtimeSchedule, Zone, floor_to_step, open_period
from bridge.runrecord import RunRecord, expired
from bridge.tagmap import load_tagmap
from conftest import TAGMAPS, run_bridge, wait_until

NS = "urn:twinbridge"
UTC = dt.timezone.utc


def chicago() -> Zone:
    return Zone(-6.0, daylight_saving_rule(reference_model("small_office")))


def realtime_file(tmp_path: Path, run: str, name: str = "rt.toml", weather: str = "ref:usa_il_chicago") -> Path:
    path = tmp_path / name
    path.write_text(f'[campus]\nname = "RT"\n[run]\ntimesteps_per_hour = 6\nclock = "realtime"\n{run}\n'
                    f'[[buildings]]\nname = "SmallOffice"\nmodel = "ref:small_office"\nweather = "{weather}"\n'
                    f'tagmap = "{TAGMAPS}/small_office.toml"\n')
    return path


# ----- time zones -----------------------------------------------------------------------------

def test_chicago_standard_time_in_january_is_utc_minus_6():
    zone = chicago()
    standard = dt.datetime(2026, 1, 15, 8, 0)
    assert zone.utc(standard) == dt.datetime(2026, 1, 15, 14, 0, tzinfo=UTC)
    assert zone.local(standard).isoformat() == "2026-01-15T08:00:00-06:00"
    assert zone.standard_of(dt.datetime(2026, 1, 15, 8, 0)) == standard  # a clock reading: no daylight saving


def test_chicago_in_july_is_utc_minus_5_with_daylight_saving():
    """EnergyPlus keeps standard time: 07:00 standard (CST) is 13:00 UTC and 08:00 on the building's clock (CDT)."""
    zone = chicago()
    standard = dt.datetime(2025, 7, 15, 7, 0)
    assert zone.utc(standard) == dt.datetime(2025, 7, 15, 13, 0, tzinfo=UTC)
    local = zone.local(standard)
    assert local.isoformat() == "2025-07-15T08:00:00-05:00" and local.astimezone(UTC) == zone.utc(standard)
    assert zone.standard_of(dt.datetime(2025, 7, 15, 8, 0)) == standard  # a clock reading in CDT
    assert zone.standard_of(dt.datetime(2025, 7, 15, 13, 0, tzinfo=UTC)) == dt.datetime(2025, 7, 15, 7, 0)


def test_run_period_of_years_starts_on_the_start_day(tmp_path):
    config = load_config(realtime_file(tmp_path, 'start_time = "2025-12-31T23:05:00"\nrealtime_years = 10'))
    schedule = RealtimeSchedule(config)
    period = schedule.run_period(dt.datetime.now(UTC))
    assert (period.start, period.end, period.open_ended) == (dt.date(2025, 12, 31), dt.date(2035, 12, 30), True)
    start = schedule.start(dt.datetime.now(UTC))
    assert start == dt.datetime(2025, 12, 31, 23, 0)  # rounded down to the 10-minute step
    assert schedule.skip_steps(start) == 138
    assert open_period(dt.date(2024, 2, 29), 1, 6).end == dt.date(2025, 2, 28)
    assert floor_to_step(dt.datetime(2025, 1, 1, 0, 59, 59), 60) == dt.datetime(2025, 1, 1, 0, 59)


def test_realtime_configuration_errors(tmp_path):
    with pytest.raises(ConfigError, match="start_time"):
        load_config(realtime_file(tmp_path, 'start_time = "yesterday"'))
    with pytest.raises(ConfigError, match="historian_rotate"):
        load_config(realtime_file(tmp_path, 'historian_rotate = "hourly"'))
    with pytest.raises(ConfigError, match="needs historian_rotate"):
        load_config(realtime_file(tmp_path, "historian_keep_days = 3"))
    tz_file = tmp_path / "tokyo.epw"
    lines = reference_weather("usa_il_chicago").read_text(encoding="latin-1").splitlines(keepends=True)
    fields = lines[0].split(",")
    fields[8] = "9.0"
    tz_file.write_text(",".join(fields) + "".join(lines[1:]), encoding="latin-1")
    two = realtime_file(tmp_path, "", "two.toml")
    two.write_text(two.read_text() + f'[[buildings]]\nname = "Tokyo"\nmodel = "ref:small_office"\nweather = "{tz_file}"\n'
                   f'tagmap = "{TAGMAPS}/small_office.toml"\n')
    with pytest.raises(ConfigError, match="one time zone.*UTC\\+9"):
        load_config(two)


# ----- historian rotation -----------------------------------------------------------------------

def test_retention_deletes_whole_files_older_than_the_kept_days():
    names = ["historian-2026-01-01.sqlite", "historian-2026-01-02.sqlite", "historian-2026-01-05.sqlite",
             "historian.sqlite", "historian-2025-11.sqlite", "historian-2025-12.sqlite", "kpis.json"]
    now = dt.datetime(2026, 1, 6, 0, 10)
    assert expired(names, now, 5.0) == ["historian-2025-11.sqlite", "historian-2025-12.sqlite"]  # ended 1 Jan 00:00
    assert expired(names, now, 3.0) == ["historian-2025-11.sqlite", "historian-2025-12.sqlite",
                                        "historian-2026-01-01.sqlite", "historian-2026-01-02.sqlite"]
    assert expired(names, now, 0.1) == expired(names, now, 3.0)  # the day being written is never in the list


def test_daily_rotation_keeps_one_file_a_day_and_deletes_the_expired(tmp_path):
    config = load_config(realtime_file(tmp_path, 'historian_rotate = "daily"\nhistorian_keep_days = 1.5'))
    tagmap = load_tagmap(TAGMAPS / "small_office.toml")
    record = RunRecord(config)
    record.open(tmp_path / "run", [SimpleNamespace(name="SmallOffice", tagmap=tagmap)], "stamp")
    start = dt.datetime(2026, 1, 1, 0, 0)
    for step in range(1, 4 * 24 + 1):  # four days of hourly rows
        record.add([("SmallOffice", step, step * 3600.0, start + dt.timedelta(hours=step), {"FacilityPower": 1.0})])
        record.write()
    record.close()
    files = sorted(p.name for p in (tmp_path / "run").glob("historian*.sqlite"))
    assert files == ["historian-2026-01-03.sqlite", "historian-2026-01-04.sqlite", "historian.sqlite"]
    with sqlite3.connect(tmp_path / "run" / "historian-2026-01-04.sqlite") as db:
        times = [row[0] for row in db.execute('SELECT time FROM "SmallOffice" ORDER BY step')]
    assert times[0] == "2026-01-04T00:00:00" and times[-1] == "2026-01-04T23:00:00" and len(times) == 24
    with sqlite3.connect(tmp_path / "run" / "historian.sqlite") as db:
        assert db.execute('SELECT COUNT(*) FROM "SmallOffice"').fetchone()[0] == 1  # 2026-01-05 00:00


# ----- real runs ----------------------------------------------------------------------------------

async def _control(client: Client, name: str):
    idx = await client.get_namespace_index(NS)
    return client.get_node(ua.NodeId(f"RT.SmallOffice.Control.{name}", idx))


async def _watch_steps(endpoint: str, last: int) -> list[tuple[int, float, dt.datetime, str, float]]:
    """(step, wall time it was seen, SimTime, SimTimeLocal, UtcOffset) of steps 0..last, polled every 5 ms."""
    async with Client(endpoint, timeout=10) as client:
        nodes = [await _control(client, name) for name in ("Step", "SimTime", "SimTimeLocal", "UtcOffset")]

        async def running():
            return (await nodes[2].read_value()) != ""

        await wait_until(running, 120)
        seen: list = []
        deadline = time.monotonic() + 120
        while (not seen or seen[-1][0] < last) and time.monotonic() < deadline:
            step, sim_time, local, offset = await client.read_values(nodes)
            if not seen or step != seen[-1][0]:
                seen.append((step, time.time(), sim_time, local, offset))
            await asyncio.sleep(0.005)
        return seen


@pytest.mark.engine
def test_a_run_from_new_years_eve_goes_on_into_the_new_year_on_the_wall_clock(tmp_path):
    """start_time 2025-12-31 23:00 in Chicago at 2400x (a 10-minute step every quarter second): step 0 is 05:00
    UTC, each step is published a quarter second after the one before, and after midnight the building's weather is the
    EPW file's 1 January (calendar Thursday 2026-01-01) with no restart."""
    config = realtime_file(tmp_path, 'start_time = "2025-12-31T23:00:00"\nspeed = 2400')
    with run_bridge(config, tmp_path) as bridge:
        seen = asyncio.run(_watch_steps(bridge.endpoint, 25))
        historian = next(bridge.run_dir.glob("*/historian.sqlite"))
    steps = [s[0] for s in seen]
    assert steps[0] == 0 and steps[-1] >= 25
    first = next(s for s in seen if s[0] == 0)
    assert first[2] == dt.datetime(2026, 1, 1, 5, 0, tzinfo=UTC)
    assert first[3] == "2025-12-31T23:00:00-06:00" and first[4] == -6.0
    for step, wall, sim_time, local, offset in seen:
        assert sim_time == dt.datetime(2026, 1, 1, 5, 0, tzinfo=UTC) + dt.timedelta(minutes=10 * step)
    walls = {s[0]: s[1] for s in seen}
    for step in range(2, 21):  # each step a quarter second after the one before (polling adds up to ~10 ms)
        if step in walls and step - 1 in walls:
            assert abs(walls[step] - walls[step - 1] - 0.25) < 0.06, (step, walls[step] - walls[step - 1])
    assert abs(walls[20] - walls[1] - 4.75) < 0.06
    with sqlite3.connect(historian) as db:
        rows = dict(db.execute('SELECT time, OutdoorTemp FROM "SmallOffice"'))
    epw = {(int(f[1]), int(f[2]), int(f[3])): float(f[6]) for _, f in read_records(reference_weather("usa_il_chicago"))[1]}
    for hour in (1, 2, 3):  # 01:00 .. 03:00 standard time on 1 January = 07:00 .. 09:00 UTC
        assert rows[f"2026-01-01T{hour + 6:02d}:00:00"] == pytest.approx(epw[(1, 1, hour)], abs=0.01)
    assert rows["2026-01-01T06:00:00"] == pytest.approx(epw[(12, 31, 24)], abs=0.01)  # midnight: 31 Dec's 24:00


@pytest.mark.engine
def test_utc_stamps_in_july_carry_daylight_saving_and_outputs_are_stamped_in_utc(tmp_path):
    """A start_time read on the building's clock in July (CDT, UTC-5): step 0 is 13:00 UTC."""
    config = realtime_file(tmp_path, 'start_time = "2025-07-15T08:00:00"\nspeed = 600')
    with run_bridge(config, tmp_path) as bridge:
        seen = asyncio.run(_watch_steps(bridge.endpoint, 2))

        async def output_stamp():
            async with Client(bridge.endpoint, timeout=10) as client:
                idx = await client.get_namespace_index(NS)
                step = await (await _control(client, "Step")).read_value()
                value = await client.get_node(ua.NodeId("RT.SmallOffice.Outputs.FacilityPower", idx)).read_data_value()
                return step, value.SourceTimestamp

        step, stamp = asyncio.run(output_stamp())
    first = next(s for s in seen if s[0] == 0)
    assert first[2] == dt.datetime(2025, 7, 15, 13, 0, tzinfo=UTC)
    assert first[3] == "2025-07-15T08:00:00-05:00" and first[4] == -5.0
    assert abs((stamp.replace(tzinfo=UTC) - dt.datetime(2025, 7, 15, 13, 0, tzinfo=UTC)).total_seconds()
               - 600 * step) <= 600  # the step may have moved on between the two reads


@pytest.mark.engine
def test_without_start_time_step_0_is_now_rounded_down_to_the_step(tmp_path):
    """At speed 1 simulated time IS wall time: step 0 is the current minute (1-minute steps), in UTC."""
    config = realtime_file(tmp_path, "speed = 1")
    config.write_text(config.read_text().replace("timesteps_per_hour = 6", "timesteps_per_hour = 60"))
    launched = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    with run_bridge(config, tmp_path) as bridge:
        seen = asyncio.run(_watch_steps(bridge.endpoint, 0))
    step, wall, sim_time, _, _ = seen[0]
    now = dt.datetime.fromtimestamp(wall, UTC)
    # the first step seen may be 1 when the bridge started in a minute's last seconds: its step 0 is then
    # that minute, one step before
    step_0 = sim_time - dt.timedelta(minutes=step)
    assert sim_time.second == 0 and sim_time.microsecond == 0 and step <= 1
    assert launched <= step_0 <= now and dt.timedelta(0) <= now - sim_time < dt.timedelta(minutes=1, seconds=30)
