"""The sky-temperature input: the model objects that let a tag-map input set the sky temperature that
every exterior surface's long-wave exchange sees, step by step (docs/bridge.md, "Weather inputs").

No ``Weather Data`` actuator reaches the sky temperature, and ``WeatherProperty:SkyTemperature`` with a
schedule does not either: EnergyPlus reads that schedule's day values when the day begins, so an EMS
override of the schedule never shows (measured: ``Site Sky Temperature`` stayed at the schedule's
constant under every override; docs/live.md, "The sky temperature"). What is read every zone timestep is
the sky temperature schedule of a ``SurfaceProperty:SurroundingSurfaces`` object (ConvectionCoefficients
and the outside surface heat balance take ``TSky`` from it instead of the site's), linked to a surface by
``SurfaceProperty:LocalEnvironment``. So each exterior surface gets its own object whose view factors are
EnergyPlus's defaults (sky ``(1 + cos tilt) / 2``, ground ``(1 - cos tilt) / 2`` or the surface's own
ground view factor; EnergyPlus Engineering Reference, "Exterior Longwave Radiation"), all pointing at one
schedule that an EMS program sets at ``BeginZoneTimestepBeforeInitHeatBalance`` (after the step's weather
is set, before the surface heat balance): to the written value while the input holds one, otherwise to
the site's sky temperature of that step (an EMS sensor), so an unwritten input leaves the weather file's
sky. ``Site Sky Temperature`` itself stays the file's; the schedule's ``Schedule Value`` output is the sky
the surfaces see.

Windows need another arrangement: the window heat balance (EnergyPlus's WindowManager) takes the site's sky
whatever the surroundings' sky schedule says, but it does add the long-wave radiance of the surroundings'
*surfaces*. A window's incoming long-wave radiance is F_sky (beta E_sky + (1 - beta) E_air) + F_gnd E_air
(Engineering Reference, "Window Heat Balance"; E = sigma T^4, beta = sqrt((1 + cos tilt) / 2) the sky/air
split, E_air at the outdoor air temperature, the wet bulb while it rains), where F_sky is the surface's sky
view factor after EnergyPlus has taken off what its own shading surfaces hide (a fraction only the engine
knows: 0.9 on the Small Office's windows under their eaves). Each exterior window therefore keeps its sky
view factor, gives up F_s = F_sky,geometric beta of its ground view factor to one surrounding surface, and
that surface's temperature (``<schedule>_windows``, set by the same EMS program) radiates
E_air + E_written - E_site: the window then receives F_sky beta E_site + F_s (E_written - E_site) instead
of F_sky beta E_written, exactly the file's radiance while the input is unwritten and the written sky's up to
(1 - shading fraction) of the difference. Only windows whose ground view factor holds F_s (tilts near
vertical) can take it; a sloped or horizontal window keeps the file's sky. Opaque subsurfaces (doors) take
the surfaces' arrangement.
"""

from __future__ import annotations

import math

from bridge.errors import TwinbridgeError
from bridge.idf import Idf, IdfObject
from bridge.tagmap import InputTag

# The EMS calling point of the program that sets the sky schedule: after SetCurrentWeather (the site's sky
# temperature of the step is known to the sensor), before the surface heat balance reads the schedule
SKY_CALLING_POINT = "BeginZoneTimestepBeforeInitHeatBalance"
# class -> (boundary condition, or for a subsurface its base surface; view factor to ground; first x)
SURFACE_FIELDS = {"BuildingSurface:Detailed": (5, 9, 11), "FenestrationSurface:Detailed": (3, 5, 9)}
GLAZED = {"window", "glassdoor"}  # FenestrationSurface:Detailed types that take the window heat balance
# EnergyPlus refuses view factors that sum above 1: the ground gives up this much to stay below (a 1e-6
# share of the outdoor air's radiance, 4e-4 W/m2)
MARGIN = 1e-6


class SkyModelError(TwinbridgeError, ValueError):
    """The model cannot take a sky-temperature input; the message names the tag-map entry."""


def sky_schedule(item: InputTag) -> str:
    """Name of the schedule that holds the sky temperature the exterior surfaces see (degC)."""
    return item.actuator[0]


def cos_tilt(coordinates: list[str]) -> float:
    """Cosine of a planar polygon's tilt from its vertices (x, y, z, ...), counter-clockwise seen from
    outside (Newell's method for the outward normal)."""
    points = [tuple(float(value) for value in coordinates[i:i + 3]) for i in range(0, len(coordinates) - 2, 3)]
    normal = [0.0, 0.0, 0.0]
    for (x1, y1, z1), (x2, y2, z2) in zip(points, points[1:] + points[:1]):
        normal[0] += (y1 - y2) * (z1 + z2)
        normal[1] += (z1 - z2) * (x1 + x2)
        normal[2] += (x1 - x2) * (y1 + y2)
    return normal[2] / math.sqrt(sum(c * c for c in normal))


def view_factors(surface: IdfObject) -> tuple[float, float]:
    """(sky, ground) long-wave view factors EnergyPlus gives an exterior ``BuildingSurface:Detailed`` or
    ``FenestrationSurface:Detailed`` (without shading surfaces, which would lower the sky's)."""
    _, ground_field, first_x = SURFACE_FIELDS[next(cls for cls in SURFACE_FIELDS if cls.lower() == surface.cls.lower())]
    cosine = cos_tilt(surface.fields[first_x:])
    sky, ground = 0.5 * (1.0 + cosine), 0.5 * (1.0 - cosine)
    given = surface.fields[ground_field].strip() if len(surface.fields) > ground_field else ""
    if given and given.lower() != "autocalculate":
        ground = float(given)
    return sky, ground


def exterior_surfaces(idf: Idf) -> list[IdfObject]:
    """The model's ``BuildingSurface:Detailed`` objects whose outside boundary condition is Outdoors."""
    boundary, _, _ = SURFACE_FIELDS["BuildingSurface:Detailed"]
    return [surface for surface in idf.of_class("BuildingSurface:Detailed")
            if len(surface.fields) > boundary and surface.fields[boundary].strip().lower() == "outdoors"]


def exterior_subsurfaces(idf: Idf, glazed: bool) -> list[IdfObject]:
    """The model's ``FenestrationSurface:Detailed`` objects on an exterior surface: the glazed ones (windows,
    glass doors) when ``glazed``, else the opaque ones (doors)."""
    base_field, _, _ = SURFACE_FIELDS["FenestrationSurface:Detailed"]
    exterior = {surface.name.upper() for surface in exterior_surfaces(idf)}
    return [sub for sub in idf.of_class("FenestrationSurface:Detailed")
            if len(sub.fields) > base_field and sub.fields[base_field].strip().upper() in exterior
            and (sub.fields[1].strip().lower() in GLAZED) == glazed]


def takes_sky_share(window: IdfObject) -> bool:
    """Whether ``window``'s ground view factor can give up its sky share F_sky beta (near-vertical windows)."""
    sky, ground = view_factors(window)
    return ground - sky * math.sqrt(sky) > MARGIN


def add_sky_temperature(idf: Idf, item: InputTag, variables: tuple[str, str], external_interface: bool) -> None:
    """Add the schedule, one surroundings object per exterior surface and the EMS program of a
    sky-temperature input. ``variables`` carry its value and 1 while that value overrides the file's sky:
    ``ExternalInterface:Variable`` objects when ``external_interface`` (set by the packet), else EMS
    global variables (set through the API); both start at 0: sizing and warm-up keep the file's sky."""
    schedule, (value, on) = sky_schedule(item), variables
    surfaces = exterior_surfaces(idf) + exterior_subsurfaces(idf, glazed=False)
    windows = [window for window in exterior_subsurfaces(idf, glazed=True) if takes_sky_share(window)]
    taken = {obj.fields[1].strip().upper() for obj in idf.of_class("SurfaceProperty:LocalEnvironment")
             if len(obj.fields) > 1}
    clash = [surface.name for surface in surfaces + windows if surface.name.upper() in taken]
    if clash:
        raise SkyModelError(f"{item.where}: surface {clash[0]!r} already has a SurfaceProperty:LocalEnvironment; "
                            "a sky-temperature input needs its own")
    if not surfaces:
        raise SkyModelError(f"{item.where}: the model has no exterior BuildingSurface:Detailed to take the sky")
    idf.add("Schedule:Constant", schedule, "", 0.0)
    for surface in surfaces:
        sky, ground = view_factors(surface)
        surroundings = f"{schedule}_{surface.name}"
        # EnergyPlus needs one surrounding surface: one of negligible view factor, at the sky temperature
        idf.add("SurfaceProperty:SurroundingSurfaces", surroundings, sky, schedule, ground - MARGIN, "",
                f"{schedule}_none", MARGIN, schedule)
        idf.add("SurfaceProperty:LocalEnvironment", f"{surroundings}_environment", surface.name, "", surroundings)
    for window in windows:
        sky, ground = view_factors(window)
        share = sky * math.sqrt(sky)  # F_sky beta: the part of the window's long-wave exchange that is the sky's
        surroundings = f"{schedule}_{window.name}"
        idf.add("SurfaceProperty:SurroundingSurfaces", surroundings, sky, schedule, ground - share - MARGIN, "",
                f"{schedule}_sky", share, f"{schedule}_windows")
        idf.add("SurfaceProperty:LocalEnvironment", f"{surroundings}_environment", window.name, "", surroundings)
    if external_interface:
        idf.add("ExternalInterface:Variable", value, 0)
        idf.add("ExternalInterface:Variable", on, 0)
    else:
        idf.add("EnergyManagementSystem:GlobalVariable", value, on)
        idf.add("EnergyManagementSystem:Program", f"{schedule}_start", f"SET {value} = 0", f"SET {on} = 0")
        idf.add("EnergyManagementSystem:ProgramCallingManager", f"{schedule}_start_manager", "BeginNewEnvironment",
                f"{schedule}_start")
    sensor, actuator, program = f"{schedule}_file", f"{schedule}_actuator", f"{schedule}_program"
    idf.add("EnergyManagementSystem:Sensor", sensor, "Environment", "Site Sky Temperature")
    idf.add("EnergyManagementSystem:Actuator", actuator, schedule, "Schedule:Constant", "Schedule Value")
    lines = [f"IF {on} > 0.5", f"SET {actuator} = {value}", "ELSE", f"SET {actuator} = {sensor}", "ENDIF"]
    if windows:  # the windows' surrounding surface: E_air + E_written - E_site (sigma T^4, K)
        air, wet, rain, windows_actuator = (f"{schedule}_air", f"{schedule}_wetbulb", f"{schedule}_rain",
                                            f"{schedule}_windows_actuator")
        idf.add("Schedule:Constant", f"{schedule}_windows", "", 0.0)
        idf.add("EnergyManagementSystem:Sensor", air, "Environment", "Site Outdoor Air Drybulb Temperature")
        idf.add("EnergyManagementSystem:Sensor", wet, "Environment", "Site Outdoor Air Wetbulb Temperature")
        idf.add("EnergyManagementSystem:Sensor", rain, "Environment", "Site Rain Status")
        idf.add("EnergyManagementSystem:Actuator", windows_actuator, f"{schedule}_windows", "Schedule:Constant",
                "Schedule Value")
        # in hundreds of kelvin, one operation a line (Erl's "^" took a sum of fourth powers of kelvins to 0)
        lines += [f"SET tb_sky_ta = ({air} + 273.15) / 100", f"IF {rain} > 0.5", f"SET tb_sky_ta = ({wet} + 273.15) / 100",
                  "ENDIF", "SET tb_sky_ea = tb_sky_ta ^ 4", f"SET tb_sky_tw = ({actuator} + 273.15) / 100",
                  "SET tb_sky_ew = tb_sky_tw ^ 4", f"SET tb_sky_ts = ({sensor} + 273.15) / 100", "SET tb_sky_es = tb_sky_ts ^ 4",
                  "SET tb_sky_e = tb_sky_ea + tb_sky_ew", "SET tb_sky_e = tb_sky_e - tb_sky_es",
                  "SET tb_sky_t = tb_sky_e ^ 0.25", f"SET {windows_actuator} = 100 * tb_sky_t",
                  f"SET {windows_actuator} = {windows_actuator} - 273.15"]
    idf.add("EnergyManagementSystem:Program", program, *lines)
    idf.add("EnergyManagementSystem:ProgramCallingManager", f"{schedule}_manager", SKY_CALLING_POINT, program)
