"""Tracking scenarios as files: edited model copies and the campus files that run them.

Tests and the benchmark run a "twin" bridge on a model and a "live building" bridge on a copy of
it with a fault or an ECM (``bridge.tracking.faults`` edits). ``edited_model`` writes such a copy;
``write_campus`` writes a campus TOML running one or more models with the weather and tag map of
a reference building file, over a chosen period (every path in it is absolute).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

from bridge.config import BuildingConfig
from bridge.idf import Idf
from bridge.tracking.faults import FaultError, apply_edit


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
