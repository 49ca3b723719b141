"""CSV trajectories: parsing, interpolation and the checks that run before a run (fast, no engine)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from controllers.base import ControllerConfigError, InputRange
from controllers.csv_trajectory import CsvController, load_trajectory

EXAMPLE = Path(__file__).resolve().parent.parent / "controllers" / "examples" / "small_office_trajectory.csv"
INPUTS = {"CoolingSetpoint": InputRange("CoolingSetpoint", 18.0, 32.0, "degC"),
          "HeatingSetpoint": InputRange("HeatingSetpoint", 10.0, 24.0, "degC")}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trajectory.csv"
    path.write_text(text)
    return path


@pytest.fixture
def simple(tmp_path):
    return write(tmp_path, "time,CoolingSetpoint,HeatingSetpoint\n"
                           "2025-07-01 06:00,24.0,21.0\n"
                           "2025-07-01T07:00:00,26.0,19.0\n"
                           "2025-07-01 08:00,25.0,20.0\n")


def test_step_interpolation_holds_the_last_row(simple):
    trajectory = load_trajectory(simple, "step")
    assert trajectory.values_at(dt.datetime(2025, 7, 1, 5, 0)) == {"CoolingSetpoint": 24.0, "HeatingSetpoint": 21.0}
    assert trajectory.values_at(dt.datetime(2025, 7, 1, 6, 50)) == {"CoolingSetpoint": 24.0, "HeatingSetpoint": 21.0}
    assert trajectory.values_at(dt.datetime(2025, 7, 1, 7, 0)) == {"CoolingSetpoint": 26.0, "HeatingSetpoint": 19.0}
    assert trajectory.values_at(dt.datetime(2025, 7, 2)) == {"CoolingSetpoint": 25.0, "HeatingSetpoint": 20.0}


def test_linear_interpolation_between_rows(simple):
    trajectory = load_trajectory(simple, "linear")
    assert trajectory.values_at(dt.datetime(2025, 7, 1, 6, 30)) == {"CoolingSetpoint": 25.0, "HeatingSetpoint": 20.0}
    assert trajectory.values_at(dt.datetime(2025, 7, 1, 7, 15))["CoolingSetpoint"] == pytest.approx(25.75)
    assert trajectory.values_at(dt.datetime(2025, 7, 1, 5, 0))["CoolingSetpoint"] == 24.0
    assert trajectory.values_at(dt.datetime(2025, 7, 1, 9, 0))["CoolingSetpoint"] == 25.0


def test_example_passes_the_checks():
    controller = CsvController(load_trajectory(EXAMPLE, "linear"))
    controller.check(INPUTS)
    assert controller.decide(dt.datetime(2025, 7, 1, 6, 0), {}) == {"CoolingSetpoint": 25.0, "HeatingSetpoint": 19.5}


@pytest.mark.parametrize("text, message", [
    ("when,CoolingSetpoint\n2025-07-01 06:00,24\n", r"row 1 \(header\): no 'time' column"),
    ("time,CoolingSetpoint,HeatingSetpoint\n2025-07-01 06:00,24,21\nyesterday noon,25,21\n",
     r"row 3, column 'time': cannot read 'yesterday noon' as a time"),
    ("time,CoolingSetpoint,HeatingSetpoint\n2025-07-01 06:00,24,21\n2025-07-01 05:00,25,21\n",
     r"row 3, column 'time': '2025-07-01 05:00' is not after the previous row's time"),
    ("time,CoolingSetpoint,HeatingSetpoint\n2025-07-01 06:00,24,21\n2025-07-01 07:00,warm,21\n",
     r"row 3, column 'CoolingSetpoint': cannot read 'warm' as a number"),
    ("time,CoolingSetpoint,HeatingSetpoint\n2025-07-01 06:00,24,21\n2025-07-01 07:00,25\n",
     r"row 3: 2 fields, the header has 3"),
    ("time,CoolingSetpoint,CoolingSetpoint\n2025-07-01 06:00,24,21\n",
     r"column 'CoolingSetpoint' appears more than once"),
    ("time,CoolingSetpoint,HeatingSetpoint\n", r"no data rows"),
    ("time,CoolingSetpoint,HeatingSetpoint\n2025-07-01 06:00+02:00,24,21\n", r"row 2, column 'time': .* time zone"),
])
def test_unreadable_files_name_row_and_column(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ControllerConfigError, match=message) as error:
        load_trajectory(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("text, message", [
    ("time,CoolingSetpoint,HeatingSetpoint,FanSpeed\n2025-07-01 06:00,24,21,1\n",
     r"row 1 \(header\): column 'FanSpeed' is not an input tag of the building"),
    ("time,CoolingSetpoint\n2025-07-01 06:00,24\n", r"row 1 \(header\): no column for input tag 'HeatingSetpoint'"),
    ("time,CoolingSetpoint,HeatingSetpoint\n2025-07-01 06:00,24,21\n\n2025-07-01 07:00,24,30\n",
     r"row 4, column 'HeatingSetpoint': 30 is outside the tag's EURange \[10, 24\] degC"),
])
def test_columns_are_checked_against_the_browsed_tags(tmp_path, text, message):
    path = write(tmp_path, text)
    trajectory = load_trajectory(path)
    with pytest.raises(ControllerConfigError, match=message):
        CsvController(trajectory).check(INPUTS)


def test_excel_utf8_byte_order_mark_is_read_and_other_encodings_are_named(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_text("time,CoolingSetpoint\n2025-07-01 00:00,27\n", encoding="utf-8-sig")
    assert load_trajectory(path).columns == {"CoolingSetpoint": (27.0,)}
    path.write_text("time,CoolingSetpoint\n2025-07-01 00:00,27 \xb0C\n", encoding="cp1252")
    with pytest.raises(ControllerConfigError, match=f"{path}: not UTF-8 text .* at byte 41"):
        load_trajectory(path)


def test_unknown_interpolation_and_missing_file(tmp_path, simple):
    with pytest.raises(ControllerConfigError, match="interpolation must be one of"):
        load_trajectory(simple, "cubic")
    with pytest.raises(ControllerConfigError, match="trajectory file not found"):
        load_trajectory(tmp_path / "nope.csv")
