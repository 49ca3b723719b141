"""Weather inputs (docs/bridge.md, "Weather inputs"): a tag map input on EnergyPlus's "Weather Data"
actuator overrides the weather file in the step it is written for, in both EnergyPlus engines; one
nobody writes (NaN) leaves the run exactly as without it."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SIMS, TAGMAPS
from devtools.fuzz import examples
from bridge.config import RunPeriod, load_config
from bridge.cosim_files import input_values, variables_cfg
from bridge.engines.base import Engine
from bridge.engines.energyplus_api import EnergyPlusApiEngine
from bridge.engines.external_interface import ExternalInterfaceEngine
from bridge.tagmap import TagMapError, load_tagmap
from bridge.validate import building_problems

ONE_DAY = RunPeriod(dt.date(2025, 7, 1), dt.date(2025, 7, 1), 6)
ENGINES = {"external_interface": ExternalInterfaceEngine, "energyplus_api": EnergyPlusApiEngine}
LIVE = TAGMAPS / "small_office_live.toml"
WRITTEN_FROM, RELEASED_FROM = 60, 70  # steps (10:00 and 11:40 of July 1)


def run(kind: type[Engine], tagmap_path: Path, workdir: Path, inputs_of) -> list[dict[str, float]]:
    """Outputs of the Small Office over ONE_DAY: sample 0 at the start, then the end of each step k
    (sample k + 1), whose inputs are ``inputs_of(k)``."""
    building = load_config(SIMS / "small_office.toml").buildings[0]
    tagmap = load_tagmap(tagmap_path)
    engine = kind(building.name, building.model, building.weather, tagmap, ONE_DAY, workdir)

    async def trajectory() -> list[dict[str, float]]:
        samples = [await engine.start()]
        while (sample := await engine.step({**tagmap.defaults, **inputs_of(len(samples) - 1)})) is not None:
            samples.append(sample)
        await engine.stop()
        return [dict(s.outputs) for s in samples]

    return asyncio.run(trajectory())


@pytest.mark.engine
@pytest.mark.parametrize("kind", ENGINES.values(), ids=ENGINES.keys())
def test_written_dry_bulb_is_the_site_temperature_of_the_same_step(kind, tmp_path):
    """OutdoorDryBulb = 35 degC written for steps 60 to 69 is the site temperature at the end of exactly
    those steps, raises the power at once, and NaN from step 70 gives the weather file's value back."""
    base = run(kind, LIVE, tmp_path / "base", lambda k: {})
    written = run(kind, LIVE, tmp_path / "written",
                  lambda k: {"OutdoorDryBulb": 35.0} if WRITTEN_FROM <= k < RELEASED_FROM else {})
    outdoor = [s["OutdoorTemp"] for s in written]
    assert outdoor[:WRITTEN_FROM + 1] == [s["OutdoorTemp"] for s in base[:WRITTEN_FROM + 1]]
    assert outdoor[WRITTEN_FROM] < 20.0  # the weather file's 17.8 degC at the end of step 59
    assert outdoor[WRITTEN_FROM + 1:RELEASED_FROM + 1] == [35.0] * (RELEASED_FROM - WRITTEN_FROM)
    assert written[WRITTEN_FROM + 1]["FacilityPower"] > base[WRITTEN_FROM + 1]["FacilityPower"] + 3.0
    assert outdoor[RELEASED_FROM + 1:] == [s["OutdoorTemp"] for s in base[RELEASED_FROM + 1:]]


@pytest.mark.engine
@pytest.mark.parametrize("kind", ENGINES.values(), ids=ENGINES.keys())
def test_unwritten_weather_inputs_leave_the_run_bit_identical(kind, tmp_path):
    """The live tag map with no weather written gives every output of small_office.toml, bit for bit
    (without its sky-temperature input: that one stays within round-off, tests/test_sky_temperature.py)."""
    plain = run(kind, TAGMAPS / "small_office.toml", tmp_path / "plain", lambda k: {})
    weather_data = live_copy(tmp_path / "weather_data.toml", "", "", without_sky)
    live = run(kind, weather_data, tmp_path / "live", lambda k: {})
    assert len(live) == len(plain) == ONE_DAY.steps + 1
    assert [{tag: s[tag] for tag in plain[0]} for s in live] == plain  # every output of small_office.toml


def without_sky(text: str) -> str:
    """A tag map's text without its SkyTemperature input."""
    start = text.index('[[inputs]]\ntag = "SkyTemperature"')
    return text[:start] + text[text.index("[[outputs]]", start):]


def live_text() -> str:
    """The live tag map's text, extending small_office.toml by its absolute path (for copies elsewhere)."""
    return LIVE.read_text().replace('extends = "small_office.toml"', f'extends = "{TAGMAPS / "small_office.toml"}"')


def live_copy(path: Path, old: str, new: str, edit=lambda text: text) -> Path:
    """The live tag map with ``old`` replaced by ``new`` and then ``edit``-ed, at ``path``."""
    text = live_text()
    path.write_text(edit(text.replace(old, new) if old else text))
    return path


def test_unknown_weather_control_type_is_refused(tmp_path):
    path = live_copy(tmp_path / "bad.toml", 'weather = "Wind Direction"', 'weather = "Wind Dirction"')
    with pytest.raises(TagMapError, match=r"bad.toml: inputs\[3\] \(WindDirection\): unknown 'weather' 'Wind Dirction'"):
        load_tagmap(path)


def test_weather_default_is_nan_or_within_range(tmp_path):
    live = load_tagmap(LIVE)
    assert math.isnan(live.defaults["OutdoorDryBulb"]) and live.input("OutdoorDryBulb").actuator == (
        "Environment", "Weather Data", "Outdoor Dry Bulb")
    path = live_copy(tmp_path / "fixed.toml", 'weather = "Wind Speed"', 'weather = "Wind Speed"\ndefault = 3.0')
    assert load_tagmap(path).defaults["WindSpeed"] == 3.0
    live_copy(path, 'weather = "Wind Speed"', 'weather = "Wind Speed"\ndefault = 50.0')
    with pytest.raises(TagMapError, match="default 50.0 is outside"):
        load_tagmap(path)


@pytest.mark.engine
def test_validation_accepts_weather_inputs(tmp_path):
    """Weather actuators belong to the site ("Environment"), not to an object of the model."""
    building = load_config(SIMS / "small_office.toml").buildings[0]
    assert asyncio.run(building_problems(dataclasses.replace(building, tagmap=load_tagmap(LIVE)))) == []


@pytest.mark.property
@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.one_of(st.just(math.nan), st.floats(-50, 60)), min_size=7, max_size=7))
def test_packet_values_follow_variables_cfg(weather):
    """One real per Ptolemy variable of variables.cfg; a weather input gives (value, 1), or (0, 0) for NaN."""
    tagmap = load_tagmap(LIVE)
    tags = [item.tag for item in tagmap.inputs]
    values = input_values(tagmap, dict(zip(tags, [24.0, 21.0, *weather])))
    assert len(values) == variables_cfg(tagmap).count('source="Ptolemy"')
    assert values[:2] == [24.0, 21.0]
    for value, pair in zip(weather, zip(values[2::2], values[3::2])):
        assert pair == ((0.0, 0.0) if math.isnan(value) else (value, 1.0))
