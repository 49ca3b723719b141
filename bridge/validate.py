"""Check a campus against its models before running: every tag-map name must exist in the model.

Schedules and actuator keys are looked up in the IDF. Output variables and meters are looked up in
the model's own variable dictionary (``eplusout.rdd`` / ``eplusout.mdd``), which EnergyPlus writes
after a one-day run; dictionaries are cached by the hash of model and weather, so only the first
check of a model pays for that run.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
import tempfile
from pathlib import Path

from bridge.config import BuildingConfig, CampusConfig, cache_dir
from bridge.cosim_files import ModelError, actuator_of
from bridge.engines.energyplus import severe_lines
from bridge.errors import TwinbridgeError
from bridge.idf import Idf
from bridge.sky_temperature import SkyModelError, add_sky_temperature
from bridge.tagmap import SKY_TEMPERATURE
from bridge.twin.errors import ModelFileError

GLOBAL_KEYS = {"ENVIRONMENT", "WHOLE BUILDING", "*"}
DICTIONARY_TIMEOUT_S = 300.0
KILL_TIMEOUT_S = 10.0  # for a killed EnergyPlus process to be gone


class ValidationError(TwinbridgeError, ValueError):
    """Names that do not exist in the model; one line per problem."""


def _dictionary_entries(text: str, cls: str) -> set[str]:
    pattern = re.compile(rf"^{cls},[^,]*,([^,;]+)[,;]" if cls == "Output:Variable" else rf"^{cls},([^,;]+)[,;]",
                         re.IGNORECASE | re.MULTILINE)
    return {match.group(1).strip().upper() for match in pattern.finditer(text)}


async def variable_dictionary(model: Path, weather: Path) -> tuple[set[str], set[str]]:
    """(output variable names, meter names), upper-cased, that the model can report."""
    digest = hashlib.sha256(model.read_bytes() + weather.read_bytes()).hexdigest()[:20]
    cached = cache_dir() / "dictionaries" / digest
    if not (cached / "eplusout.rdd").is_file():
        await _write_dictionary(model, weather, cached)
    rdd = (cached / "eplusout.rdd").read_text(errors="replace")
    mdd = (cached / "eplusout.mdd").read_text(errors="replace")
    return _dictionary_entries(rdd, "Output:Variable"), _dictionary_entries(mdd, "Output:Meter")


async def _write_dictionary(model: Path, weather: Path, target: Path) -> None:
    idf = Idf.read(model)
    idf.set_field("SimulationControl", 3, "No")
    idf.set_field("SimulationControl", 4, "Yes")
    idf.remove_class("RunPeriod")
    idf.add("RunPeriod", "dictionary", 1, 1, "", 1, 1)  # one day is enough to list every variable
    idf.remove_class("Output:VariableDictionary")
    idf.add("Output:VariableDictionary", "IDF")
    for cls in ("ExternalInterface", "ExternalInterface:Schedule", "ExternalInterface:Actuator",
                "ExternalInterface:Variable"):
        idf.remove_class(cls)
    with tempfile.TemporaryDirectory(prefix="twinbridge-dict-") as work:
        work_path = Path(work)
        idf.write(work_path / "model.idf")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge.engines.eplus_child", "-w", str(weather), "-d", str(work_path / "out"),
            str(work_path / "model.idf"), cwd=work, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL)
        try:
            await asyncio.wait_for(process.wait(), DICTIONARY_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise ValidationError(f"{model}: EnergyPlus did not finish the dictionary run within "
                                  f"{DICTIONARY_TIMEOUT_S:.0f} s") from None
        finally:  # also when the validation is cancelled (a signal): no EnergyPlus outlives it
            if process.returncode is None:
                process.kill()
                await asyncio.wait_for(process.wait(), KILL_TIMEOUT_S)
        rdd = work_path / "out" / "eplusout.rdd"
        if process.returncode != 0 or not rdd.is_file():
            details = "\n  ".join(severe_lines(work_path / "out" / "eplusout.err"))
            raise ValidationError(f"{model}: EnergyPlus cannot run this model:\n  {details}")
        target.mkdir(parents=True, exist_ok=True)
        for name in ("eplusout.rdd", "eplusout.mdd"):
            (target / name).write_bytes((work_path / "out" / name).read_bytes())


async def building_problems(building: BuildingConfig) -> list[str]:
    """Every tag-map entry of ``building`` whose name is not in its model."""
    if building.engine == "twin":
        return _twin_problems(building)
    idf = Idf.read(building.model)
    problems = []
    names = idf.object_names() | {value.upper() for obj in idf.objects for value in obj.fields}
    for item in building.tagmap.inputs:
        try:
            key, _, _ = actuator_of(idf, item)
        except ModelError as exc:
            problems.append(str(exc))
            continue
        if item.schedule is None and item.weather is None and key.upper() not in names:
            problems.append(f"{item.where}: actuator key {key!r} is not an object or node of the model")
        if item.weather == SKY_TEMPERATURE:
            try:
                add_sky_temperature(Idf.read(building.model), item, ("value", "on"), external_interface=False)
            except SkyModelError as exc:
                problems.append(str(exc))
    variables, meters = await variable_dictionary(building.model, building.weather)
    for item in building.tagmap.outputs:
        if item.meter is not None:
            if item.meter.upper() not in meters:
                problems.append(f"{item.where}: meter {item.meter!r} does not exist in this model")
        elif item.variable.upper() not in variables:
            problems.append(f"{item.where}: output variable {item.variable!r} does not exist in this model")
        elif item.key.upper() not in GLOBAL_KEYS and item.key.upper() not in names:
            problems.append(f"{item.where}: key {item.key!r} of {item.variable!r} is not an object or node "
                            f"of the model")
    return [f"building {building.name} ({building.model.name}): {p}" for p in problems]


def _twin_problems(building: BuildingConfig) -> list[str]:
    """A twin building's model file must load and fit its tag map."""
    from bridge.twin.persist import check_compatible, load_model  # scikit-learn: only when a twin is used

    try:
        check_compatible(load_model(building.twin_model), building.tagmap, building.twin_model)
    except ModelFileError as exc:
        return [f"building {building.name}: {exc}"]
    return []


def tracking_problems(config: CampusConfig) -> list[str]:
    """Problems of the tracking files a campus names (``[[tracking]]``)."""
    if not config.tracking:
        return []
    from bridge.tracking.config import TrackingConfigError, load_tracking_config

    problems = []
    for building, path in config.tracking:
        try:
            load_tracking_config(path)
        except TrackingConfigError as exc:
            problems.append(f"tracking of {building}: {exc}")
    return problems


async def validate_campus(config: CampusConfig) -> None:
    """Raise ValidationError listing every problem of every building."""
    results = await asyncio.gather(*(building_problems(b) for b in config.buildings))
    problems = [p for found in results for p in found] + tracking_problems(config)
    if problems:
        raise ValidationError("\n".join(problems))
