"""Weather files are checked before EnergyPlus gets them (issue 13, defect 5): a text or binary file
that is not an EPW is refused in the configuration, naming the weather file, without starting EnergyPlus."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import REPO, SIMS, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.config import ConfigError, load_config, reference_weather
from bridge.epw import WeatherError, check_epw
from devtools.fuzz import examples

CHICAGO = reference_weather("usa_il_chicago")


def campus_with_weather(tmp_path: Path, weather: Path) -> Path:
    text = (SIMS / "small_office.toml").read_text().replace('"../tagmaps/', f'"{REPO}/tagmaps/')
    path = tmp_path / "campus.toml"
    path.write_text(text.replace('weather = "ref:usa_il_chicago"', f'weather = "{weather}"'))
    return path


def edited(tmp_path: Path, line: int, edit) -> Path:
    """The Chicago EPW with its 1-based ``line`` changed by ``edit`` (fields -> fields, or None to delete it)."""
    lines = CHICAGO.read_text(encoding="latin-1").splitlines()
    fields = edit(lines[line - 1].split(","))
    lines[line - 1:line] = [] if fields is None else [",".join(fields)]
    path = tmp_path / "edited.epw"
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return path


@pytest.mark.parametrize("content", [(REPO / "README.md").read_bytes(), bytes(range(256)) * 400, b""],
                         ids=["text", "binary", "empty"])
def test_validate_refuses_a_file_that_is_not_a_weather_file_naming_it(tmp_path, content):
    weather = tmp_path / "weather.epw"
    weather.write_bytes(content)
    began = time.monotonic()
    result = run_cli("validate", str(campus_with_weather(tmp_path, weather)), timeout_s=60)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - began < 30  # EnergyPlus spun on it until the 300 s dictionary timeout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(weather) in lines[0] and "EPW" in lines[0], result.stderr
    assert "eplus" not in result.stdout + result.stderr.lower().replace("energyplus", "")


@pytest.mark.parametrize("line, edit, message", [
    (1, lambda f: f[:6] + ["north", *f[7:]], "line 1: LOCATION latitude"),
    (1, lambda f: f[:8] + ["-20", *f[9:]], "line 1: LOCATION time zone"),
    (3, lambda f: ["TYPICAL PERIODS", *f[1:]], "line 3: expected the TYPICAL/EXTREME PERIODS header"),
    (8, lambda f: f[:2] + ["7", *f[3:]], "line 8: DATA PERIODS"),
    (9, lambda f: f[:-1], "line 9: 34 fields"),
    (12, lambda f: f[:6] + ["warm", *f[7:]], "line 12: field 7"),
    (3700, lambda f: f[:2] + ["31", *f[3:]], "line 3700: 6/31 is not a date"),
    (9, lambda f: None, "8759 data records; DATA PERIODS .* needs 8760 or 8784"),
])
def test_a_broken_record_is_named_by_file_and_line(tmp_path, line, edit, message):
    path = edited(tmp_path, line, edit)
    with pytest.raises(WeatherError, match=f"{path}: {message}"):
        check_epw(path)


def test_the_configuration_names_the_building_and_the_weather_file(tmp_path):
    weather = edited(tmp_path, 1, lambda f: ["PLACE", *f[1:]])
    with pytest.raises(ConfigError, match=f"buildings.0.: weather: {weather}: line 1: expected the LOCATION"):
        load_config(campus_with_weather(tmp_path, weather))


def test_every_shipped_weather_file_passes():
    from pyenergyplus import dataset

    for path in dataset.weather_files.values():
        check_epw(Path(path))


def test_a_changed_file_is_checked_again(tmp_path):
    path = tmp_path / "w.epw"
    path.write_bytes(CHICAGO.read_bytes())
    check_epw(path)
    path.write_bytes(CHICAGO.read_bytes()[:-200])
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(WeatherError):
        check_epw(path)


@pytest.mark.property
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.integers(0, 4000), inserted=st.binary(max_size=3), deleted=st.integers(0, 3))
def test_a_mutated_header_gives_a_weather_error_or_passes(tmp_path, at, inserted, deleted):
    data = bytearray(CHICAGO.read_bytes())
    data[at:at + deleted] = inserted
    path = tmp_path / "mutated.epw"
    path.write_bytes(bytes(data))
    try:
        check_epw(path)
    except WeatherError as exc:
        assert str(path) in str(exc)
