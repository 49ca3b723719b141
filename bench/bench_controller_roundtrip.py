"""Round-trip cost per step of a lockstep controller on the DOE Large Office.

Runs the Large Office for a short period (default 3 days, 432 steps) through the real bridge:
in ``fast`` mode (no controller), and in ``lockstep`` mode driven by the schedule controller in
this process (its own OPC UA session, as a third-party controller would be) in each of the
controller's two lockstep styles: ``lockstep`` (poll OutputReady, read outputs, write inputs,
write InputReady: three round trips plus polling) and ``exchange`` (one Control.Exchange call).
The round-trip cost per step is the lockstep time per step minus the fast time per step.
Writes bench/results/controller_roundtrip.json.

    /work/venv/bin/python bench/bench_controller_roundtrip.py [--days 3] [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results_io import write_results  # noqa: E402
from controllers.loop import LoopOptions, LoopReport, run_controller  # noqa: E402
from controllers.schedule import ScheduleController, load_schedule  # noqa: E402
from devtools.launcher import free_port  # noqa: E402

SCHEDULE = REPO / "controllers" / "examples" / "large_office_schedule.toml"
FINISHED = re.compile(r"run finished after (\d+) steps \(([\d.]+) s wall\)")


def short_config(days: int, folder: Path) -> Path:
    """A copy of sims/large_office.toml with a shorter run period; tag map path made absolute."""
    source = REPO / "sims" / "large_office.toml"
    data = tomllib.loads(source.read_text())
    start = dt.date(2025, 7, 1)
    end = start + dt.timedelta(days=days - 1)
    building = data["buildings"][0]
    tagmap = (source.parent / building["tagmap"]).resolve()
    text = (f'[campus]\nname = "{data["campus"]["name"]}"\n[run]\nstart = "{start:%m-%d}"\nend = "{end:%m-%d}"\n'
            f'timesteps_per_hour = {data["run"]["timesteps_per_hour"]}\n[[buildings]]\nname = "{building["name"]}"\n'
            f'model = "{building["model"]}"\nweather = "{building["weather"]}"\ntagmap = "{tagmap}"\n')
    path = folder / "large_office_short.toml"
    path.write_text(text)
    return path


def start_bridge(config: Path, folder: Path, clock: str) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    endpoint = f"opc.tcp://127.0.0.1:{port}"
    log_path = folder / f"bridge-{clock}-{port}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "bridge.cli", "run", str(config), "--endpoint", endpoint,
                                    "--clock", clock, "--lockstep-timeout", "10", "--run-dir", str(folder / "runs")],
                                   stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO)
    return process, endpoint, log_path


def wall_per_step_s(process: subprocess.Popen, log_path: Path) -> tuple[int, float]:
    """(steps, wall seconds of the stepping loop) from the bridge's closing log line."""
    if process.wait(timeout=900) != 0:
        raise RuntimeError(f"bridge failed; see {log_path}:\n{log_path.read_text()[-2000:]}")
    match = FINISHED.search(log_path.read_text())
    if not match:
        raise RuntimeError(f"no 'run finished' line in {log_path}")
    return int(match[1]), float(match[2])


def run_fast(config: Path, folder: Path) -> tuple[int, float]:
    process, _, log_path = start_bridge(config, folder, "fast")
    return wall_per_step_s(process, log_path)


def run_lockstep(config: Path, folder: Path, mode: str) -> tuple[int, float, LoopReport]:
    controller = ScheduleController(load_schedule(SCHEDULE))
    process, endpoint, log_path = start_bridge(config, folder, "lockstep")
    try:
        report = asyncio.run(run_controller(controller, endpoint, "LargeOffice",
                                            options=LoopOptions(mode=mode, step_timeout_s=300)))
        steps, wall_s = wall_per_step_s(process, log_path)
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)
    if "no InputReady" in log_path.read_text():
        raise RuntimeError(f"the controller missed a step; see {log_path}")
    return steps, wall_s, report


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def figure(value: float, unit: str, target: str | None = None) -> dict:
    return {"value": round(value, 4), "unit": unit, "target": target}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-roundtrip-") as tmp:
        folder = Path(tmp)
        config = short_config(args.days, folder)
        fast_ms: list[float] = []
        modes = ("lockstep", "exchange")
        step_ms = {mode: [] for mode in modes}  # mean wall time per step of each run
        periods_ms = {mode: [] for mode in modes}  # the controller's time between two handled steps
        handshake_ms: list[float] = []
        for repeat in range(args.repeats):
            steps, wall_s = run_fast(config, folder)
            fast_ms.append(1000 * wall_s / steps)
            line = f"repeat {repeat + 1}: fast {fast_ms[-1]:.3f} ms/step"
            for mode in modes:
                steps, wall_s, report = run_lockstep(config, folder, mode)
                step_ms[mode].append(1000 * wall_s / steps)
                periods_ms[mode] += [1000 * p for p in report.step_periods_s]
                if mode == "lockstep":
                    handshake_ms += [1000 * h for h in report.handle_times_s]
                line += f", {mode} {step_ms[mode][-1]:.3f} ms/step"
            print(f"{line} ({steps} steps)", flush=True)
    fast_mean = statistics.mean(fast_ms)
    figures = {"fast_step_ms_mean": figure(fast_mean, "ms/step")}
    for mode in modes:
        mean, median = statistics.mean(step_ms[mode]), statistics.median(periods_ms[mode])
        p95 = percentile(periods_ms[mode], 0.95)
        figures |= {
            f"{mode}_step_ms_mean": figure(mean, "ms/step"),
            f"{mode}_step_ms_median": figure(median, "ms/step"),
            f"{mode}_step_ms_p95": figure(p95, "ms/step"),
            f"{mode}_roundtrip_cost_ms_mean": figure(mean - fast_mean, "ms/step", "<= 2.0"),
            f"{mode}_roundtrip_cost_ms_median": figure(median - fast_mean, "ms/step", "<= 2.0"),
            f"{mode}_roundtrip_cost_ms_p95": figure(p95 - fast_mean, "ms/step", "<= 5.0"),
            f"{mode}_to_fast_ratio": figure(mean / fast_mean, "ratio"),
        }
    figures |= {"lockstep_controller_handshake_ms_median": figure(statistics.median(handshake_ms), "ms/step"),
                "lockstep_controller_handshake_ms_p95": figure(percentile(handshake_ms, 0.95), "ms/step")}
    notes = (f"DOE Large Office, {args.days} days from 07-01 at 10-minute steps, {args.repeats} repeats; "
             f"schedule controller in its own process, modes lockstep (poll interval {LoopOptions().poll_s * 1000:g} "
             f"ms) and exchange (Control.Exchange); round-trip cost = time per step minus the fast mean; "
             f"medians/p95 from the controller's step periods; 1-minute load average {load_before:.1f} before, "
             f"{os.getloadavg()[0]:.1f} after (shared machine)")
    write_results("controller_roundtrip", figures, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
