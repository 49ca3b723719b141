"""EPW weather for the twin: runs touching 31 December, partial files, leap years."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridge.config import load_config
from bridge.engines.external_interface import ExternalInterfaceEngine
from bridge.twin.weather import WeatherError, read_epw, weather_series

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def epw() -> Path:
    return load_config(ROOT / "sims/small_office.toml").buildings[0].weather


def test_run_ending_new_years_eve_reads_december_31(epw):
    times = pd.date_range("2025-12-31 00:00", "2026-01-01 00:00", freq="10min")
    series = weather_series(epw, times)
    assert np.isfinite(series.to_numpy()).all()
    hourly = read_epw(epw, 2025)
    on_the_hour = series[series.index.minute == 0].iloc[1:]  # 01:00 .. 24:00 (= 2026-01-01 00:00)
    december_31 = hourly[hourly.index >= "2025-12-31 01:00"]
    np.testing.assert_array_equal(on_the_hour.to_numpy(), december_31.to_numpy())


def test_times_across_new_year_join_both_years(epw):
    times = pd.date_range("2025-12-31 23:00", "2026-01-01 02:00", freq="1h")
    series = weather_series(epw, times)
    hourly = read_epw(epw, 2026)
    assert series.iloc[-1].tolist() == hourly.loc["2026-01-01 02:00"].tolist()
    assert series.iloc[1].tolist() == read_epw(epw, 2025).loc["2026-01-01 00:00"].tolist()


def test_partial_file_refuses_times_in_its_gap(tmp_path):
    lines = ["header"] * 8 + [f"2025,7,{day},{hour},0,x,{20 + hour},10,{50 + hour}"
                              for day in (1, 2) for hour in range(1, 25)]
    path = tmp_path / "july.epw"
    path.write_text("\n".join(lines) + "\n")
    assert weather_series(path, pd.date_range("2025-07-01 06:00", periods=3, freq="1h")).shape == (3, 2)
    with pytest.raises(WeatherError, match="july.epw.*2025-12-31"):
        weather_series(path, pd.date_range("2025-12-31 00:00", "2026-01-01 00:00", freq="1h"))


def synthetic_epw(tmp_path: Path) -> Path:
    """A typical year without 29 February whose dry bulb is the day of the year (1 January = 1) plus
    hour / 100, so a value names the file row it came from."""
    lines = ["header"] * 8
    day = dt.date(2025, 1, 1)
    while day.year == 2025:
        number = day.timetuple().tm_yday
        lines += [f"1999,{day.month},{day.day},{hour},0,x,{number + hour / 100},10,50" for hour in range(1, 25)]
        day += dt.timedelta(days=1)
    path = tmp_path / "typical.epw"
    path.write_text("\n".join(lines) + "\n")
    return path


def file_row(month: int, day: int, hour: int) -> float:
    return dt.date(2025, month, day).timetuple().tm_yday + hour / 100


def test_leap_year_run_reads_a_typical_file_in_sequence(tmp_path):
    """As EnergyPlus 25.2 does (measured in the test below, and over 27 Feb 2024 - 2 Mar 2025): a run
    started before 29 February of a leap year reads the file's next day from 29 February on, 31 December
    the file's 1 January, and stays a day ahead the next year; a run started later reads every date as
    it is; the run's 00:00 takes its first day's 24:00."""
    path = synthetic_epw(tmp_path)
    times = pd.DatetimeIndex(["2024-02-27 00:00", "2024-02-28 12:00", "2024-02-29 12:00", "2024-03-01 12:00",
                              "2024-12-30 12:00", "2024-12-31 12:00", "2025-01-01 12:00", "2025-03-01 12:00"])
    drybulb = weather_series(path, times, run_start=dt.date(2024, 2, 27))["Site Outdoor Air Drybulb Temperature"]
    expected = [file_row(2, 27, 24), file_row(2, 28, 12), file_row(3, 1, 12), file_row(3, 2, 12),
                file_row(12, 31, 12), file_row(1, 1, 12), file_row(1, 2, 12), file_row(3, 2, 12)]
    np.testing.assert_allclose(drybulb.to_numpy(), expected)
    later = pd.DatetimeIndex(["2024-03-01 12:00", "2024-12-31 12:00"])
    drybulb = weather_series(path, later, run_start=dt.date(2024, 3, 1))["Site Outdoor Air Drybulb Temperature"]
    np.testing.assert_allclose(drybulb.to_numpy(), [file_row(3, 1, 12), file_row(12, 31, 12)])


def test_weather_matches_energyplus_across_a_leap_day(tmp_path):
    """The Small Office run by EnergyPlus over 27 February - 1 March 2024 (a leap year, a TMY file
    without 29 February): its outdoor temperature at every 10-minute step equals the twin's weather."""
    config = load_config(ROOT / "sims/small_office.toml")
    building = config.buildings[0]
    period = dataclasses.replace(config.period, start=dt.date(2024, 2, 27), end=dt.date(2024, 3, 2))

    async def outdoor_temps_c() -> pd.Series:
        engine = ExternalInterfaceEngine(building.name, building.model, building.weather, building.tagmap, period,
                                         tmp_path / "work")
        inputs = {item.tag: item.default for item in building.tagmap.inputs}
        temps = {}
        try:
            await engine.start()
            while (sample := await engine.step(inputs)) is not None:
                temps[pd.Timestamp(period.time_of(sample.sim_time_s))] = sample.outputs["OutdoorTemp"]
        finally:
            await engine.stop()
        return pd.Series(temps)

    measured = asyncio.run(outdoor_temps_c())
    assert measured.index[-1] == pd.Timestamp("2024-03-02 00:00")  # 27 February to 1 March, 4 days
    twin = weather_series(building.weather, measured.index, run_start=period.start)
    np.testing.assert_allclose(twin["Site Outdoor Air Drybulb Temperature"].to_numpy(), measured.to_numpy(), atol=1e-9)
