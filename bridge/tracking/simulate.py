"""Standalone EnergyPlus runs of an edited model: hourly facility electricity over a period.

A calibration trial, a monthly bill check and a synthetic "truth" are all the same thing: the model
IDF with a list of ``faults.apply_edit`` edits, run with a weather file over a run period, read back
as hourly ``Electricity:Facility`` energy (kWh per clock hour, labelled by the hour's start, local
standard time as EnergyPlus simulates it). ``simulate`` does one run in a child process
(``bridge.engines.eplus_child``, the pyenergyplus API with the command line's arguments);
``simulate_many`` runs several in a process pool (``workers`` at a time).

Sizing calculations stay on (the model is autosized as the reference building is), design-day
simulations are off and the weather-file run period on (``cosim_files.prepare_model``, no tag map).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bridge.config import RunPeriod
from bridge.cosim_files import prepare_model
from bridge.engines.base import EngineFault
from bridge.engines.energyplus import severe_lines
from bridge.idf import Idf
from bridge.tagmap import TagMap
from bridge.tracking.faults import FaultError, apply_edit

J_PER_KWH = 3.6e6
METER = "Electricity:Facility"
SIMULATION_TIMEOUT_S = 3600.0  # one run of a calibration; a year of the Large Office takes minutes here


@dataclass(frozen=True)
class Run:
    """One simulation: a model, the edits applied to it, a weather file and a period (hourly output)."""

    model: Path
    weather: Path
    start: dt.date
    end: dt.date  # inclusive
    edits: tuple[dict, ...] = field(default_factory=tuple)
    timesteps_per_hour: int = 4


def edited_idf(model: Path, edits: Sequence[dict]) -> Idf:
    """``model`` with every edit applied in order; an edit that changes nothing is a FaultError."""
    idf = Idf.read(model)
    for edit in edits:
        if apply_edit(idf, dict(edit)) == 0:
            raise FaultError(f"edit {edit} changed nothing in {model}")
    return idf


def _run_idf(run: Run, workdir: Path) -> Path:
    idf = edited_idf(run.model, run.edits)
    prepare_model(idf, TagMap("calibration", (), ()), RunPeriod(run.start, run.end, run.timesteps_per_hour))
    idf.remove_class("Output:SQLite")
    idf.add("Output:SQLite", "Simple")
    if not any(obj.name.lower() == METER.lower() for obj in idf.of_class("Output:Meter")):
        idf.add("Output:Meter", METER, "Hourly")
    for obj in idf.of_class("Output:Meter"):
        if obj.name.lower() == METER.lower():
            obj.fields[1] = "Hourly"
    path = workdir / "in.idf"
    idf.write(path)
    return path


def simulate(run: Run, workdir: Path | None = None, timeout_s: float = SIMULATION_TIMEOUT_S) -> pd.Series:
    """Hourly facility electricity (kWh, indexed by the start of each hour) of one run; EngineFault if EnergyPlus
    fails or has not finished within ``timeout_s`` (it is killed then)."""
    with tempfile.TemporaryDirectory(prefix="tb-sim-") as scratch:
        folder = Path(workdir or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        idf = _run_idf(run, folder)
        out = folder / "out"
        try:
            done = subprocess.run([sys.executable, "-m", "bridge.engines.eplus_child", "-w",
                                   str(Path(run.weather).resolve()), "-d", str(out), str(idf)],
                                  capture_output=True, text=True, cwd=folder, check=False, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise EngineFault(f"EnergyPlus did not finish {run.model.name} with edits {list(run.edits)} within "
                              f"{timeout_s:g} s") from None
        if done.returncode != 0:
            raise EngineFault(f"EnergyPlus failed on {run.model.name} with edits {list(run.edits)}",
                              severe_lines(out / "eplusout.err"))
        return hourly_meter(out / "eplusout.sql", run.start.year)


def hourly_meter(sql: Path, year: int, meter: str = METER) -> pd.Series:
    """The hourly values of ``meter`` (J -> kWh) from an EnergyPlus SQLite output, indexed by hour start (the run
    starting in ``year``)."""
    with sqlite3.connect(sql) as db:
        rows = db.execute(
            "SELECT t.Month, t.Day, t.Hour, d.Value FROM ReportData d JOIN Time t ON d.TimeIndex = t.TimeIndex "
            "JOIN ReportDataDictionary r ON d.ReportDataDictionaryIndex = r.ReportDataDictionaryIndex "
            "WHERE r.Name = ? AND r.ReportingFrequency = 'Hourly' AND t.EnvironmentPeriodIndex = "
            "(SELECT MAX(EnvironmentPeriodIndex) FROM Time) ORDER BY d.TimeIndex", (meter,)).fetchall()
    if not rows:
        raise EngineFault(f"{sql}: no hourly {meter} values", [])
    times, previous_month = [], rows[0][0]
    for month, day, hour, _ in rows:
        year += month < previous_month  # a run across New Year
        previous_month = month
        times.append(dt.datetime(year, month, day) + dt.timedelta(hours=hour - 1))
    index = pd.DatetimeIndex(times)
    return pd.Series([value / J_PER_KWH for *_, value in rows], index=index, name=meter)


def simulate_many(runs: Sequence[Run], workers: int = 2) -> list[pd.Series]:
    """``simulate`` of every run, ``workers`` EnergyPlus processes at a time, in the order given."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # each run is its own child process
        return list(pool.map(simulate, runs))
