"""Write a benchmark's figures to ``bench/results/<benchmark>.json`` in the project's common format."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """Cores and CPU model of this machine, for comparing results over time."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


def figure(value: float, unit: str, target: str = "") -> dict:
    """One figure of a results file: value (rounded to 4 decimals), unit, target."""
    return {"value": round(float(value), 4), "unit": unit, "target": target}


def write_results(benchmark: str, figures: dict[str, dict], notes: str = "") -> Path:
    """``{"benchmark", "date", "machine", "figures": {name: {"value", "unit", "target"}}, "notes"}``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": benchmark, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(), "figures": figures, "notes": notes}
    path = RESULTS / f"{benchmark}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return path


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (benchmarks run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(figure, path: Path) -> Path:
    """Lay ``figure`` out, write it to ``path`` as a PNG (110 dpi) and free it; return the path."""
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot().close(figure)
    return path
