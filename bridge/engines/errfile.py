"""What EnergyPlus says when it fails: the Severe and Fatal lines of its ``eplusout.err``."""

from __future__ import annotations

from pathlib import Path


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
