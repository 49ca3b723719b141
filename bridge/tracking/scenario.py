"""Tracking scenarios as files: edited model copies and the campus files that run them.

Tests and the benchmark run a "twin" bridge on a model and a "live building" bridge on a copy of
it with a fault or an ECM (``bridge.tracking.faults`` edits). ``edited_model`` writes such a copy;
``write_campus`` writes a campus TOML running one or more models with the weather and tag map of
a reference building file, over a chosen period (every path in it is absolute).
Calibration tests and benchmark make a "metered building" from secret edits: ``noisy`` adds
measurement noise to a simulated hourly series, ``monthly_bills`` sums one into calendar-month bills.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.config import BuildingConfig
from bridge.idf import Idf
from bridge.tracking.faults import FaultError, apply_edit
from bridge.tracking.meterdata import Bill


def edited_model(model: Path, edits: Sequence[dict], out: Path) -> Path:
    """Write ``model`` with every edit of ``edits`` (``apply_edit`` dicts) applied to ``out``."""
    idf = Idf.read(model)
    for edit in edits:
        if apply_edit(idf, edit) == 0 and edit.get("edit") != "disable_economizer":
            raise FaultError(f"edit {edit} changed nothing in {model}")
    out.parent.mkdir(parents=True, exist_ok=True)
    idf.write(out)
    return out


def write_campus(path: Path, campus: str, models: Mapping[str, Path], reference: BuildingConfig,
                 start: dt.date, end: dt.date, timesteps_per_hour: int = 6) -> Path:
    """A campus TOML: one building per ``models`` entry (name -> IDF), weather and tag map of ``reference``."""
    if not reference.tagmap.path:
        raise ValueError(f"building {reference.name}: its tag map has no file path to refer to")
    lines = [f'[campus]\nname = "{campus}"\n',
             f'[run]\nstart = "{start:%m-%d}"\nend = "{end:%m-%d}"\nyear = {start.year}\n'
             f"timesteps_per_hour = {timesteps_per_hour}\n"]
    for name, model in models.items():
        lines.append(f'[[buildings]]\nname = "{name}"\nmodel = "{Path(model).resolve()}"\n'
                     f'weather = "{Path(reference.weather).resolve()}"\ntagmap = "{Path(reference.tagmap.path).resolve()}"\n')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def noisy(hourly_kwh: pd.Series, noise_pct: float, seed: int = 0) -> pd.Series:
    """``hourly_kwh`` with independent Gaussian noise of ``noise_pct`` % of each value (meter and model error)."""
    rng = np.random.default_rng(seed)
    return hourly_kwh * (1 + rng.normal(0, noise_pct / 100, len(hourly_kwh)))


def monthly_bills(hourly_kwh: pd.Series) -> list[Bill]:
    """Calendar-month bills (kWh, peak kW as the largest hourly mean power) of whole months of hourly energy."""
    bills = []
    for month_start, values in hourly_kwh.groupby(hourly_kwh.index.to_period("M")):
        first, last = values.index[0].date(), values.index[-1].date()
        bills.append(Bill(first, last, float(values.sum()), float(values.max()), None, len(bills) + 2))
    return bills


def write_bills(bills: Sequence[Bill], path: Path) -> Path:
    """A bills CSV (``meterdata.load_bills`` format) of ``bills``."""
    rows = ["start,end,kWh,peak_kW"] + [f"{b.start},{b.end},{b.kwh:.3f},{b.peak_kw or 0:.3f}" for b in bills]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n")
    return path
