"""The model copy both EnergyPlus engines run (run period, timestep, the tag map's outputs and
actuators), and for ExternalInterface the rest of its three files: the ExternalInterface objects,
``variables.cfg`` (the order of values in each packet) and ``socket.cfg`` (where to connect).

References: EnergyPlus Input Output Reference, "ExternalInterface" group; EnergyPlus External
Interface Application Guide (BCVTB), section "variables.cfg".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from xml.sax.saxutils import quoteattr

from bridge.config import RunPeriod
from bridge.errors import TwinbridgeError
from bridge.idf import Idf
from bridge.sky_temperature import add_sky_temperature
from bridge.tagmap import SKY_TEMPERATURE, InputTag, OutputTag, TagMap, follows_weather_file

# The EMS calling point at which a weather override acts in the same zone timestep (docs/bridge.md,
# "Weather inputs": measured by bench/bench_weather_actuators.py; later points act one step late)
WEATHER_CALLING_POINT = "BeginZoneTimestepBeforeSetCurrentWeather"


class ModelError(TwinbridgeError, ValueError):
    """The model does not have what the tag map refers to; the message names the tag-map entry."""


def actuator_of(idf: Idf, item: InputTag) -> tuple[str, str, str]:
    """(unique name, component type, control type) of the actuator behind an input tag."""
    if item.schedule is None:
        return item.actuator
    schedule = idf.schedule(item.schedule)
    if schedule is None:
        raise ModelError(f"{item.where}: schedule {item.schedule!r} is not in the model")
    return schedule.name, schedule.cls, "Schedule Value"


def meter_variable(item: OutputTag) -> str:
    """Name of the EMS output variable that carries a meter's value."""
    return f"twinbridge meter {item.tag}"


def output_variable(item: OutputTag) -> tuple[str, str]:
    """(key, output variable name) under which EnergyPlus reports an output tag; a meter comes
    through an EMS output variable (key "EMS")."""
    if item.meter is not None:
        return "EMS", meter_variable(item)
    return item.key, item.variable


def weather_variables(item: InputTag) -> tuple[str, str]:
    """Names of the two ``ExternalInterface:Variable`` objects carrying a weather input: its value, and
    1 when that value overrides the weather file (0: the weather file's value stays)."""
    return f"tb_weather_{item.tag}", f"tb_weather_{item.tag}_on"


def input_values(tagmap: TagMap, inputs: Mapping[str, float]) -> list[float]:
    """The reals of an ExternalInterface packet for ``inputs`` (tag -> value), in ``variables_cfg`` order:
    one per input; a weather input gives (value, 1), or (0, 0) while it follows the weather file (NaN)."""
    values = []
    for item in tagmap.inputs:
        value = float(inputs[item.tag])
        if item.weather is None:
            values.append(value)
        else:
            values += [0.0, 0.0] if follows_weather_file(value) else [value, 1.0]
    return values


def add_weather_input(idf: Idf, item: InputTag) -> None:
    """The ExternalInterface variables and the EMS program that set a weather input's actuator at
    WEATHER_CALLING_POINT while it overrides the weather file, and release it (Null) otherwise. Both
    variables start at 0: sizing and warm-up keep the weather file and the design days. The sky temperature
    has no actuator of its own: its model objects come from bridge/sky_temperature.py."""
    if item.weather == SKY_TEMPERATURE:
        add_sky_temperature(idf, item, weather_variables(item), external_interface=True)
        return
    value, on = weather_variables(item)
    actuator, program = f"{value}_actuator", f"{value}_program"
    idf.add("ExternalInterface:Variable", value, 0)
    idf.add("ExternalInterface:Variable", on, 0)
    idf.add("EnergyManagementSystem:Actuator", actuator, *item.actuator)
    idf.add("EnergyManagementSystem:Program", program, f"IF {on} > 0.5", f"SET {actuator} = {value}", "ELSE",
            f"SET {actuator} = Null", "ENDIF")
    idf.add("EnergyManagementSystem:ProgramCallingManager", f"{value}_manager", WEATHER_CALLING_POINT, program)


def prepare_model(idf: Idf, tagmap: TagMap, period: RunPeriod) -> Idf:
    """Set run period and timestep and add the output objects of ``tagmap``: what both engines need.

    Sizing calculations stay on; design-day simulations are switched off and the weather-file run
    period on, since ExternalInterface exchanges only during weather-file run periods.
    """
    idf.set_field("SimulationControl", 3, "No")  # run simulation for sizing periods
    idf.set_field("SimulationControl", 4, "Yes")  # run simulation for weather file run periods
    idf.remove_class("RunPeriod")
    precipitation = "Yes" if tagmap.weather_file_precipitation else "No"  # rain and snow indicators
    idf.add("RunPeriod", "twinbridge", period.start.month, period.start.day, period.start.year,
            period.end.month, period.end.day, period.end.year, "", "Yes", "Yes", "No", precipitation, precipitation)
    idf.remove_class("Timestep")
    idf.add("Timestep", period.timesteps_per_hour)
    if period.open_ended:  # a realtime run of years: no output file may grow with it (docs/bridge.md)
        idf.remove_class("Output:SQLite")
        idf.remove_class("OutputControl:Files")
        idf.add("OutputControl:Files", "No", "No", "No")  # CSV, MTR, ESO; the tag map's outputs still exchange
    for cls in ("ExternalInterface", "ExternalInterface:Schedule", "ExternalInterface:Actuator",
                "ExternalInterface:Variable"):
        idf.remove_class(cls)
    for item in tagmap.outputs:
        if item.meter is not None:
            # ExternalInterface exchanges output variables only: expose the meter through an EMS
            # sensor and an EMS output variable (key "EMS"), refreshed by a one-line program.
            sensor = f"tb_meter_{item.tag}"
            idf.add("Output:Meter", item.meter, "Timestep")
            idf.add("EnergyManagementSystem:Sensor", sensor, "", item.meter)
            idf.add("EnergyManagementSystem:GlobalVariable", f"{sensor}_value")
            idf.add("EnergyManagementSystem:Program", f"{sensor}_program", f"SET {sensor}_value = {sensor}")
            idf.add("EnergyManagementSystem:ProgramCallingManager", f"{sensor}_manager", "EndOfZoneTimestepBeforeZoneReporting", f"{sensor}_program")
            idf.add("EnergyManagementSystem:OutputVariable", meter_variable(item), f"{sensor}_value", "Summed", "ZoneTimestep", "", "J")
        else:
            idf.add("Output:Variable", item.key, item.variable, "Timestep")
    return idf


def patch_model(idf: Idf, tagmap: TagMap, period: RunPeriod) -> Idf:
    """``prepare_model`` plus the ExternalInterface objects of ``tagmap``."""
    prepare_model(idf, tagmap, period)
    idf.add("ExternalInterface", "PtolemyServer")
    for item in tagmap.inputs:
        if item.weather is not None:
            add_weather_input(idf, item)
            continue
        name, component_type, control_type = actuator_of(idf, item)
        idf.add("ExternalInterface:Actuator", item.tag, name, component_type, control_type, item.default)
    return idf


def variables_cfg(tagmap: TagMap) -> str:
    """``variables.cfg``: outputs (EnergyPlus -> bridge), then inputs (bridge -> EnergyPlus)."""
    lines = [
        '<?xml version="1.0" encoding="ISO-8859-1"?>',
        '<!DOCTYPE BCVTB-variables SYSTEM "variables.dtd">',
        "<BCVTB-variables>",
    ]
    for item in tagmap.outputs:
        key, variable = output_variable(item)
        element = f"<EnergyPlus name={quoteattr(key)} type={quoteattr(variable)}/>"
        lines.append(f'  <variable source="EnergyPlus">{element}</variable>')
    for item in tagmap.inputs:
        elements = ([f"actuator={quoteattr(item.tag)}"] if item.weather is None else
                    [f"variable={quoteattr(name)}" for name in weather_variables(item)])
        lines += [f'  <variable source="Ptolemy"><EnergyPlus {element}/></variable>' for element in elements]
    lines.append("</BCVTB-variables>")
    return "\n".join(lines) + "\n"


def socket_cfg(port: int, host: str = "127.0.0.1") -> str:
    """``socket.cfg``: the engine connects as a client to the bridge at host:port."""
    return (
        '<?xml version="1.0" encoding="ISO-8859-1"?>\n'
        "<BCVTB-client>\n"
        f'  <ipc><socket port="{port}" hostname="{host}"/></ipc>\n'
        "</BCVTB-client>\n"
    )


def write_cosim_files(workdir: Path, model: Path, tagmap: TagMap, period: RunPeriod, port: int) -> Path:
    """Write patched IDF, variables.cfg and socket.cfg into ``workdir``; return the IDF path."""
    workdir.mkdir(parents=True, exist_ok=True)
    idf = patch_model(Idf.read(model), tagmap, period)
    idf_path = workdir / "model.idf"
    idf.write(idf_path)
    (workdir / "variables.cfg").write_text(variables_cfg(tagmap), encoding="latin-1")
    (workdir / "socket.cfg").write_text(socket_cfg(port), encoding="latin-1")
    return idf_path
