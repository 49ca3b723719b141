"""The warm-up from history (bridge/live/warmup.py, docs/live.md "Spin-up"): the EPW day splice, the hourly
values made from recorded samples, and a twin whose live server is absent starting on its own file."""

import asyncio
import datetime as dt
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.config import load_config
from bridge.epw import HEADER_LINES, WEATHER_FIELDS, day_records, splice_day, with_fields
from bridge.live.warmup import Field, hourly_values, slot_marks, sky_infrared_w_per_m2, warmed_config
from conftest import SIMS, TAGMAPS, free_port

DRY_BULB = Field(WEATHER_FIELDS["Outdoor Dry Bulb"])
DIRECT = Field(WEATHER_FIELDS["Direct Solar"])
START = dt.datetime(2025, 9, 25, 13, 30)

# ----- the splice --------------------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="latin-1", exclude_characters=",\r\n"), max_size=6)
ENDS = st.sampled_from([b"\n", b"\r\n"])
DATES = st.sampled_from([(9, 24), (9, 25), (12, 31), (2, 29)])


@st.composite
def epw_files(draw):
    """(header lines + data records, as bytes lines with their ends): records of a few dates, any other text."""
    header = [draw(TEXT).encode("latin-1") + draw(ENDS) for _ in range(HEADER_LINES)]
    records = []
    for _ in range(draw(st.integers(0, 30))):
        month, day = draw(DATES)
        fields = [draw(TEXT), str(month), str(day), *(draw(TEXT) for _ in range(draw(st.integers(1, 6))))]
        records.append(",".join(fields).encode("latin-1") + draw(ENDS))
    return header + records


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=epw_files(), date=DATES, data=st.data())
def test_splice_replaces_the_day_and_keeps_every_other_line_byte_for_byte(tmp_path, lines, date, data):
    path, out = tmp_path / "in.epw", tmp_path / "out.epw"
    path.write_bytes(b"".join(lines))
    day = dt.date(2024, *date)
    on_day = [i for i, line in enumerate(lines) if i >= HEADER_LINES and tuple(line.split(b",")[1:3]) ==
              (str(date[0]).encode(), str(date[1]).encode())]
    assert day_records(path, day) == [lines[i] for i in on_day]
    given_records = [data.draw(TEXT).encode("latin-1") + b"\n" for _ in on_day]
    splice_day(path, day, given_records, out)
    written = out.read_bytes().splitlines(keepends=True)
    assert len(written) == len(lines)
    assert [written[i] for i in on_day] == given_records
    assert all(written[i] == lines[i] for i in range(len(lines)) if i not in on_day)
    with pytest.raises(ValueError, match="records on"):
        splice_day(path, day, given_records + [b"x\n"], out)


@settings(max_examples=200, deadline=None)
@given(fields=st.lists(TEXT, min_size=22, max_size=35), end=ENDS, values=st.dictionaries(
    st.integers(0, 21), TEXT.map(lambda t: t or "0"), max_size=5))
def test_with_fields_replaces_only_the_fields_given(fields, end, values):
    record = ",".join(fields).encode("latin-1") + end
    replaced = with_fields(record, values)
    assert replaced.endswith(end) and not replaced[:-len(end)].endswith((b"\r", b"\n"))
    assert replaced[:-len(end)].decode("latin-1").split(",") == [values.get(i, f) for i, f in enumerate(fields)]


# ----- hour slots and values ---------------------------------------------------------------------------

def every(minutes: int, value, begin=START - dt.timedelta(days=1, hours=1), end=START):
    """Samples every ``minutes`` from ``begin`` to ``end`` of ``value(time)``."""
    times, time = [], begin
    while time <= end:
        times.append(time)
        time += dt.timedelta(minutes=minutes)
    return [(t, value(t)) for t in times]


def test_each_hour_takes_its_latest_occurrence_before_the_start():
    marks = slot_marks(START)
    assert marks[13] == dt.datetime(2025, 9, 25, 13) and marks[14] == dt.datetime(2025, 9, 24, 14)
    assert marks[24] == dt.datetime(2025, 9, 25) and marks[1] == dt.datetime(2025, 9, 25, 1)
    midnight = slot_marks(dt.datetime(2025, 9, 25))
    assert midnight[24] == dt.datetime(2025, 9, 25) and midnight[1] == dt.datetime(2025, 9, 24, 1)


def test_values_are_the_hours_latest_and_solar_the_hours_mean():
    """Hours of yesterday and today are told apart (today's values are 100 higher); a dry bulb is the value
    holding at h:00; solar the mean of the hour ending at h:00."""
    def dry_bulb(t):
        return (100.0 if t.date() == START.date() else 0.0) + t.hour + t.minute / 60

    values, hours = hourly_values(every(10, dry_bulb), START, DRY_BULB)
    assert hours == 24
    assert values[13] == 113.0 and values[1] == 101.0 and values[24] == 100.0  # today's (24: midnight)
    assert values[14] == 14.0 and values[23] == 23.0  # yesterday's
    solar, _ = hourly_values(every(10, lambda t: 60.0 * t.hour + t.minute), START, DIRECT)
    assert solar[10] == pytest.approx((550 + 560 + 570 + 580 + 590 + 600) / 6)


def test_a_value_recorded_on_change_holds_and_empty_hours_interpolate():
    changes = [(dt.datetime(2025, 9, 25, 12, 10), 20.0), (dt.datetime(2025, 9, 25, 12, 50), 21.0)]
    values, hours = hourly_values(changes, START, DRY_BULB)
    assert hours == 1 and values[13] == 21.0 and set(values.values()) == {21.0}
    gappy = [(t, v) for t, v in every(10, lambda t: t.hour + t.minute / 60) if t.hour not in (3, 4, 5)]
    values, hours = hourly_values(gappy, START, DRY_BULB)
    assert hours == 22 and values[4] == pytest.approx(2 + 50 / 60 + (6 - 2 - 50 / 60) / 3)  # between 3:00 and 6:00
    assert hourly_values([], START, DRY_BULB) == ({}, 0)


def test_sky_temperature_goes_to_the_file_as_energyplus_derives_its_sky_from_it():
    infrared = sky_infrared_w_per_m2(5.0)
    assert (infrared / 5.670374419e-8) ** 0.25 - 273.15 == pytest.approx(5.0)


# ----- history absent ----------------------------------------------------------------------------------

def twin_config(tmp_path, port: int):
    text = (SIMS / "small_office.toml").read_text().replace('"../tagmaps/small_office.toml"',
                                                           f'"{TAGMAPS}/small_office_live.toml"')
    path = tmp_path / "twin.toml"
    path.write_text(text + f'''
[buildings.live]
endpoint = "opc.tcp://127.0.0.1:{port}"
warm_up = "history"
warm_up_timeout_s = 5
[[buildings.live.inputs]]
input = "OutdoorDryBulb"
node = "Live.SmallOffice.Outputs.OutdoorTemp"
unit = "degC"
''')
    return load_config(path)


def test_without_a_live_server_the_building_keeps_its_file_and_says_so(tmp_path, caplog):
    config = twin_config(tmp_path, free_port())
    building = config.buildings[0]
    caplog.set_level(logging.INFO, "bridge.live.warmup")
    kept = asyncio.run(warmed_config(building, building.tagmap, dt.date(2025, 9, 25), dt.datetime(2025, 9, 25),
                                     tmp_path / "warm.epw"))
    assert kept is building and not (tmp_path / "warm.epw").exists()
    [line] = [r.getMessage() for r in caplog.records if r.name == "bridge.live.warmup"]
    assert "no warm-up from the live history" in line and "spin_up_h = 72" in line, line

