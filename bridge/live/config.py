"""A building's ``[buildings.live]`` table: the live building whose values the twin's inputs mirror.

Example (docs/live.md has every key)::

    [[buildings]]
    name = "SmallOffice"
    ...

    [buildings.live]
    endpoint = "opc.tcp://bms.example:4840"    # the live building's OPC UA server
    namespace = "urn:vendor:bms"               # of node ids written as plain strings
    security = "Basic256Sha256,SignAndEncrypt,client.der,client_key.pem"   # as tracking takes it
    username = "twin"                          # password from $TWINBRIDGE_OPCUA_PASSWORD (or password_env)
    max_age_s = 60                             # older than this (link down): hold the value, raise LiveStale
    warm_up = "history"                        # warm up on the live weather of the 24 h before the start
    warm_up_timeout_s = 30                     # (HistoryRead, bridge/live/warmup.py); default "": the file's day

    [[buildings.live.inputs]]
    input = "CoolingSetpoint"                  # an input of the building's tag map
    node = "ns=2;s=AHU1.ClgSP"                 # node id, string id in `namespace`, or browse path "/AHU1/ClgSP"
    unit = "degF"                              # live unit, converted to the input's (or "degF->degC"; or scale/offset)

``warm_up = "history"`` (default ``""``, off): before the engine starts, its weather file's run-start day takes the
live building's recorded weather (bridge/live/warmup.py; docs/live.md, "Warm-up from the live building's history").

Read with the file's ``Table`` (bridge.tomlfile), so a wrong key or value is a ConfigError naming file and key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bridge.names import repeated
from bridge.tagmap import TagMap
from bridge.tomlfile import Table
from bridge.tracking.config import Endpoint, TrackingConfigError, read_endpoint

# Affine units per quantity: value in the quantity's base unit = value * scale + offset.
UNITS = {
    "degC": ("temperature", 1.0, 0.0), "K": ("temperature", 1.0, -273.15),
    "degF": ("temperature", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
    "W": ("power", 1.0, 0.0), "kW": ("power", 1e3, 0.0), "MW": ("power", 1e6, 0.0),
    "Btu/h": ("power", 0.29307107, 0.0), "ton": ("power", 3516.8528, 0.0),  # ton of refrigeration
    "%": ("fraction", 0.01, 0.0), "1": ("fraction", 1.0, 0.0),
    "Pa": ("pressure", 1.0, 0.0), "kPa": ("pressure", 1e3, 0.0), "inH2O": ("pressure", 249.08891, 0.0),
    "psi": ("pressure", 6894.7573, 0.0),
    "m3/s": ("flow", 1.0, 0.0), "L/s": ("flow", 1e-3, 0.0), "cfm": ("flow", 4.7194745e-4, 0.0),
    "W/m2": ("irradiance", 1.0, 0.0), "Btu/h-ft2": ("irradiance", 3.1545907, 0.0),
    "m/s": ("speed", 1.0, 0.0), "mph": ("speed", 0.44704, 0.0), "km/h": ("speed", 1.0 / 3.6, 0.0),
    "deg": ("angle", 1.0, 0.0),
}
INPUT_KEYS = ("input", "node", "unit", "scale", "offset")
WARM_UP = ("", "history")  # "": EnergyPlus warms up on the weather file's first day; "history": on the live one's


@dataclass(frozen=True)
class MirroredInput:
    """One twin input and the live node it mirrors: twin value = live value * scale + offset."""

    input: str
    node: str
    scale: float = 1.0
    offset: float = 0.0

    def convert(self, live_value: float) -> float:
        return live_value * self.scale + self.offset


@dataclass(frozen=True)
class LiveConfig:
    """The live building of one twin building; ``max_age_s``: how long a value counts as current once the
    link that delivered it is down (wall-clock seconds); ``warm_up``: one of WARM_UP, ``warm_up_timeout_s`` the
    most the history read may take before the twin warms up on its own file."""

    endpoint: Endpoint
    inputs: tuple[MirroredInput, ...]
    max_age_s: float = 60.0
    warm_up: str = ""
    warm_up_timeout_s: float = 30.0


def unit_conversion(text: str, target: str, where: str, error: type[Exception]) -> tuple[float, float]:
    """(scale, offset) taking values in unit ``text`` ("degF", or "degF->degC" whose right side must be
    ``target``) to unit ``target`` (the twin input's); ``error`` naming ``where`` for unknown or
    incompatible units."""
    source, _, named_target = (part.strip() for part in text.partition("->"))
    if named_target and named_target != target:
        raise error(f"{where}: unit {text!r} converts to {named_target!r}, but the twin input is in {target!r}")
    for unit in (source, target):
        if unit not in UNITS:
            raise error(f"{where}: unit {unit!r} has no known conversion (known: {sorted(UNITS)}); "
                        "give scale and offset instead")
    (quantity_a, scale_a, offset_a), (quantity_b, scale_b, offset_b) = UNITS[source], UNITS[target]
    if quantity_a != quantity_b:
        raise error(f"{where}: cannot convert {source!r} ({quantity_a}) to {target!r} ({quantity_b})")
    return scale_a / scale_b, (offset_a - offset_b) / scale_b


def live_config(table: Table, tagmap: TagMap) -> LiveConfig:
    """The ``[buildings.live]`` table of a building with tag map ``tagmap``; the table's error naming file
    and key for anything wrong (an unknown or repeated input, a unit without conversion, a bad endpoint)."""
    error = table.error
    try:
        endpoint = read_endpoint(table, ("max_age_s", "inputs", "warm_up", "warm_up_timeout_s"))
    except TrackingConfigError as exc:
        raise error(str(exc)) from None
    max_age_s = table.number("max_age_s", 60.0)
    if not 0 < max_age_s < math.inf:
        raise error(f"{table.where}: 'max_age_s' must be a positive number of seconds, got {max_age_s!r}")
    warm_up, warm_up_timeout_s = table.text("warm_up", ""), table.number("warm_up_timeout_s", 30.0)
    if warm_up not in WARM_UP:
        raise error(f"{table.where}: 'warm_up' must be one of {list(WARM_UP)}, got {warm_up!r}")
    if not 0 < warm_up_timeout_s < math.inf:
        raise error(f"{table.where}: 'warm_up_timeout_s' must be a positive number of seconds, got {warm_up_timeout_s!r}")
    inputs = tuple(_mirrored(entry, tagmap) for entry in table.tables("inputs"))
    if not inputs:
        raise error(f"{table.where}: no [[buildings.live.inputs]] listed: name the twin inputs it mirrors")
    if warm_up and not any(tagmap.input(m.input).weather for m in inputs):
        raise error(f"{table.where}: warm_up = {warm_up!r} needs a mirrored weather input (a tag map input with "
                    "'weather'): it fills the weather file's fields those inputs set")
    names = [m.input for m in inputs]
    twice = repeated(names)
    if twice:
        raise error(f"{table.where}: inputs {twice} are mirrored more than once")
    return LiveConfig(endpoint, inputs, max_age_s, warm_up, warm_up_timeout_s)


def _mirrored(entry: Table, tagmap: TagMap) -> MirroredInput:
    entry.check_keys(INPUT_KEYS)
    name, node = entry.text("input"), entry.text("node")
    known = [item.tag for item in tagmap.inputs]
    if name not in known:
        raise entry.error(f"{entry.where}: 'input' {name!r} is not an input of the tag map (inputs: {known})")
    if not node.strip("/ "):
        raise entry.error(f"{entry.where}: 'node' must name a node id or a browse path, got {node!r}")
    if "unit" in entry.values and {"scale", "offset"} & set(entry.values):
        raise entry.error(f"{entry.where}: give either 'unit' or 'scale'/'offset', not both")
    if "unit" in entry.values:
        scale, offset = unit_conversion(entry.text("unit"), tagmap.input(name).unit, f"{entry.where}: unit",
                                        entry.error)
    else:
        scale, offset = entry.number("scale", 1.0), entry.number("offset", 0.0)
    if not (math.isfinite(scale) and math.isfinite(offset) and scale != 0):
        raise entry.error(f"{entry.where}: 'scale' must be a finite non-zero number and 'offset' finite, "
                          f"got {scale!r} and {offset!r}")
    return MirroredInput(name, node, scale, offset)
