"""What the two EnergyPlus engines share: their settings, and what EnergyPlus says when it fails
(the Severe and Fatal lines of its ``eplusout.err``)."""

from __future__ import annotations

from pathlib import Path

from bridge.config import RunPeriod
from bridge.engines.base import Engine
from bridge.tagmap import TagMap


class EnergyPlusEngine(Engine):
    """Base of ExternalInterfaceEngine and EnergyPlusApiEngine: one model with its weather file, tag
    map, run period and work folder, and the timeouts of start-up and of each step."""

    def __init__(self, name: str, model: Path, weather: Path, tagmap: TagMap, period: RunPeriod, workdir: Path,
                 start_timeout_s: float = 300.0, step_timeout_s: float = 60.0):
        self.name = name
        # EnergyPlus runs inside workdir, where paths relative to our current directory break
        self.model, self.weather, self.workdir = (Path(p).resolve() for p in (model, weather, workdir))
        self.tagmap, self.period = tagmap, period
        self.start_timeout_s, self.step_timeout_s = start_timeout_s, step_timeout_s


def severe_lines(err_file: Path, limit: int = 20) -> list[str]:
    """The Severe and Fatal lines (with their continuation lines) of an eplusout.err file."""
    if not err_file.is_file():
        return [f"(no {err_file.name} was written)"]
    found: list[str] = []
    keep = False
    for line in err_file.read_text(errors="replace").splitlines():
        stripped = line.strip()
        if stripped.startswith("**   ~~~"):
            if keep:
                found.append(stripped)
            continue
        keep = stripped.startswith(("** Severe", "**  Fatal"))
        if keep:
            found.append(stripped)
    return found[:limit] or ["(eplusout.err has no Severe or Fatal lines)"]
