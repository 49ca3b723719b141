"""Tag maps: the declarative list of a building type's OPC UA inputs and outputs.

A tag map is a TOML file (see ``tagmaps/*.toml`` and docs/tagmaps.md)::

    [[inputs]]
    tag = "CoolingSetpoint"          # OPC UA tag name
    schedule = "CLGSETP_SCH"         # existing schedule the input overrides
    unit = "degC"
    min = 18.0
    max = 32.0
    default = 24.0

    [[outputs]]
    tag = "FacilityPower"
    key = "Whole Building"
    variable = "Facility Total Electricity Demand Rate"
    unit = "kW"
    scale = 0.001                    # EnergyPlus gives W
    role = "electric_power"          # summed into the campus total

An input names either ``schedule`` (an existing ``Schedule:*`` object, overridden through an
``ExternalInterface:Actuator`` with control type "Schedule Value"), ``actuator`` (a table with
``component_type``, ``control_type`` and ``key`` of any EnergyPlus EMS actuator) or ``weather`` (a
control type of EnergyPlus's ``Weather Data`` actuator, one of WEATHER_CONTROLS, or ``"Sky Temperature"``:
the sky temperature the exterior surfaces see, bridge/sky_temperature.py). A weather input's
``default`` may be ``nan`` (the default when it is not given): the weather file's value then stays,
until a client writes a number. An output names
either ``key`` + ``variable`` (an output variable) or ``meter``.

A zone temperature output may declare BOPTEST's time-varying comfort bands, ``comfort_occupied`` and
``comfort_unoccupied`` (``[low, high]``, degC), switched by the file's ``[occupancy]`` table or the
output's own ``occupancy`` (bridge/comfort.py); a gas power output has role ``hvac_gas_power`` (kW).
Both feed BOPTEST's core KPIs (bridge/kpi.py, docs/kpis.md).

An input may have to stay below another one: ``below = "CoolingSetpoint"`` with ``margin = 1.0``
on the heating setpoint keeps it at least 1 degC under the cooling setpoint (EnergyPlus stops with
a fatal error when a zone's heating setpoint exceeds its cooling setpoint). The bridge refuses
writes that would break such an order (``InputOrder``).

A power output may declare its **known load**, ``known_load = ["FacilityPower", "-HvacPower"]``: the
part of it that follows the building's fixed schedules (lights, plug loads), the sum of the named
outputs (a leading ``-`` subtracts one). Its GP twin takes that load as a known input, forecast from
its own daily profile (bridge/twin/features.py, docs/twin.md "Known load").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.comfort import ComfortBands, Occupancy, read_band, read_occupancy
from bridge.errors import TwinbridgeError
from bridge.names import first_repeat, tag_name_problem
from bridge.tomlfile import Table, file_path, read_toml

TAG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# hvac_electric_power and hvac_gas_power: HVAC equipment only (heating, cooling, fans, pumps), BOPTEST's energy scope
ROLES = {"electric_power", "hvac_electric_power", "hvac_gas_power", "zone_temperature", "outdoor_temperature"}
# EURange of an output without min/max (docs/bridge.md, "Output ranges"): electric power from the floor area,
# temperatures from their role, else from the unit; without any of these, practically unbounded.
POWER_DENSITY_W_PER_M2 = 100.0  # peak electric demand per floor area (commercial buildings: about 20-80)
POWER_UNITS = {"W": 1.0, "kW": 1e-3}  # tag unit per W
ROLE_RANGES = {("zone_temperature", "degC"): (0.0, 50.0), ("outdoor_temperature", "degC"): (-50.0, 60.0)}
UNIT_RANGES = {"degC": (-50.0, 150.0), "K": (223.15, 423.15), "%": (0.0, 100.0)}
UNBOUNDED = (-1e9, 1e9)
# Control types of the "Weather Data" actuator (component "Environment"), EnergyPlus 25.2
WEATHER_CONTROLS = ("Outdoor Dry Bulb", "Outdoor Dew Point", "Outdoor Relative Humidity", "Direct Solar",
                    "Diffuse Solar", "Wind Speed", "Wind Direction")
SKY_TEMPERATURE = "Sky Temperature"  # no Weather Data actuator: set through the model (bridge/sky_temperature.py)
WEATHER_INPUTS = WEATHER_CONTROLS + (SKY_TEMPERATURE,)


class TagMapError(TwinbridgeError, ValueError):
    """A tag map that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class InputTag:
    tag: str
    unit: str
    min: float
    max: float
    default: float
    schedule: str | None = None
    component_type: str | None = None
    control_type: str | None = None
    key: str | None = None
    weather: str | None = None  # control type of the "Weather Data" actuator, or SKY_TEMPERATURE
    description: str = ""
    where: str = ""  # "file: inputs[i]" for error messages
    below: str | None = None  # another input this one must stay under, by at least ``margin``
    margin: float = 0.0

    @property
    def actuator(self) -> tuple[str, str, str]:
        """(component key, component type, control type) of the EnergyPlus actuator."""
        if self.schedule is not None:
            return self.schedule, "Schedule:Compact", "Schedule Value"
        if self.weather == SKY_TEMPERATURE:  # the sky schedule's, set by an EMS program (bridge/sky_temperature.py)
            return f"tb_sky_{self.tag}", "Schedule:Constant", "Schedule Value"
        if self.weather is not None:
            return "Environment", "Weather Data", self.weather
        return self.key or "", self.component_type or "", self.control_type or ""


@dataclass(frozen=True)
class InputOrder:
    """Input ``lower`` must stay at least ``margin`` below input ``upper`` (heating under cooling setpoint)."""

    lower: str
    upper: str
    margin: float
    unit: str = ""

    def holds(self, values: Mapping[str, float]) -> bool:
        return values[self.lower] + self.margin <= values[self.upper] + 1e-9  # 20.9 + 1.0 <= 21.9

    def describe(self, tag: str) -> str:
        """The rule as seen from input ``tag`` ("" when the rule does not involve it), for the
        tag's OPC UA Description: clients learn it before a write is refused."""
        unit = f" {self.unit}" if self.unit else ""
        if tag == self.lower:
            return f"must stay at least {self.margin:g}{unit} below {self.upper}"
        if tag == self.upper:
            return f"must stay at least {self.margin:g}{unit} above {self.lower}"
        return ""

    def explain(self, values: Mapping[str, float]) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return (f"{self.lower} = {values[self.lower]:g} must stay at least {self.margin:g}{unit} below "
                f"{self.upper} = {values[self.upper]:g}")


@dataclass(frozen=True)
class OutputTag:
    tag: str
    unit: str
    key: str | None = None
    variable: str | None = None
    meter: str | None = None
    scale: float = 1.0
    offset: float = 0.0
    role: str | None = None
    comfort: tuple[float, float] | None = None  # comfort band of a zone temperature, degC
    bands: ComfortBands | None = None  # BOPTEST's occupied/unoccupied comfort bands of a zone temperature
    min: float | None = None
    max: float | None = None
    description: str = ""
    where: str = ""
    known_load: tuple[str, ...] = ()  # outputs summed into this power's scheduled part ("-tag" subtracts)

    def convert(self, raw: float) -> float:
        """Engine value (EnergyPlus units) to tag value (tag units)."""
        return raw * self.scale + self.offset


@dataclass(frozen=True)
class TagMap:
    name: str
    inputs: tuple[InputTag, ...]
    outputs: tuple[OutputTag, ...]
    floor_area_m2: float | None = None
    path: str = ""
    weather_file_precipitation: bool = True  # rain and snow from the weather file (docs/bridge.md, "Weather inputs")
    occupancy: Occupancy | None = None  # the file's [occupancy] (or the one it extends'): its occupied hours

    def input(self, tag: str) -> InputTag:
        return next(i for i in self.inputs if i.tag == tag)

    def output(self, tag: str) -> OutputTag:
        return next(o for o in self.outputs if o.tag == tag)

    def output_range(self, item: OutputTag) -> tuple[float, float]:
        """EURange (low, high) of output ``item``, in its unit: its ``min`` and ``max``, each one not given
        taken from ``default_range``."""
        low, high = self.default_range(item)
        return (low if item.min is None else item.min, high if item.max is None else item.max)

    def default_range(self, item: OutputTag) -> tuple[float, float]:
        """An output's range when the tag map gives none: 0 to POWER_DENSITY_W_PER_M2 times the floor area for
        an electric power role (W or kW, with ``floor_area_m2``), else ROLE_RANGES by role and unit, else
        UNIT_RANGES by unit, else UNBOUNDED."""
        if item.role in ("electric_power", "hvac_electric_power") and item.unit in POWER_UNITS and self.floor_area_m2:
            return 0.0, POWER_DENSITY_W_PER_M2 * self.floor_area_m2 * POWER_UNITS[item.unit]
        return ROLE_RANGES.get((item.role, item.unit)) or UNIT_RANGES.get(item.unit, UNBOUNDED)

    @property
    def defaults(self) -> dict[str, float]:
        return {i.tag: i.default for i in self.inputs}

    @property
    def building(self) -> dict[str, object]:
        """The building this tag map describes (name, floor area in m2, file), as historians and twin
        model files record it: tag names alone do not tell one building from another."""
        return {"name": self.name, "floor_area_m2": self.floor_area_m2, "tagmap": self.path}

    @property
    def orders(self) -> tuple[InputOrder, ...]:
        """The ``below`` constraints between inputs."""
        return tuple(InputOrder(i.tag, i.below, i.margin, i.unit) for i in self.inputs if i.below is not None)


def same_building(recorded: Mapping, other: Mapping) -> bool:
    """Whether two records of ``TagMap.building`` name the same building (name and floor area)."""
    return (recorded.get("name"), recorded.get("floor_area_m2")) == (other.get("name"), other.get("floor_area_m2"))


def load_tagmap(path: str | Path) -> TagMap:
    """Read and check a tag map file; raise TagMapError naming the file and entry on any problem."""
    return _load_tagmap(Path(path), ())


def _load_tagmap(path: Path, extending: tuple[Path, ...]) -> TagMap:
    """``load_tagmap``; ``extending``: the files whose ``extends`` led here (a cycle is an error)."""
    file = Table(read_toml(path, TagMapError, "tag map file"), str(path), TagMapError)
    file.check_keys({"name", "floor_area_m2", "inputs", "outputs", "occupancy", "extends", "weather_file_precipitation"})
    base = _extended(file, path, extending) if "extends" in file.values else None
    occupancy = read_occupancy(file.table("occupancy")) if "occupancy" in file.values else None
    inputs = (*(base.inputs if base else ()), *(_input(entry) for entry in file.tables("inputs")))
    outputs = (*(base.outputs if base else ()), *(_output(entry, occupancy) for entry in file.tables("outputs")))
    if not outputs:
        raise TagMapError(f"{path}: a tag map needs at least one [[outputs]] entry")
    items = (*inputs, *outputs)
    repeat = first_repeat([item.tag for item in items])
    if repeat:
        earlier, later = (items[i] for i in repeat)
        raise TagMapError(f"{later.where}: tag {later.tag!r} is already used by {earlier.where} (case does not matter)")
    area = file.number("floor_area_m2", 0.0) or (base.floor_area_m2 if base else None)
    precipitation = file.flag("weather_file_precipitation", base.weather_file_precipitation if base else True)
    tagmap = TagMap(file.text("name", base.name if base else path.stem), inputs, outputs, area or None, str(path),
                    precipitation, occupancy or (base.occupancy if base else None))
    _check_orders(tagmap)
    _check_ranges(tagmap)
    _check_known_loads(tagmap)
    return tagmap


def _check_known_loads(tagmap: TagMap) -> None:
    """Every tag a ``known_load`` names (without its sign) is an output of the map."""
    outputs = {item.tag for item in tagmap.outputs}
    for item in tagmap.outputs:
        unknown = [name for name in item.known_load if name.removeprefix("-") not in outputs]
        if unknown:
            raise TagMapError(f"{item.where}: known_load names {unknown}, not outputs of this tag map")


def _extended(file: Table, path: Path, extending: tuple[Path, ...]) -> TagMap:
    """The tag map ``extends`` names (relative to ``path``): its inputs and outputs come first, its name
    and floor area stand unless this file gives its own."""
    base = file_path(file.text("extends"), path.parent, TagMapError, f"{path}: 'extends'")
    if base in (*extending, path.resolve()):
        raise TagMapError(f"{path}: 'extends' = {file.text('extends')!r} leads back to {base} (a cycle)")
    if not base.is_file():
        raise TagMapError(f"{path}: 'extends': file not found: {base}")
    return _load_tagmap(base, (*extending, path.resolve()))


def _check_ranges(tagmap: TagMap) -> None:
    """Each output's EURange (given or default) has its low end below its high end."""
    for item in tagmap.outputs:
        low, high = tagmap.output_range(item)
        if not low < high:
            given = "" if item.min is not None and item.max is not None else " (a bound not given is the default)"
            raise TagMapError(f"{item.where}: 'min' must be below 'max', the range is [{low:g}, {high:g}]{given}")


def _check_orders(tagmap: TagMap) -> None:
    """Each ``below`` names another input, and the defaults keep the order."""
    for item in tagmap.inputs:
        if item.below is None:
            continue
        others = [i.tag for i in tagmap.inputs if i is not item and i.weather is None]
        if item.below not in others:
            raise TagMapError(f"{item.where}: 'below' must name another input (one of {others}), got {item.below!r}")
    defaults = tagmap.defaults
    for order in tagmap.orders:
        if not order.holds(defaults):
            where = tagmap.input(order.lower).where
            raise TagMapError(f"{where}: the defaults break 'below': {order.explain(defaults)}")


def _tagged(entry: Table) -> tuple[str, Table]:
    """The entry's tag name, and the entry named by it in messages (``inputs[0] (CoolingSetpoint)``)."""
    tag = entry.values.get("tag")
    if not isinstance(tag, str) or not TAG_NAME.match(tag):
        raise TagMapError(f"{entry.where}: 'tag' must be a name of letters, digits and '_' (got {tag!r})")
    problem = tag_name_problem(tag)
    if problem:
        raise TagMapError(f"{entry.where}: {problem}")
    return tag, Table(entry.values, f"{entry.where} ({tag})", TagMapError)


def follows_weather_file(value: float) -> bool:
    """Whether a weather input's value (NaN) leaves the weather file's value in place."""
    return math.isnan(value)


def _input(entry: Table) -> InputTag:
    entry.check_keys({"tag", "unit", "min", "max", "default", "schedule", "actuator", "weather", "description",
                      "below", "margin"})
    tag, entry = _tagged(entry)
    where, values = entry.where, entry.values
    weather = "weather" in values
    low, high = entry.number("min"), entry.number("max")
    default = entry.number("default", math.nan if weather else None)
    if not (low <= default <= high or weather and follows_weather_file(default)):
        raise TagMapError(f"{where}: default {default} is outside [min, max] = [{low}, {high}]")
    common = dict(tag=tag, unit=str(values.get("unit", "")), min=low, max=high, default=default,
                  description=str(values.get("description", "")), where=where, **_order_keys(entry))
    if sum(kind in values for kind in ("schedule", "actuator", "weather")) != 1:
        raise TagMapError(f"{where}: give exactly one of 'schedule', 'actuator' or 'weather'")
    if weather:
        return _weather_input(entry, common)
    if "schedule" in values:
        return InputTag(schedule=str(values["schedule"]), **common)
    actuator = values["actuator"]
    if not isinstance(actuator, dict) or set(actuator) != {"component_type", "control_type", "key"}:
        raise TagMapError(f"{where}: 'actuator' needs exactly component_type, control_type and key")
    return InputTag(component_type=str(actuator["component_type"]), control_type=str(actuator["control_type"]),
                    key=str(actuator["key"]), **common)


def _weather_input(entry: Table, common: dict) -> InputTag:
    """An input on the "Weather Data" actuator or the sky temperature; it keeps no order with other inputs
    (its value may be NaN)."""
    control = entry.text("weather")
    if control not in WEATHER_INPUTS:
        raise TagMapError(f"{entry.where}: unknown 'weather' {control!r} (known: {list(WEATHER_INPUTS)})")
    if "below" in entry.values:
        raise TagMapError(f"{entry.where}: a weather input cannot have 'below'")
    return InputTag(weather=control, **common)


def _order_keys(entry: Table) -> dict:
    """``below`` (an input tag) and ``margin`` (a number >= 0, only with ``below``)."""
    where = entry.where
    if "below" not in entry.values:
        if "margin" in entry.values:
            raise TagMapError(f"{where}: 'margin' needs 'below' (the input this one must stay under)")
        return {}
    below, margin = entry.text("below"), entry.number("margin", 0.0)
    if margin < 0:
        raise TagMapError(f"{where}: 'margin' must be >= 0 (got {margin})")
    return {"below": below, "margin": margin}


def _output(entry: Table, occupancy: Occupancy | None = None) -> OutputTag:
    entry.check_keys({"tag", "unit", "key", "variable", "meter", "scale", "offset", "role", "comfort", "min", "max",
                      "description", "comfort_occupied", "comfort_unoccupied", "occupancy", "known_load"})
    tag, entry = _tagged(entry)
    where, values = entry.where, entry.values
    is_variable = "variable" in values
    if is_variable == ("meter" in values):
        raise TagMapError(f"{where}: give exactly one of 'variable' (with 'key') or 'meter'")
    if is_variable and "key" not in values:
        raise TagMapError(f"{where}: an output variable needs a 'key' (zone, node or 'Environment')")
    role = values.get("role")
    if role is not None and (not isinstance(role, str) or role not in ROLES):
        raise TagMapError(f"{where}: unknown role {role!r} (known: {sorted(ROLES)})")
    return OutputTag(
        tag=tag,
        unit=str(values.get("unit", "")),
        key=str(values["key"]) if is_variable else None,
        variable=str(values["variable"]) if is_variable else None,
        meter=None if is_variable else str(values["meter"]),
        scale=entry.number("scale", 1.0),
        offset=entry.number("offset", 0.0),
        role=role,
        comfort=read_band(entry, "comfort"),
        bands=_bands(entry, occupancy),
        min=entry.number("min") if "min" in values else None,
        max=entry.number("max") if "max" in values else None,
        description=str(values.get("description", "")),
        where=where,
        known_load=_known_load(entry),
    )


def _known_load(entry: Table) -> tuple[str, ...]:
    """An output's ``known_load``: a non-empty list of output tags, each optionally prefixed by "-"."""
    value = entry.values.get("known_load", [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.removeprefix("-") for v in value) or (
            "known_load" in entry.values and not value):
        raise TagMapError(f"{entry.where}: known_load must be a list of output tags (\"-tag\" subtracts one), "
                          f"got {value!r}")
    return tuple(value)


def _bands(entry: Table, occupancy: Occupancy | None) -> ComfortBands | None:
    """BOPTEST's comfort bands of an output: both bands, and an occupancy (its own or the file's), or neither."""
    occupied, unoccupied = read_band(entry, "comfort_occupied"), read_band(entry, "comfort_unoccupied")
    if "occupancy" in entry.values:
        occupancy = read_occupancy(entry.table("occupancy"))
    if occupied is None and unoccupied is None:
        if "occupancy" in entry.values:
            raise TagMapError(f"{entry.where}: 'occupancy' needs 'comfort_occupied' and 'comfort_unoccupied'")
        return None
    if occupied is None or unoccupied is None:
        raise TagMapError(f"{entry.where}: give both 'comfort_occupied' and 'comfort_unoccupied' (BOPTEST's bands)")
    if occupancy is None:
        raise TagMapError(f"{entry.where}: comfort bands need an occupancy: an [occupancy] table in the file or "
                          "this output's own 'occupancy'")
    return ComfortBands(occupied, unoccupied, occupancy)
