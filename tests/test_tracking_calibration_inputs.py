"""Calibration inputs: the calibration file, bills and interval meter data (one clear error each), the
whole-run calibration edits of faults.py. No engine."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config import reference_model
from bridge.idf import Idf
from bridge.tracking.calibration_params import CalibrationFileError, load_calibration_file
from bridge.tracking.faults import FaultError, apply_edit
from bridge.tracking.meterdata import Bill, MeterDataError, load_bills, load_interval

GOOD_PARAMETER = """
[[parameter]]
name = "plug_loads"
edit = "scale_equipment"
low = 0.5
high = 1.5
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_calibration_file_reads_parameters_and_settings(tmp_path):
    spec = load_calibration_file(write(tmp_path / "c.toml", GOOD_PARAMETER + """
[[parameter]]
name = "cooling_setback"
edit = "offset_schedule"
argument = "delta"
low = -2.0
high = 2.0
nominal = 0.0
fixed = { name = "CLGSETP_SCH", values = "max" }
[search]
max_simulations = 30
[monthly]
sustained_months = 2
recalibrate = true
"""))
    assert [p.name for p in spec.parameters] == ["plug_loads", "cooling_setback"]
    assert spec.parameters[0].nominal == 1.0  # the middle of the range by default
    assert spec.edits({"plug_loads": 1.2}) == [{"edit": "scale_equipment", "factor": 1.2},
                                               {"edit": "offset_schedule", "name": "CLGSETP_SCH", "values": "max",
                                                "delta": 0.0}]
    assert spec.search.max_simulations == 30 and spec.monthly.sustained_months == 2 and spec.monthly.recalibrate


@pytest.mark.parametrize("text, message", [
    (GOOD_PARAMETER.replace("low = 0.5", "low = 1.5"), "parameter[0] (plug_loads): 'low' (1.5) must be below 'high' (1.5)"),
    (GOOD_PARAMETER + "nominal = 2.0\n", "'nominal' (2.0) must be within [low, high] = [0.5, 1.5]"),
    (GOOD_PARAMETER.replace("scale_equipment", "scale_plugs"), "unknown edit 'scale_plugs'"),
    (GOOD_PARAMETER + 'argument = "pct"\n', "edit 'scale_equipment' takes no argument 'pct'"),
    (GOOD_PARAMETER + 'lo = 1\n', "unknown keys ['lo']"),
    (GOOD_PARAMETER.replace('name = "plug_loads"\n', ""), "parameter[0]: missing 'name'"),
    (GOOD_PARAMETER + GOOD_PARAMETER, "parameter names must be unique, repeated: ['plug_loads']"),
    (GOOD_PARAMETER.replace("high = 1.5", 'high = "1.5"'), "'high' must be a number, got '1.5'"),
    (GOOD_PARAMETER + "[search]\nworkers = 0\n", "[search]: 'workers' out of range, got 0"),
    ("[search]\n", "no [[parameter]] tables"),
    ("[[parameter]\n", "not valid TOML"),
])
def test_bad_calibration_file_is_one_clear_error(tmp_path, text, message):
    path = write(tmp_path / "c.toml", text)
    with pytest.raises(CalibrationFileError) as raised:
        load_calibration_file(path)
    assert message in str(raised.value) and str(path) in str(raised.value) and "\n" not in str(raised.value)


BILLS = "start,end,kWh,peak_kW,gas_therm\n2025-01-01,2025-01-31,5200,21.5,300\n2025-02-01,2025-02-28,4800,20,250\n"


def test_bills_are_read_with_units(tmp_path):
    bills = load_bills(write(tmp_path / "b.csv", BILLS))
    assert bills[0] == Bill(dt.date(2025, 1, 1), dt.date(2025, 1, 31), 5200.0, 21.5, pytest.approx(300 * 29.3071), 2)
    assert bills[1].days == 28 and len(bills[1].hours()) == 28 * 24
    mwh = load_bills(write(tmp_path / "m.csv", "Start,End,MWh,notes\n2025-01-01,2025-01-31,5.2,estimated\n"))
    assert mwh[0].kwh == 5200.0 and mwh[0].peak_kw is None


@pytest.mark.parametrize("text, message", [
    (BILLS.replace("2025-02-01", "2025-02-03"), "line 3: gap: bill starts 2025-02-03, the previous one (line 2) ends 2025-01-31"),
    (BILLS.replace("2025-02-01", "2025-01-20"), "line 3: overlap: bill starts 2025-01-20"),
    (BILLS.replace("4800", "-4800"), "line 3: kwh must be a finite number >= 0, got '-4800'"),
    (BILLS.replace("4800", "4,800"), "line 3: 6 values, the header has 5 (a thousands separator or a missing value?)"),
    (BILLS.replace("5200", "n/a"), "line 2: kwh must be a number, got 'n/a'"),
    (BILLS.replace("kWh", "usage"), "line 1: column 'usage': unclear name or unit"),
    (BILLS.replace("peak_kW", "peak"), "line 1: column 'peak': unclear name or unit"),
    (BILLS.replace("start,", "from,"), "line 1: column 'from': unclear name or unit"),
    (BILLS.replace(",kWh,", ",cost,"), "line 1: missing column(s) ['kwh']"),
    (BILLS.replace("2025-01-31", "2024-12-31"), "line 2: the bill ends (2024-12-31) before it starts (2025-01-01)"),
    (BILLS.replace("2025-01-31", "31/01/2025"), "line 2: end must be a date YYYY-MM-DD, got '31/01/2025'"),
    ("", "empty file"),
    ("start,end,kWh\n", "no bills after the header"),
])
def test_bad_bills_are_one_clear_error(tmp_path, text, message):
    path = write(tmp_path / "b.csv", text)
    with pytest.raises(MeterDataError) as raised:
        load_bills(path)
    assert message in str(raised.value) and str(path) in str(raised.value) and "\n" not in str(raised.value)


bill_lengths = st.lists(st.integers(1, 40), min_size=1, max_size=14)
amounts = st.floats(0, 1e7, allow_nan=False)


def bills_text(lengths: list[int], kwhs: list[float]) -> tuple[str, list[tuple[dt.date, dt.date]]]:
    day, rows, periods = dt.date(2024, 11, 15), ["start,end,kWh"], []
    for length, kwh in zip(lengths, kwhs):
        end = day + dt.timedelta(days=length - 1)
        rows.append(f"{day},{end},{kwh!r}")
        periods.append((day, end))
        day = end + dt.timedelta(days=1)
    return "\n".join(rows) + "\n", periods


@settings(max_examples=50, deadline=None)
@given(lengths=bill_lengths, data=st.data())
def test_property_valid_bills_round_trip(tmp_path_factory, lengths, data):
    kwhs = data.draw(st.lists(amounts, min_size=len(lengths), max_size=len(lengths)))
    text, periods = bills_text(lengths, kwhs)
    bills = load_bills(write(tmp_path_factory.mktemp("b") / "b.csv", text))
    assert [(b.start, b.end) for b in bills] == periods and [b.kwh for b in bills] == kwhs
    assert [b.line for b in bills] == list(range(2, len(lengths) + 2))


@settings(max_examples=50, deadline=None)
@given(lengths=bill_lengths.filter(lambda x: len(x) >= 2), data=st.data())
def test_property_a_broken_row_is_named(tmp_path_factory, lengths, data):
    kwhs = [1000.0] * len(lengths)
    text, _ = bills_text(lengths, kwhs)
    lines = text.splitlines()
    row = data.draw(st.integers(1, len(lines) - 1))
    fault = data.draw(st.sampled_from(["negative", "text", "gap", "overlap"]))
    start, end, kwh = lines[row].split(",")
    if fault == "negative":
        lines[row] = f"{start},{end},-{kwh}"
    elif fault == "text":
        lines[row] = f"{start},{end},{kwh}x"
    else:
        shift = dt.timedelta(days=1 if fault == "gap" else -1)
        first = dt.date.fromisoformat(start) + shift
        if row == 1 or first > dt.date.fromisoformat(end):  # the first bill has no previous one; keep a valid period
            return
        lines[row] = f"{first},{end},{kwh}"
    with pytest.raises(MeterDataError, match=f": line {row + 1}: "):
        load_bills(write(tmp_path_factory.mktemp("b") / "b.csv", "\n".join(lines) + "\n"))


def interval_csv(path: Path, values: list[str], minutes: int = 15, skip: int | None = None) -> Path:
    start = dt.datetime(2025, 7, 1, 0, minutes)
    rows = ["time,FacilityPower"] + [f"{start + dt.timedelta(minutes=minutes * i):%Y-%m-%d %H:%M},{v}"
                                     for i, v in enumerate(values) if i != skip]
    return write(path, "\n".join(rows) + "\n")


def test_interval_data_becomes_hourly_energy(tmp_path):
    hourly = load_interval(interval_csv(tmp_path / "m.csv", ["10"] * 8))  # 15-min mean kW, end-stamped
    assert hourly.tolist() == [10.0, 10.0] and hourly.index[0] == dt.datetime(2025, 7, 1)


@pytest.mark.parametrize("values, skip, message", [
    (["10", "-1", "10", "10"], None, "data row 2: FacilityPower is negative"),
    (["10", "10", "x", "10"], None, "data row 3: FacilityPower must be a number, got 'x'"),
    (["10"] * 6, 3, "data row 4: gap after 2025-07-01 00:45"),
])
def test_bad_interval_data_is_one_clear_error(tmp_path, values, skip, message):
    path = interval_csv(tmp_path / "m.csv", values, skip=skip)
    with pytest.raises(MeterDataError) as raised:
        load_interval(path)
    assert message in str(raised.value) and str(path) in str(raised.value)


def test_interval_data_with_a_repeated_time_is_refused(tmp_path):
    path = write(tmp_path / "m.csv", "time,FacilityPower\n2025-07-01 01:00,1\n2025-07-01 02:00,1\n"
                                     "2025-07-01 02:00,1\n2025-07-01 03:00,1\n")
    with pytest.raises(MeterDataError, match="data row 3: overlap"):
        load_interval(path)


@pytest.fixture(scope="module")
def small_office() -> Idf:
    return Idf.read(reference_model("small_office"))


def fields(idf: Idf, cls: str, index: int) -> list[str]:
    return [obj.fields[index] for obj in idf.of_class(cls)]


def test_calibration_edits_change_what_they_name(small_office):
    idf = Idf.parse("\n".join(obj.to_text() for obj in small_office.objects))  # a copy
    assert apply_edit(idf, {"edit": "scale_equipment", "factor": 0.5}) == 5
    assert set(fields(idf, "ElectricEquipment", 5)) == {"5.38"}
    apply_edit(idf, {"edit": "scale_lighting", "factor": 1.2})  # > 1 allowed without a start day
    assert set(fields(idf, "Lights", 5)) == {"12.912"}
    apply_edit(idf, {"edit": "scale_fan_efficiency", "factor": 2.0})
    assert set(fields(idf, "Fan:SystemModel", 14)) == {"1"}  # capped at 1
    apply_edit(idf, {"edit": "scale_cooling_cop", "factor": 1.1})
    assert {round(float(v), 3) for v in fields(idf, "Coil:Cooling:DX:SingleSpeed", 4)} == {4.033}
    apply_edit(idf, {"edit": "offset_schedule", "name": "CLGSETP_SCH", "values": "max", "delta": 1.5})
    values = {float(t) for t in idf.schedule("CLGSETP_SCH").fields[2:] if t.replace(".", "").isdigit()}
    assert max(values) == pytest.approx(26.7 + 1.5) and min(values) == pytest.approx(24.0)
    apply_edit(idf, {"edit": "scale_schedule", "name": "BLDG_EQUIP_SCH", "factor": 3.0})
    values = {float(t) for t in idf.schedule("BLDG_EQUIP_SCH").fields[2:] if t.replace(".", "").isdigit()}
    assert max(values) == 1.0  # a Fraction schedule stays within its limits


@pytest.mark.parametrize("edit, message", [
    ({"edit": "scale_equipment", "factor": 0}, "factor must be > 0"),
    ({"edit": "scale_lighting", "factor": 1.2, "start": "07-01"}, "factor must be in (0, 1] with a start day"),
    ({"edit": "offset_schedule", "name": "NOPE", "delta": 1}, "no Schedule:Compact named 'NOPE'"),
    ({"edit": "offset_schedule", "name": "CLGSETP_SCH", "delta": 1, "values": "top"}, "values must be 'all', 'max'"),
])
def test_bad_calibration_edit_is_a_fault_error(small_office, edit, message):
    with pytest.raises(FaultError, match=message.replace("(", r"\(").replace(")", r"\)")):
        apply_edit(small_office, edit)


def test_calibrate_model_command_refuses_bad_bills_in_one_line(tmp_path):
    from tests.conftest import run_cli

    params = write(tmp_path / "c.toml", GOOD_PARAMETER)
    bills = write(tmp_path / "b.csv", BILLS.replace("2025-02-01", "2025-02-03"))
    done = run_cli("mv", "calibrate-model", "--model", "ref:small_office", "--weather", "ref:usa_il_chicago",
                   "--params", str(params), "--bills", str(bills), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [(f"twinbridge: error: {bills}: line 3: gap: bill starts 2025-02-03, "
                                                 "the previous one (line 2) ends 2025-01-31; each bill starts the day "
                                                 "after the last")]


def test_hourly_meter_of_a_run_across_new_year(tmp_path):
    import sqlite3

    from bridge.tracking.simulate import hourly_meter

    sql = tmp_path / "eplusout.sql"
    with sqlite3.connect(sql) as db:
        db.execute("CREATE TABLE Time (TimeIndex INTEGER, Month INTEGER, Day INTEGER, Hour INTEGER, "
                   "EnvironmentPeriodIndex INTEGER)")
        db.execute("CREATE TABLE ReportDataDictionary (ReportDataDictionaryIndex INTEGER, Name TEXT, ReportingFrequency TEXT)")
        db.execute("CREATE TABLE ReportData (TimeIndex INTEGER, ReportDataDictionaryIndex INTEGER, Value REAL)")
        db.execute("INSERT INTO ReportDataDictionary VALUES (1, 'Electricity:Facility', 'Hourly')")
        for i, (month, day, hour) in enumerate([(12, 31, 23), (12, 31, 24), (1, 1, 1)]):
            db.execute("INSERT INTO Time VALUES (?, ?, ?, ?, 3)", (i, month, day, hour))
            db.execute("INSERT INTO ReportData VALUES (?, 1, ?)", (i, 3.6e6 * (i + 1)))
    series = hourly_meter(sql, 2025)
    assert series.index.tolist() == [dt.datetime(2025, 12, 31, 22), dt.datetime(2025, 12, 31, 23), dt.datetime(2026, 1, 1)]
    assert series.tolist() == [1.0, 2.0, 3.0]


def test_screening_without_salib_names_the_extra(monkeypatch):
    """SALib is the optional calibrate extra: without it, screening is one clear error, not an ImportError."""
    import sys

    from bridge.tracking.calibrate import CalibrationError, screen

    monkeypatch.setitem(sys.modules, "SALib", None)
    monkeypatch.setitem(sys.modules, "SALib.analyze", None)
    monkeypatch.setitem(sys.modules, "SALib.sample", None)
    with pytest.raises(CalibrationError, match=r"pip install -e '\.\[calibrate\]'"):
        screen(None)
