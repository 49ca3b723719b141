"""EPW weather for the twin: runs touching 31 December, partial files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridge.config import load_config
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
