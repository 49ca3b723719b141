"""A campus on the local executor and on Ray, side by side (issue 15; docs/scale.md).

  throughput   1, 4 and 16 DOE Small Offices in fast mode, local executor and Ray (a local Ray started
               for the run, actors declaring 0.1 CPU so that 16 fit the 2 logical CPUs): building-steps
               per second of the campus clock, and the head's CPU per building-step (time.process_time
               of this process, which runs the clock, the OPC UA server and the historian; the engines
               are child processes or Ray workers). Both count only the stepping (from the first
               step to the end of the run), so engine start-up (sizing) is left out.
  memory       resident memory (VmRSS) of one EnergyPlus process, Small and Large Office, after 10
               steps; and of one Ray actor's worker process (the Python process holding the engine).
  recovery     a Small Office actor killed after N steps: time until the step in flight is answered
               (a new actor, an EnergyPlus start, N replayed steps).

The campus runs in this process with the real TagServer on a loopback port, as ``twinbridge run``
would. 64 buildings are not run on this machine: 64 EnergyPlus processes take ~16 GB of the 23 GB
that several jobs share here, and sizing 64 models on 2 cores takes minutes per executor.

    python bench/bench_scale.py        # ~6 min; writes bench/results/scale.json
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results_io import figure, write_results  # noqa: E402
from bridge.campus import Campus, make_engine  # noqa: E402
from bridge.config import ExecutorConfig, load_config  # noqa: E402
from bridge.generate import TAGMAPS  # noqa: E402
from bridge.server import TagServer  # noqa: E402
from devtools.launcher import free_port  # noqa: E402


def campus_file(folder: Path, count: int, model: str = "small_office", days: int = 3) -> Path:
    entries = "".join(f'[[buildings]]\nname = "B{i + 1}"\nmodel = "ref:{model}"\n'
                      f'tagmap = "{TAGMAPS / model}.toml"\n\n' for i in range(count))
    path = folder / f"campus{count}-{model}.toml"
    path.write_text(f'[campus]\nname = "Scale"\n\n[run]\nstart = "07-01"\nend = "07-{days:02d}"\nclock = "fast"\n'
                    f'run_dir = "{folder / "runs"}"\nhistorian = true\n\n{entries}')
    return path


def with_executor(config, kind: str):
    return dataclasses.replace(config, executor=ExecutorConfig(kind=kind, num_cpus=0.1, memory_mb=0))


async def run_campus(config) -> tuple[float, float, int]:
    """(wall s, head CPU s, building-steps) of the stepping of one fast run."""
    campus = Campus(config)
    server = TagServer(f"opc.tcp://127.0.0.1:{free_port()}", config.name, config.period.time_of(0))
    await server.init()
    try:
        await campus.start()
        await campus.build_address_space(server)
        await server.listen()
        campus.serving.set()  # the engines step once the server listens (as ``twinbridge run`` does)
        while campus.step < 1 and not campus.done.is_set():
            await asyncio.sleep(0.001)
        wall, cpu, first = time.perf_counter(), time.process_time(), campus.step
        await asyncio.wait_for(campus.done.wait(), 1800)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert all(b.status == "Finished" for b in campus.buildings), [b.status for b in campus.buildings]
        return wall, cpu, (campus.step - first) * len(config.buildings)
    finally:
        await campus.stop()
        await server.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for pid {pid}")


async def engine_rss_mb(folder: Path, model: str) -> float:
    config = load_config(campus_file(folder, 1, model, days=1))
    engine = make_engine(config.buildings[0], config, folder / f"rss-{model}")
    try:
        await engine.start()
        for _ in range(10):
            await engine.step(config.buildings[0].tagmap.defaults)
        return rss_mb(engine.pid)
    finally:
        await engine.stop()


async def actor_rss_and_recovery(folder: Path, replayed: list[int]) -> tuple[float, dict[int, float]]:
    """RSS of a Ray actor's worker process (MB) and recovery seconds after each number of steps."""
    import ray

    config = with_executor(load_config(campus_file(folder, 1, days=7)), "ray")
    building, seconds, actor_mb = config.buildings[0], {}, 0.0
    for steps in replayed:
        engine = make_engine(building, config, folder / f"recovery-{steps}")
        try:
            await engine.start()
            for _ in range(steps):
                await engine.step(building.tagmap.defaults)
            pid = int((await engine._actor.where.remote()).split()[-1])
            actor_mb = rss_mb(pid)
            ray.kill(engine._actor)
            began = time.perf_counter()
            await engine.step(building.tagmap.defaults)
            seconds[steps] = time.perf_counter() - began
        finally:
            await engine.stop()
    return actor_mb, seconds


async def measure(counts: list[int], replayed: list[int]) -> dict:
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for count in counts:
            base = load_config(campus_file(folder, count))
            for kind in ("local", "ray"):
                wall, cpu, steps = await run_campus(with_executor(base, kind))
                print(f"{count:3d} x small office, {kind:5s}: {steps / wall:7.0f} building-steps/s, "
                      f"head {cpu / steps * 1e3:.4f} ms CPU per building-step", flush=True)
                figures[f"{kind}_{count}_building_steps_per_s"] = figure(steps / wall, "building-steps/s")
                figures[f"{kind}_{count}_head_cpu_ms_per_building_step"] = figure(
                    cpu / steps * 1e3, "ms", "<= 0.03 (issue 15)")
        for model in ("small_office", "large_office"):
            figures[f"energyplus_rss_{model}_mb"] = figure(await engine_rss_mb(folder, model), "MB")
        actor_mb, seconds = await actor_rss_and_recovery(folder, replayed)
        figures["ray_actor_worker_rss_mb"] = figure(actor_mb, "MB")
        for steps, value in seconds.items():
            figures[f"recovery_after_{steps}_steps_s"] = figure(value, "s")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--replayed", type=int, nargs="+", default=[10, 144, 432, 1000])
    args = parser.parse_args()
    figures = asyncio.run(measure(args.counts, args.replayed))
    write_results("scale", figures, notes=(
        "Small offices, 3 July days in fast mode (432 steps), on a 2-core machine shared with other jobs: "
        "local and Ray executors compete with EnergyPlus for the same 2 cores. Ray: a local single-node Ray "
        "started per run, buildings of 0.1 logical CPU each, all in the one node's actor (one Ray call per "
        "step). 64 buildings not run here (memory ~16 GB of 23 GB shared, sizing time). Recovery: kill of a "
        "Small Office actor after N steps, until the step in flight is answered."))


if __name__ == "__main__":
    main()
