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
"""

from __future__ import annotations

import math

from bridge.errors import TwinbridgeError
from bridge.idf import Idf, IdfObject
from bridge.tagmap import InputTag

# The EMS calling point of the program that sets the sky schedule: after SetCurrentWeather (the site's sky
# temperature of the step is known to the sensor), before the surface heat balance reads the schedule
SKY_CALLING_POINT = "BeginZoneTimestepBeforeInitHeatBalance"
SURFACE_FIELDS = {"BuildingSurface:Detailed": (5, 9, 11)}  # boundary condition, view factor to ground, first x


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
    """(sky, ground) long-wave view factors EnergyPlus gives an exterior ``BuildingSurface:Detailed``."""
    _, ground_field, first_x = SURFACE_FIELDS["BuildingSurface:Detailed"]
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


def add_sky_temperature(idf: Idf, item: InputTag, variables: tuple[str, str], external_interface: bool) -> None:
    """Add the schedule, one surroundings object per exterior surface and the EMS program of a
    sky-temperature input. ``variables`` carry its value and 1 while that value overrides the file's sky:
    ``ExternalInterface:Variable`` objects when ``external_interface`` (set by the packet), else EMS
    global variables (set through the API); both start at 0: sizing and warm-up keep the file's sky."""
    schedule, (value, on) = sky_schedule(item), variables
    surfaces = exterior_surfaces(idf)
    taken = {obj.fields[1].strip().upper() for obj in idf.of_class("SurfaceProperty:LocalEnvironment")
             if len(obj.fields) > 1}
    clash = [surface.name for surface in surfaces if surface.name.upper() in taken]
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
        idf.add("SurfaceProperty:SurroundingSurfaces", surroundings, sky, schedule, ground - 1e-6, "",
                f"{schedule}_none", 1e-6, schedule)
        idf.add("SurfaceProperty:LocalEnvironment", f"{surroundings}_environment", surface.name, "", surroundings)
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
    idf.add("EnergyManagementSystem:Program", program, f"IF {on} > 0.5", f"SET {actuator} = {value}", "ELSE",
            f"SET {actuator} = {sensor}", "ENDIF")
    idf.add("EnergyManagementSystem:ProgramCallingManager", f"{schedule}_manager", SKY_CALLING_POINT, program)
