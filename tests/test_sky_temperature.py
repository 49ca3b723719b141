"""The sky-temperature input (bridge/sky_temperature.py, docs/live.md "The sky temperature"): a value
written to the tag is the sky every exterior surface sees in the step it is written for, in both
EnergyPlus engines; unwritten, the surfaces see the weather file's sky; a tag map without it adds
nothing to the model."""

from __future__ import annotations

import asyncio
import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SIMS, TAGMAPS
from devtools.fuzz import examples
from test_weather_inputs import ENGINES, LIVE, ONE_DAY, live_text, run, without_sky
from bridge.config import load_config, reference_model
from bridge.cosim_files import patch_model, prepare_model
from bridge.idf import Idf
from bridge.sky_temperature import (SkyModelError, add_sky_temperature, cos_tilt, exterior_subsurfaces,
                                     exterior_surfaces, takes_sky_share, view_factors)
from bridge.tagmap import load_tagmap
from bridge.validate import building_problems

WRITTEN_FROM, RELEASED_FROM = 60, 70  # steps (10:00 and 11:40 of July 1)
SEEN = """
[[outputs]]
tag = "SkySeen"
key = "tb_sky_SkyTemperature"
variable = "Schedule Value"
unit = "degC"
"""
ROOF = """
[[outputs]]
tag = "RoofTemp"
key = "Attic_roof_south"
variable = "Surface Outside Face Temperature"
unit = "degC"
"""

WINDOW = """
[[outputs]]
tag = "WindowTemp"
key = "Perimeter_ZN_1_wall_south_Window_1"
variable = "Surface Outside Face Temperature"
unit = "degC"
"""


def written(k: int) -> dict[str, float]:
    """SkyTemperature of step k: 40 + (k - WRITTEN_FROM) degC (far above the file's July sky) for
    WRITTEN_FROM <= k < RELEASED_FROM, else unwritten."""
    return {"SkyTemperature": 40.0 + k - WRITTEN_FROM} if WRITTEN_FROM <= k < RELEASED_FROM else {}


@pytest.mark.engine
@pytest.mark.parametrize("kind", ENGINES.values(), ids=ENGINES.keys())
def test_written_sky_temperature_is_the_sky_the_surfaces_see_in_the_same_step(kind, tmp_path):
    """The sky schedule holds the written value at the end of exactly the steps it is written for and
    the site's (the file's) sky in every other; the roof and the windows are warmer than unwritten from
    the first written step on, and the run is the unwritten one until then."""
    tagmap = tmp_path / "sky.toml"
    tagmap.write_text(live_text() + SEEN + ROOF + WINDOW)
    base = run(kind, tagmap, tmp_path / "base", lambda k: {})
    samples = run(kind, tagmap, tmp_path / "written", written)
    seen = [s["SkySeen"] for s in samples[1:]]  # sample k + 1: the end of step k
    site = [s["SiteSkyTemperature"] for s in samples[1:]]
    assert seen[WRITTEN_FROM:RELEASED_FROM] == [written(k)["SkyTemperature"] for k in range(WRITTEN_FROM, RELEASED_FROM)]
    assert seen[:WRITTEN_FROM] == site[:WRITTEN_FROM] and seen[RELEASED_FROM:] == site[RELEASED_FROM:]
    assert max(site[WRITTEN_FROM:RELEASED_FROM]) < 30.0  # the file's sky is far colder than the written one
    assert samples[:WRITTEN_FROM + 1] == base[:WRITTEN_FROM + 1]
    roof, roof_base = [s["RoofTemp"] for s in samples[1:]], [s["RoofTemp"] for s in base[1:]]
    assert all(roof[k] > roof_base[k] + 2.0 for k in range(WRITTEN_FROM, RELEASED_FROM))
    window, window_base = [s["WindowTemp"] for s in samples[1:]], [s["WindowTemp"] for s in base[1:]]
    assert all(window[k] > window_base[k] + 0.5 for k in range(WRITTEN_FROM, RELEASED_FROM))


@pytest.mark.engine
def test_unwritten_sky_temperature_leaves_the_run_within_round_off(tmp_path):
    """Unwritten, every output stays within round-off of the run without the input (EnergyPlus takes
    the surroundings' code path: equal to 1e-5 K, not bit for bit)."""
    without, with_sky = tmp_path / "without.toml", tmp_path / "with.toml"
    without.write_text(without_sky(live_text()) + ROOF + WINDOW)
    with_sky.write_text(live_text() + ROOF + WINDOW)
    base = run(ENGINES["energyplus_api"], without, tmp_path / "without", lambda k: {})
    sky = run(ENGINES["energyplus_api"], with_sky, tmp_path / "with", lambda k: {})
    assert len(base) == len(sky) == ONE_DAY.steps + 1
    for tag in base[0]:
        assert max(abs(a[tag] - b[tag]) for a, b in zip(base, sky)) < 1e-3, tag


def test_a_tag_map_without_the_input_adds_nothing_to_the_model():
    """No surroundings, no sky schedule: the patched model of small_office.toml is as before the input existed."""
    tagmap = load_tagmap(TAGMAPS / "small_office.toml")
    text = "\n".join(obj.to_text() for obj in patch_model(Idf.read(reference_model("small_office")), tagmap,
                                                            ONE_DAY).objects)
    assert "SurfaceProperty:" not in text and "tb_sky" not in text


def test_each_exterior_surface_gets_energyplus_default_view_factors():
    """Sky (1 + cos tilt) / 2 and ground (1 - cos tilt) / 2 per surface, all on the input's schedule."""
    idf = prepare_model(Idf.read(reference_model("small_office")), load_tagmap(LIVE), ONE_DAY)
    item = load_tagmap(LIVE).input("SkyTemperature")
    add_sky_temperature(idf, item, ("v", "on"), external_interface=True)
    surfaces = {obj.fields[0]: obj for obj in idf.of_class("SurfaceProperty:SurroundingSurfaces")}
    windows = exterior_subsurfaces(idf, glazed=True)
    assert len(surfaces) == len(exterior_surfaces(idf)) + len(windows) and len(exterior_surfaces(idf)) > 10
    wall = surfaces["tb_sky_SkyTemperature_Perimeter_ZN_1_wall_south"].fields
    assert (float(wall[1]), wall[2], round(float(wall[3]), 5)) == (0.5, "tb_sky_SkyTemperature", 0.5)
    # a window keeps its sky and gives the sky's share 0.5 sqrt(0.5) of its ground to the windows' surface
    assert len(windows) == 21 and all(takes_sky_share(window) for window in windows)
    window = surfaces["tb_sky_SkyTemperature_Perimeter_ZN_1_wall_south_Window_1"].fields
    assert (float(window[1]), round(float(window[3]), 5), round(float(window[6]), 5), window[7]) == (
        0.5, round(0.5 - 0.5 * math.sqrt(0.5), 5), round(0.5 * math.sqrt(0.5), 5), "tb_sky_SkyTemperature_windows")


def test_an_exterior_door_takes_the_opaque_arrangement():
    """A Door on an exterior wall is linked like the walls (the schedule as its sky); a window on an interior
    wall is not linked."""
    idf = prepare_model(Idf.read(reference_model("small_office")), load_tagmap(LIVE), ONE_DAY)
    idf.add("FenestrationSurface:Detailed", "tb_door", "Door", "c", "Perimeter_ZN_1_wall_south", "", "AutoCalculate",
            "", 1, 4, 0.5, 0, 2, 0.5, 0, 0, 1, 0, 0, 1, 0, 2)
    idf.add("FenestrationSurface:Detailed", "tb_inner", "Window", "c", "Core_ZN_wall_south", "", "AutoCalculate",
            "", 1, 4, 0.5, 0, 2, 0.5, 0, 0, 1, 0, 0, 1, 0, 2)
    add_sky_temperature(idf, load_tagmap(LIVE).input("SkyTemperature"), ("v", "on"), external_interface=True)
    surfaces = {obj.fields[0]: obj.fields for obj in idf.of_class("SurfaceProperty:SurroundingSurfaces")}
    door = surfaces["tb_sky_SkyTemperature_tb_door"]
    assert (float(door[1]), door[2], door[5], door[7]) == (0.5, "tb_sky_SkyTemperature", "tb_sky_SkyTemperature_none",
                                                           "tb_sky_SkyTemperature")
    assert "tb_sky_SkyTemperature_tb_inner" not in surfaces


def test_a_sloped_window_keeps_the_file_sky():
    """A window whose ground view factor cannot hold the sky's share (here horizontal) is not linked."""
    roof = Idf.parse("FenestrationSurface:Detailed, w, Window, c, r, , AutoCalculate, , 1, 4, "
                     "0, 0, 3, 1, 0, 3, 1, 1, 3, 0, 1, 3;").objects[0]
    wall = Idf.parse("FenestrationSurface:Detailed, w, Window, c, r, , AutoCalculate, , 1, 4, "
                     "0, 0, 2, 0, 0, 1, 1, 0, 1, 1, 0, 2;").objects[0]
    assert view_factors(roof) == (1.0, 0.0) and not takes_sky_share(roof)
    assert takes_sky_share(wall)


def test_a_surface_with_its_own_local_environment_is_refused():
    idf = Idf.read(reference_model("small_office"))
    idf.add("SurfaceProperty:LocalEnvironment", "mine", "Attic_roof_east", "", "")
    with pytest.raises(SkyModelError, match=r"inputs\[6\] \(SkyTemperature\): surface 'Attic_roof_east' already"):
        add_sky_temperature(idf, load_tagmap(LIVE).input("SkyTemperature"), ("v", "on"), external_interface=False)


@pytest.mark.property
@settings(max_examples=examples(50), deadline=None)
@given(st.floats(0.0, 180.0), st.floats(0.0, 360.0), st.floats(0.5, 20.0), st.floats(0.5, 20.0))
def test_view_factors_follow_the_tilt_of_any_rectangle(tilt, azimuth, width, height):
    """A rectangle tilted by ``tilt`` from horizontal (facing ``azimuth``), vertices counter-clockwise
    seen from outside: cos_tilt is cos(tilt), and sky + ground view factors sum to 1."""
    t, a = math.radians(tilt), math.radians(azimuth)
    up = (math.cos(t) * math.sin(a), math.cos(t) * math.cos(a), math.sin(t))  # along the slope
    across = (math.cos(a), -math.sin(a), 0.0)
    corners = [(0, 0), (width, 0), (width, height), (0, height)]
    points = [[u * across[i] + v * up[i] for i in range(3)] for u, v in corners]
    coordinates = [f"{c:.9f}" for point in points for c in point]
    assert math.isclose(cos_tilt(coordinates), math.cos(t), abs_tol=1e-6)
    surface = Idf.parse("BuildingSurface:Detailed, s, Wall, c, z, , Outdoors, , SunExposed, WindExposed, "
                        f"AutoCalculate, 4, {', '.join(coordinates)};").objects[0]
    sky, ground = view_factors(surface)
    assert math.isclose(sky + ground, 1.0) and math.isclose(sky, 0.5 * (1 + math.cos(t)), abs_tol=1e-6)


@pytest.mark.engine
def test_validation_names_a_model_that_cannot_take_the_sky(tmp_path):
    """`twinbridge validate` accepts the live map on the Small Office and names the input and the surface
    when a surface already has a local environment."""
    building = load_config(SIMS / "small_office.toml").buildings[0]
    building = dataclasses.replace(building, tagmap=load_tagmap(LIVE))
    assert asyncio.run(building_problems(building)) == []
    model = tmp_path / "model.idf"
    model.write_text(building.model.read_text(encoding="latin-1")
                     + "\nSurfaceProperty:LocalEnvironment, mine, Attic_roof_east, , ;\n", encoding="latin-1")
    problems = asyncio.run(building_problems(dataclasses.replace(building, model=model)))
    assert len(problems) == 1 and problems[0].endswith(
        "small_office_live.toml: inputs[6] (SkyTemperature): surface 'Attic_roof_east' already has a "
        "SurfaceProperty:LocalEnvironment; a sky-temperature input needs its own")
