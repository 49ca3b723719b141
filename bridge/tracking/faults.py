"""Model edits: faulted copies of an IDF for a "live building", and ECM edits for the registry.

Every function edits an ``Idf`` in place (read it with ``Idf.read``, write the copy with
``Idf.write``; the user's file is never touched) and returns how many objects it changed.

Faults that start part-way through a run (``start`` = first faulted day) are made with schedules,
because an IDF has no notion of "from date D on" for a design level:

- ``raise_equipment``: an extra ``ElectricEquipment`` per original, with ``pct`` % of its design
  level, on a copy of its schedule that is 0 through the day before ``start`` and the original
  schedule from ``start`` on. Before ``start`` the model is unchanged.
- ``scale_lighting``: a copy of each ``Lights`` schedule whose values from ``start`` on are
  multiplied by ``factor`` (factor <= 1, so a Fraction schedule stays within its limits); without
  ``start`` the lighting power density itself is scaled (the LED retrofit ECM).
- ``shift_schedule``: every ``Until: HH:MM`` of a ``Schedule:Compact`` moved by ``hours`` from
  ``start`` on (a control fault such as a start-up two hours early).
- ``disable_economizer``: every ``Controller:OutdoorAir`` set to ``NoEconomizer`` (whole run; a
  part-way change would need EMS). Buildings that have no economizer report 0 changes.

Part-way edits need ``Schedule:Compact`` schedules ("Through:" blocks are split at ``start``).
EnergyPlus evaluates schedules on the design days at their own dates (Chicago: Jan 21 and Jul 21): a
fault that starts before a design day's date also changes the autosized equipment, as if the
building had been designed with the fault. Start part-way faults after the design days' dates
to leave sizing, and the run before ``start``, identical to the unfaulted model.
``apply_edit`` applies one edit given as a dict (``{"edit": "scale_lighting", "factor": 0.5}``),
the form the model registry stores for an ECM.

Whole-run edits that calibration parameters (``calibration_params``) vary, factor 1 or offset 0
leaving the model as it is: ``scale_lighting`` (no ``start``) and ``scale_equipment`` (lighting and
plug-load power density), ``scale_schedule`` (a schedule's values, clamped to its type limits),
``offset_schedule`` (setpoints, or only their setback values), ``scale_infiltration``,
``scale_cooling_cop`` (DX coils and chillers), ``scale_fan_efficiency``, ``scale_outdoor_air``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from bridge.errors import TwinbridgeError
from bridge.idf import Idf, IdfObject


class FaultError(TwinbridgeError, ValueError):
    """An edit that cannot be applied; the message names the object or argument."""


Tokens = list[str]
REFERENCE_YEAR = 2000  # a schedule's days, "Through: MM/DD", belong to no year: a leap year has them all (02/29)
THROUGH = re.compile(r"^through:\s*(\d{1,2})\s*/\s*(\d{1,2})$", re.I)
UNTIL = re.compile(r"^until:\s*(\d{1,2}):(\d{2})$", re.I)


def _through_blocks(schedule: IdfObject) -> list[tuple[dt.date, Tokens]]:
    """The "Through:" blocks of a Schedule:Compact as (last day, tokens after the Through field)."""
    blocks: list[tuple[dt.date, Tokens]] = []
    for token in schedule.fields[2:]:
        match = THROUGH.match(token.strip())
        if match:
            try:
                blocks.append((dt.date(REFERENCE_YEAR, int(match[1]), int(match[2])), []))
            except ValueError as exc:
                raise FaultError(f"schedule {schedule.name}: {token.strip()!r}: {exc}") from None
        elif not blocks:
            raise FaultError(f"schedule {schedule.name}: expected 'Through:' first, got {token!r}")
        else:
            blocks[-1][1].append(token)
    return blocks


def _split_schedule(idf: Idf, name: str, start: dt.date, new_name: str,
                    before: Callable[[Tokens], Tokens], after: Callable[[Tokens], Tokens]) -> IdfObject:
    """Add a Schedule:Compact ``new_name``: ``before(tokens)`` up to the day before ``start``, ``after`` from it."""
    schedule = idf.schedule(name)
    if schedule is None or schedule.cls.lower() != "schedule:compact":
        raise FaultError(f"schedule {name!r} is not a Schedule:Compact in this model (needed for a part-way edit)")
    first = dt.date(REFERENCE_YEAR, start.month, start.day)
    fields = [new_name, schedule.fields[1]]
    previous_end = dt.date(REFERENCE_YEAR - 1, 12, 31)
    for last_day, tokens in _through_blocks(schedule):
        if last_day < first:
            fields += [f"Through: {last_day:%m/%d}", *before(tokens)]
        else:
            if previous_end < first - dt.timedelta(days=1):  # this block straddles the start: split it
                fields += [f"Through: {first - dt.timedelta(days=1):%m/%d}", *before(tokens)]
            fields += [f"Through: {last_day:%m/%d}", *after(tokens)]
            first = dt.date(REFERENCE_YEAR, 1, 1)  # split done: the remaining blocks are all "after"
        previous_end = last_day
    existing = idf.schedule(new_name)
    if existing is not None:
        idf.objects.remove(existing)
    return idf.add("Schedule:Compact", *fields)


def _map_values(tokens: Tokens, fn: Callable[[float], float]) -> Tokens:
    """Apply ``fn`` to every value token (those that are not For:/Until:/Interpolate: keywords)."""
    out = []
    for token in tokens:
        try:
            out.append(f"{fn(float(token)):.6g}")
        except ValueError:
            out.append(token)
    return out


def _zero(tokens: Tokens) -> Tokens:
    return _map_values(tokens, lambda value: 0.0)


def _same(tokens: Tokens) -> Tokens:
    return list(tokens)


def _shift_until(tokens: Tokens, hours: float) -> Tokens:
    """Move every "Until:" of a day by ``hours`` (clamped to the day); drop intervals that vanish."""
    out: Tokens = []
    previous = 0
    i = 0
    while i < len(tokens):
        match = UNTIL.match(tokens[i].strip())
        if not match:
            if tokens[i].strip().lower().startswith("for:"):
                previous = 0  # a new day type starts at midnight
            out.append(tokens[i])
            i += 1
            continue
        minutes = int(match[1]) * 60 + int(match[2])
        moved = minutes if minutes == 24 * 60 else min(max(int(minutes + hours * 60), 0), 24 * 60)
        value = tokens[i + 1] if i + 1 < len(tokens) else ""
        if moved > previous:
            out += [f"Until: {moved // 60:02d}:{moved % 60:02d}", value]
            previous = moved
        i += 2
    return out


def raise_equipment(idf: Idf, pct: float, start: dt.date | None = None) -> int:
    """Raise every ElectricEquipment design level by ``pct`` % (from ``start`` on when given)."""
    if pct <= 0:
        raise FaultError(f"raise_equipment: pct must be > 0, got {pct}")
    originals = list(idf.of_class("ElectricEquipment"))
    if not originals:
        raise FaultError("raise_equipment: the model has no ElectricEquipment objects")
    for equipment in originals:
        if start is None:
            _scale_design_level(equipment, 1 + pct / 100)
            continue
        schedule_name = equipment.fields[2]
        fault_schedule = f"{schedule_name}_FAULT_{start:%m%d}"
        if idf.schedule(fault_schedule) is None:
            _split_schedule(idf, schedule_name, start, fault_schedule, _zero, _same)
        extra = idf.add("ElectricEquipment", *equipment.fields)
        extra.fields[0] = f"{equipment.name}_FAULT"
        extra.fields[2] = fault_schedule
        _scale_design_level(extra, pct / 100)
    return len(originals)


def _scale_design_level(obj: IdfObject, factor: float) -> None:
    """Scale the design-level fields (level, per area, per person: fields 4-6) that hold numbers."""
    for index in (4, 5, 6):
        if index < len(obj.fields) and obj.fields[index].strip():
            obj.fields[index] = f"{float(obj.fields[index]) * factor:.6g}"


def scale_lighting(idf: Idf, factor: float, start: dt.date | None = None) -> int:
    """Multiply lighting power by ``factor`` (> 0; with ``start``, <= 1 so a Fraction schedule stays one),
    from ``start`` on when given, else the power density itself."""
    if not 0 < factor <= (1 if start is not None else float("inf")):
        raise FaultError(f"scale_lighting: factor must be in (0, 1] with a start day, > 0 without, got {factor}")
    lights = idf.of_class("Lights")
    if not lights:
        raise FaultError("scale_lighting: the model has no Lights objects")
    for light in lights:
        if start is None:
            _scale_design_level(light, factor)
            continue
        schedule_name = light.fields[2]
        new_name = f"{schedule_name}_X{factor:g}_{start:%m%d}"
        if idf.schedule(new_name) is None:
            _split_schedule(idf, schedule_name, start, new_name, _same,
                            lambda tokens: _map_values(tokens, lambda v: v * factor))
        light.fields[2] = new_name
    return len(lights)


def shift_schedule(idf: Idf, name: str, hours: float, start: dt.date | None = None) -> int:
    """Move the daily profile of Schedule:Compact ``name`` by ``hours`` (from ``start`` on when given)."""
    schedule = idf.schedule(name)
    if schedule is None:
        raise FaultError(f"shift_schedule: no schedule named {name!r}")
    shifted = _split_schedule(idf, name, start or dt.date(REFERENCE_YEAR, 1, 1), f"{name}_SHIFTED", _same,
                              lambda tokens: _shift_until(tokens, hours))
    schedule.fields[2:] = shifted.fields[2:]
    idf.objects.remove(shifted)
    return 1


def disable_economizer(idf: Idf) -> int:
    """Set every Controller:OutdoorAir economizer control type (field 8) to NoEconomizer; count changes."""
    changed = 0
    for controller in idf.of_class("Controller:OutdoorAir"):
        if len(controller.fields) > 7 and controller.fields[7].lower() != "noeconomizer":
            controller.fields[7] = "NoEconomizer"
            changed += 1
    return changed


def _positive(edit: str, factor: float) -> None:
    if not factor > 0:
        raise FaultError(f"{edit}: factor must be > 0, got {factor}")


def _scale_fields(idf: Idf, fields: dict[str, tuple[int, ...]], factor: float, edit: str,
                  upper: float = float("inf")) -> int:
    """Multiply the numeric fields ``fields[class]`` of every object of those classes by ``factor`` (at most
    ``upper``); blank and AUTOSIZE fields stay. Count the objects; none at all is a FaultError."""
    _positive(edit, factor)
    changed = 0
    for cls, indices in fields.items():
        for obj in idf.of_class(cls):
            changed += 1
            for index in indices:
                try:
                    value = float(obj.fields[index])
                except (IndexError, ValueError):
                    continue
                obj.fields[index] = f"{min(value * factor, upper):.6g}"
    if not changed:
        raise FaultError(f"{edit}: the model has none of {sorted(fields)}")
    return changed


def scale_equipment(idf: Idf, factor: float) -> int:
    """Multiply every ElectricEquipment design level (plug-load power density) by ``factor`` (> 0)."""
    return _scale_fields(idf, {"ElectricEquipment": (4, 5, 6)}, factor, "scale_equipment")


def scale_infiltration(idf: Idf, factor: float) -> int:
    """Multiply every ZoneInfiltration:DesignFlowRate rate (flow, per floor area, per exterior area, ACH)."""
    return _scale_fields(idf, {"ZoneInfiltration:DesignFlowRate": (4, 5, 6, 7)}, factor, "scale_infiltration")


def scale_cooling_cop(idf: Idf, factor: float) -> int:
    """Multiply the rated COP of DX cooling coils and chillers by ``factor`` (> 1: more efficient)."""
    return _scale_fields(idf, {"Coil:Cooling:DX:SingleSpeed": (4,), "Coil:Cooling:DX:TwoSpeed": (4, 15),
                               "Chiller:Electric:EIR": (2,), "Chiller:Electric:ReformulatedEIR": (2,)},
                         factor, "scale_cooling_cop")


def scale_fan_efficiency(idf: Idf, factor: float) -> int:
    """Multiply fans' total efficiency by ``factor`` (capped at 1): Fan:ConstantVolume/VariableVolume/OnOff
    field 3, Fan:SystemModel's fan total efficiency."""
    return _scale_fields(idf, {"Fan:ConstantVolume": (2,), "Fan:VariableVolume": (2,), "Fan:OnOff": (2,),
                               "Fan:SystemModel": (14,)}, factor, "scale_fan_efficiency", upper=1.0)


def scale_outdoor_air(idf: Idf, factor: float) -> int:
    """Multiply every DesignSpecification:OutdoorAir rate (per person, per area, per zone, ACH)."""
    return _scale_fields(idf, {"DesignSpecification:OutdoorAir": (2, 3, 4, 5)}, factor, "scale_outdoor_air")


def _type_limits(idf: Idf, schedule: IdfObject) -> tuple[float, float]:
    """(lower, upper) of a schedule's ScheduleTypeLimits (infinite where none is given)."""
    limits = idf.find("ScheduleTypeLimits", schedule.fields[1]) if len(schedule.fields) > 1 else None
    bounds = [-float("inf"), float("inf")]
    for i, index in enumerate((1, 2)):
        try:
            bounds[i] = float(limits.fields[index])  # type: ignore[union-attr]
        except (AttributeError, IndexError, ValueError):
            pass
    return bounds[0], bounds[1]


def _compact(idf: Idf, name: str, edit: str) -> IdfObject:
    schedule = idf.schedule(name)
    if schedule is None or schedule.cls.lower() != "schedule:compact":
        raise FaultError(f"{edit}: no Schedule:Compact named {name!r} in this model")
    return schedule


def scale_schedule(idf: Idf, name: str, factor: float) -> int:
    """Multiply every value of Schedule:Compact ``name`` by ``factor`` (> 0), clamped to its type limits
    (a Fraction schedule's full-load hours stay at 1: scaling raises the part-load hours only)."""
    _positive("scale_schedule", factor)
    schedule = _compact(idf, name, "scale_schedule")
    low, high = _type_limits(idf, schedule)
    schedule.fields[2:] = _map_values(schedule.fields[2:], lambda v: min(max(v * factor, low), high))
    return 1


def offset_schedule(idf: Idf, name: str, delta: float, values: str = "all") -> int:
    """Add ``delta`` (the schedule's unit, K for a setpoint) to the values of Schedule:Compact ``name``:
    ``values`` "all", "max" (only those equal to its largest value: a cooling setback) or "min" (its
    smallest: a heating setback)."""
    if values not in ("all", "max", "min"):
        raise FaultError(f"offset_schedule: values must be 'all', 'max' or 'min', got {values!r}")
    schedule = _compact(idf, name, "offset_schedule")
    numbers = [float(token) for token in schedule.fields[2:] if _is_number(token)]
    target = {"max": max(numbers, default=0.0), "min": min(numbers, default=0.0)}.get(values)
    schedule.fields[2:] = _map_values(schedule.fields[2:],
                                      lambda v: v + delta if target is None or v == target else v)
    return 1


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


EDITS: dict[str, Callable[..., int]] = {
    "raise_equipment": raise_equipment,
    "scale_lighting": scale_lighting,
    "shift_schedule": shift_schedule,
    "disable_economizer": disable_economizer,
    "scale_equipment": scale_equipment,
    "scale_infiltration": scale_infiltration,
    "scale_cooling_cop": scale_cooling_cop,
    "scale_fan_efficiency": scale_fan_efficiency,
    "scale_outdoor_air": scale_outdoor_air,
    "scale_schedule": scale_schedule,
    "offset_schedule": offset_schedule,
}


def apply_edit(idf: Idf, edit: dict) -> int:
    """Apply one edit given as ``{"edit": name, **arguments}`` (``start`` as "YYYY-MM-DD" or "MM-DD");
    any problem is a FaultError naming the edit."""
    kwargs = dict(edit)
    name = kwargs.pop("edit", None)
    if name not in EDITS:
        raise FaultError(f"unknown edit {name!r}; known: {sorted(EDITS)}")
    try:
        if "start" in kwargs:
            kwargs["start"] = parse_day(str(kwargs["start"]))
        return EDITS[name](idf, **kwargs)
    except (TypeError, ValueError) as exc:  # FaultError too: which edit of an ECM's several
        raise FaultError(f"edit {edit}: {exc}") from None


def parse_day(text: str) -> dt.date:
    """A day given as "YYYY-MM-DD" or "MM-DD" (the year does not matter to a schedule: "MM-DD" is a day of
    the leap REFERENCE_YEAR, so 02-29 is one)."""
    parts = text.split("-")
    if len(parts) not in (2, 3) or not all(part.isdigit() for part in parts):
        raise FaultError(f"expected a day as YYYY-MM-DD or MM-DD, got {text!r}")
    numbers = [int(part) for part in parts]
    try:
        return dt.date(*numbers) if len(numbers) == 3 else dt.date(REFERENCE_YEAR, *numbers)
    except ValueError as exc:
        raise FaultError(f"no such day: {text!r} ({exc})") from None
