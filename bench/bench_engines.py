"""The two EnergyPlus engines side by side on the DOE Large Office, Chicago: in-process API engine
(``engine = "energyplus-api"``) against ExternalInterface (``engine = "energyplus"``).

Measured in one run, alternating, best of ``--repeats``:
  direct   the engine driven by a bare loop (no OPC UA, no historian), tag-map defaults as inputs:
           wall time of ``start()`` (model copy, sizing, warm-up) and ms per ``step()``
  bridge   ``twinbridge run --clock fast`` with the building's engine switched, whole-command wall time

    python bench/bench_engines.py            # July 1-7, 1,008 steps; writes bench/results/engines.json
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results_io import figure, write_results  # noqa: E402
from bridge.engines.factory import make_engine  # noqa: E402
from bridge.config import load_config  # noqa: E402
from devtools.launcher import free_port  # noqa: E402

ENGINES = ("energyplus-api", "energyplus")


def config_file(folder: Path, engine: str, start: str, end: str) -> Path:
    text = (REPO / "sims" / "large_office.toml").read_text()
    text = text.replace('tagmap = "../tagmaps/', f'engine = "{engine}"\ntagmap = "{REPO}/tagmaps/')
    text = text.replace('start = "07-01"', f'start = "{start}"').replace('end = "07-21"', f'end = "{end}"')
    text = text.replace('clock = "paced"', f'clock = "fast"\nrun_dir = "{folder / "runs"}"')
    path = folder / f"{engine}.toml"
    path.write_text(text)
    return path


async def drive(config_path: Path, workdir: Path) -> tuple[float, float, int]:
    """(start-up s, stepping s, steps) of the engine driven directly."""
    config = load_config(config_path)
    building = config.buildings[0]
    engine = make_engine(building, config, workdir)
    inputs = building.tagmap.defaults
    began = time.perf_counter()
    await engine.start()
    started = time.perf_counter()
    steps = 0
    while await engine.step(inputs) is not None:
        steps += 1
    stepped = time.perf_counter()
    await engine.stop()
    return started - began, stepped - started, steps


def bridge_seconds(config_path: Path) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bridge.cli", "run", str(config_path), "--endpoint",
                    f"opc.tcp://127.0.0.1:{free_port()}"], check=True, timeout=900, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", default="07-01")
    parser.add_argument("--end", default="07-07")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    configs = {engine: config_file(folder, engine, args.start, args.end) for engine in ENGINES}
    subprocess.run([sys.executable, "-m", "bridge.cli", "validate", str(configs["energyplus"])], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    start_s = {engine: [] for engine in ENGINES}
    step_ms = {engine: [] for engine in ENGINES}
    bridge_s = {engine: [] for engine in ENGINES}
    for repeat in range(args.repeats):
        for engine in ENGINES:
            startup, stepping, steps = asyncio.run(drive(configs[engine], folder / f"{engine}-{repeat}"))
            start_s[engine].append(startup)
            step_ms[engine].append(1e3 * stepping / steps)
            bridge_s[engine].append(bridge_seconds(configs[engine]))
            print(f"repeat {repeat + 1} {engine}: start {startup:.2f} s, {steps} steps at {step_ms[engine][-1]:.3f} "
                  f"ms, bridge fast {bridge_s[engine][-1]:.2f} s", flush=True)
    best = {name: {engine: min(values[engine]) for engine in ENGINES}
            for name, values in (("start", start_s), ("step", step_ms), ("bridge", bridge_s))}
    figures = {}
    for engine in ENGINES:
        label = "api" if engine == "energyplus-api" else "external_interface"
        figures[f"{label}_direct_start"] = figure(best["start"][engine], "s")
        figures[f"{label}_direct_per_step"] = figure(best["step"][engine], "ms/step")
        figures[f"{label}_bridge_fast_wall"] = figure(best["bridge"][engine], "s")
    figures["api_over_external_interface_per_step"] = figure(
        best["step"]["energyplus-api"] / best["step"]["energyplus"], "ratio of direct ms/step")
    figures["api_over_external_interface_bridge_fast"] = figure(
        best["bridge"]["energyplus-api"] / best["bridge"]["energyplus"], "ratio of whole-command wall")
    steps = load_config(configs["energyplus"]).period.steps
    write_results("engines", figures, notes=f"Large Office Chicago {args.start}..{args.end} ({steps} steps, 10-min), "
                  f"best of {args.repeats}, alternating; direct = engine driven by a bare loop with default inputs")


if __name__ == "__main__":
    main()
