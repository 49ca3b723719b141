"""A campus on the local executor and on Ray, side by side (issue 15; docs/scale.md).

  throughput   1, 4, 16 and 64 DOE Small Offices in fast mode, local executor and Ray (a local Ray started
               for the run, buildings declaring 0.03 CPU so that 64 fit the 2 logical CPUs): building-steps
               per second of the campus clock, and the head's CPU per building-step (time.process_time
               of the process that runs the clock, the OPC UA server and the historian; the engines
               are child processes or Ray workers). Both count only the stepping (from the first
               step to the last one published), so engine start-up (sizing) and the KPIs computed
               at the end of the run are left out. Each run is a
               process of its own; with ``--before REV`` the same run is also made with the ``bridge``
               package of git revision REV, interleaved, so that both see the same machine load.
  phases       where the head's CPU goes, per building-step (``time.thread_time`` of the event loop's
               thread): the inputs read and handed to the engines (``CampusClock._launch``), the
               outputs published to the tags (``CampusClock._publish``), the historian rows written
               (``RunRecord.write``), the rest of the event loop (answers received, futures, the
               clock's bookkeeping), and the other threads of the process (Ray's).
  memory       resident memory (VmRSS) of one EnergyPlus process, Small and Large Office, after 10
               steps; and of one Ray actor's worker process (the Python process holding the engine).
  recovery     a Small Office actor killed after N steps: time until the step in flight is answered
               (a new actor, an EnergyPlus start, N replayed steps).
  head only    the head's CPU per building-step with engines that answer at once, all in one
               StepGroup (``devtools.instantgroup``: the group path of a Ray node without Ray or
               EnergyPlus), for 16, 64 and 256 buildings, 14 July days: what the head itself costs per building when
               nothing else competes for its core; the same with the answers 20 ms late (``instant_wait``:
               the head idle between steps, as it is while a node's EnergyPlus processes compute); and the
               head CPU of one bare Ray call to an async actor answering 16 or 64 rows of 15 floats (the
               fixed cost per node and step), also answered 5 ms late and through a compiled graph.
  own core     the Ray runs of 16 and more buildings again with the head pinned to the first core and Ray's
               processes (actors, EnergyPlus) to the others (``ray_own_core``), as on a cluster's head node.

The campus runs with the real TagServer on a loopback port, as ``twinbridge run`` would. ``--local-only``
counts (e.g. 32 or 64) run on the local executor only (each EnergyPlus process holds ~250 MB).

    python bench/bench_scale.py                      # ~10 min; writes bench/results/scale.json
    python bench/bench_scale.py --before fba6821     # and the same runs with that revision's bridge
    python bench/bench_scale.py --counts --replayed --head-only 64 256 --no-ray-calls --before REV --repeat 3
                                                     # the head's own cost alone, against REV (scale_head.json)
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# --root DIR (a child run of --before): the bridge package measured is the one in DIR
ROOT = Path(sys.argv[sys.argv.index("--root") + 1]) if "--root" in sys.argv else REPO
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(ROOT))

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


def with_executor(config, kind: str, num_cpus: float = 0.03):
    """``config`` on executor ``kind``; Ray: buildings of ``num_cpus`` logical CPU, so that the node actor of 64
    fits the 2 logical CPUs of a local Ray (a declared resource only: Ray pins no core)."""
    return dataclasses.replace(config, executor=ExecutorConfig(kind=kind, num_cpus=num_cpus, memory_mb=0))


# phase -> (module, class, method) of the head whose thread CPU time is added up
PHASES = {"launch": ("bridge.clock", "CampusClock", "_launch"), "publish": ("bridge.clock", "CampusClock", "_publish"),
          "historian": ("bridge.runrecord", "RunRecord", "write")}


def timed_phases() -> dict[str, float]:
    """Wrap the methods of PHASES so that each adds its thread CPU time (s) to the dict returned, and
    ``CampusClock.run`` so that the stepping's end is noted (as "ended": perf_counter, process_time and
    thread_time): the run's conclusion (KPIs computed in a thread) is no per-step cost."""
    spent = dict.fromkeys(PHASES, 0.0)
    clock = importlib.import_module("bridge.clock").CampusClock
    stepping = clock.run

    async def run(*args, **kwargs):
        try:
            return await stepping(*args, **kwargs)
        finally:
            spent["ended"] = (time.perf_counter(), time.process_time(), time.thread_time())

    clock.run = run
    for phase, (module, cls, name) in PHASES.items():
        owner = getattr(importlib.import_module(module), cls)
        original = getattr(owner, name)
        if asyncio.iscoroutinefunction(original):
            async def timed(*args, _original=original, _phase=phase, **kwargs):
                began = time.thread_time()
                try:
                    return await _original(*args, **kwargs)
                finally:
                    spent[_phase] += time.thread_time() - began
        else:
            def timed(*args, _original=original, _phase=phase, **kwargs):
                began = time.thread_time()
                try:
                    return _original(*args, **kwargs)
                finally:
                    spent[_phase] += time.thread_time() - began
        setattr(owner, name, timed)
    return spent


async def run_campus(config, phases: dict[str, float] | None = None, factory=make_engine) -> tuple[float, float, int]:
    """(wall s, head CPU s, building-steps) of the stepping of one fast run; ``phases`` (``timed_phases``)
    zeroed when the stepping begins, and the event loop thread's CPU added as "thread"."""
    # the KPI code (pandas, ~0.3 s of CPU), which a run imports in a thread while its engines start, imported
    # before: engines that start at once (``instant``) would have that thread's import counted in the stepping
    importlib.import_module("bridge.kpi")
    campus = Campus(config, engine_factory=factory)
    server = TagServer(f"opc.tcp://127.0.0.1:{free_port()}", config.name, config.period.time_of(0))
    await server.init()
    try:
        await campus.start()
        await campus.build_address_space(server)
        gc.freeze()  # as ``twinbridge run`` does (bridge/cli.py): the address space kept out of garbage collections
        await server.listen()
        campus.serving.set()  # the engines step once the server listens (as ``twinbridge run`` does)
        while campus.step < 1 and not campus.done.is_set():
            await asyncio.sleep(0.001)
        wall, cpu, first = time.perf_counter(), time.process_time(), campus.step
        thread = time.thread_time()
        for phase in PHASES if phases is not None else ():
            phases[phase] = 0.0
        await asyncio.wait_for(campus.done.wait(), 1800)
        ended = (phases or {}).pop("ended", (time.perf_counter(), time.process_time(), time.thread_time()))
        wall, cpu = ended[0] - wall, ended[1] - cpu
        if phases is not None:
            phases["thread"] = ended[2] - thread
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
            began = time.perf_counter()
            ray.kill(engine._actor)
            while Path(f"/proc/{pid}").exists():  # gone: else its step channel may answer one more step
                assert time.perf_counter() - began < 30, f"actor process {pid} alive 30 s after ray.kill"
                await asyncio.sleep(0.005)
            await engine.step(building.tagmap.defaults)
            seconds[steps] = time.perf_counter() - began
        finally:
            await engine.stop()
    return actor_mb, seconds


def child_run(count: int, kind: str, days: int) -> dict:
    """One throughput run (this process): wall s, head CPU s, building-steps and the phases' CPU s.
    ``kind`` "instant": engines that answer at once, all ``count`` in one StepGroup (as on one Ray node)."""
    phases = timed_phases()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(campus_file(Path(tmp), count, days=days))
        if kind.startswith("instant"):  # "instant", or "instant_wait": answered INSTANT_WAIT_S later
            from devtools.instantgroup import instant_factory

            factory = instant_factory(count, answer_s=INSTANT_WAIT_S if kind == "instant_wait" else 0.0)
            wall, cpu, steps = asyncio.run(run_campus(config, phases, factory))
        elif kind == "ray_own_core":
            head_on_own_core()
            wall, cpu, steps = asyncio.run(run_campus(with_executor(config, "ray"), phases))
        elif kind == "ray_instant":  # Ray's calls, the node's engines stand-ins answering after RAY_ANSWER_S
            ray_with_instant_engines()
            wall, cpu, steps = asyncio.run(run_campus(with_executor(config, "ray", 0.001), phases))
        else:
            wall, cpu, steps = asyncio.run(run_campus(with_executor(config, kind), phases))
    return {"wall_s": wall, "cpu_s": cpu, "steps": steps, "phases": phases}


def head_on_own_core() -> None:
    """Start a local Ray whose processes (and through them the actors and their EnergyPlus processes) run
    on every core but the first, then pin every thread of this process (the head) to the first: the head
    has a core of its own, as a cluster's head node has, instead of sharing both with the engines."""
    import ray

    from bridge.engines.ray_actor import NAMESPACE

    head, others = 0, sorted(os.sched_getaffinity(0) - {0})
    os.sched_setaffinity(0, others)  # inherited by the processes ray.init starts
    ray.init(namespace=NAMESPACE, include_dashboard=False, logging_level="ERROR")
    for thread in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(thread), {head})


def ray_with_instant_engines() -> None:
    """Start a local Ray whose workers build stand-in engines (devtools.instantgroup.in_ray_workers): a
    node actor of hundreds of buildings, which this machine's memory holds only without EnergyPlus."""
    import ray

    from bridge.engines.ray_actor import NAMESPACE

    ray.init(namespace=NAMESPACE, include_dashboard=False, logging_level="ERROR",
             runtime_env={"worker_process_setup_hook": "devtools.instantgroup.in_ray_workers"})


RAY_CALLS = 300  # calls timed per ``ray_call_cost``
INSTANT_DAYS = 14  # July days of a head-only run (2,016 steps)
INSTANT_WAIT_S = 0.02  # "instant_wait": the answer's delay, about a step of 64 Small Offices on this machine's cores


def ray_call_cost(buildings: int, answer_s: float = 0.0) -> float:
    """Head CPU (ms, ``time.process_time``: the event loop's thread and Ray's) of one call to an async
    actor that answers after ``answer_s`` seconds (0: at once) with ``buildings`` rows of 15 floats, as a
    node actor answers a step."""
    import ray

    @ray.remote(num_cpus=0.1)
    class Answering:
        async def step(self, changed: dict, names: list[str]):
            if answer_s:
                await asyncio.sleep(answer_s)
            return [0.0] * len(names), [[1.0] * 15 for _ in names]

    names = [f"B{i}" for i in range(buildings)]

    async def calls() -> float:
        actor = Answering.remote()
        for _ in range(30):
            await actor.step.remote({}, names)
        began = time.process_time()
        for _ in range(RAY_CALLS):
            await actor.step.remote({}, names)
        return (time.process_time() - began) / RAY_CALLS * 1e3

    ray.init(include_dashboard=False, logging_level="ERROR")
    try:
        return asyncio.run(calls())
    finally:
        ray.shutdown()


def ray_compiled_call_cost(buildings: int, answer_s: float = 0.0) -> float:
    """``ray_call_cost`` through a Ray compiled graph (``experimental_compile``: a shared-memory channel
    instead of a task per call) to a synchronous actor; the asyncio form of a compiled graph
    (``enable_asyncio=True``) hung here (Ray 2.60), so this one is called with ``ray.get``, whose wait
    polls the channel: the head's CPU grows with ``answer_s``."""
    import ray
    from ray.dag import InputNode

    @ray.remote(num_cpus=0.1)
    class Answering:
        def step(self, names: list[str]):
            time.sleep(answer_s)
            return [0.0] * len(names), [[1.0] * 15 for _ in names]

    names = [f"B{i}" for i in range(buildings)]
    ray.init(include_dashboard=False, logging_level="ERROR")
    try:
        actor = Answering.remote()
        with InputNode() as names_in:
            graph = actor.step.bind(names_in).experimental_compile()
        try:
            for _ in range(30):
                ray.get(graph.execute(names), timeout=60)
            began = time.process_time()
            for _ in range(RAY_CALLS):
                ray.get(graph.execute(names), timeout=60)
            return (time.process_time() - began) / RAY_CALLS * 1e3
        finally:
            graph.teardown()
    finally:
        ray.shutdown()


def throughput(count: int, kind: str, days: int, root: Path | None = None) -> dict:
    """``child_run`` in a process of its own, with the bridge package of ``root`` (default: this one)."""
    command = [sys.executable, __file__, "--child", str(count), kind, "--days", str(days)]
    if root is not None:
        command += ["--root", str(root)]
    # Ray's workers import the bridge from the driver's working folder and PYTHONPATH: those of ``root`` too
    tree = root or REPO
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, cwd=tree,
                          env={**os.environ, "PYTHONPATH": str(tree)})
    if done.returncode:
        faults = [line for line in done.stderr.splitlines() if " faulted: " in line][:3]
        raise RuntimeError(f"{count} x {kind} ({root or 'this tree'}) failed:\n" + "\n".join(faults)
                           + f"\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def revision_tree(rev: str, folder: Path) -> Path:
    """The files of git revision ``rev`` of this repository, exported into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def throughput_figures(prefix: str, run: dict) -> dict:
    """Figures of one ``throughput`` run: building-steps/s, head CPU and each phase per building-step."""
    steps, ms = run["steps"], lambda s: s / run["steps"] * 1e3
    phases = run["phases"]
    figures = {f"{prefix}_building_steps_per_s": figure(steps / run["wall_s"], "building-steps/s"),
               f"{prefix}_head_cpu_ms_per_building_step": figure(ms(run["cpu_s"]), "ms", "<= 0.03 (issue 15)")}
    for phase in PHASES:
        figures[f"{prefix}_{phase}_ms_per_building_step"] = figure(ms(phases[phase]), "ms")
    figures[f"{prefix}_event_loop_rest_ms_per_building_step"] = figure(
        ms(phases["thread"] - sum(phases[p] for p in PHASES)), "ms")
    figures[f"{prefix}_other_threads_ms_per_building_step"] = figure(ms(run["cpu_s"] - phases["thread"]), "ms")
    return figures


def median_run(runs: list[dict]) -> dict:
    """Of repeated runs, the one of median head CPU per building-step (the lower middle one of an even number)."""
    return sorted(runs, key=lambda run: run["cpu_s"] / run["steps"])[(len(runs) - 1) // 2]


def measure(counts: list[int], local_only: list[int], replayed: list[int], before: str | None, days: int,
            head_only: list[int], repeat: int = 1, ray_calls: bool = True) -> dict:
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        old = revision_tree(before, folder / "before") if before else None
        for count in counts + local_only:
            for kind in ("local",) if count in local_only else ("local", "ray"):
                for label, root in ([("before", old)] if old else []) + [("", None)]:
                    run = throughput(count, kind, days, root)
                    prefix = f"{kind}_{count}" + (f"_{label}" if label else "")
                    print(f"{count:3d} x small office, {kind:5s} {label or 'now':6s}: "
                          f"{run['steps'] / run['wall_s']:7.0f} building-steps/s, head "
                          f"{run['cpu_s'] / run['steps'] * 1e3:.4f} ms CPU per building-step; phases (ms): "
                          + ", ".join(f"{p} {v / run['steps'] * 1e3:.4f}" for p, v in run["phases"].items()),
                          flush=True)
                    figures.update(throughput_figures(prefix, run))
        from devtools.instantgroup import RAY_ANSWER_S  # this tree's (a child may run an older bridge)

        for kind, label in (("instant", "answering at once"),
                            ("instant_wait", f"answering {INSTANT_WAIT_S * 1e3:.0f} ms later"),
                            ("ray_instant", f"on Ray, answering {RAY_ANSWER_S * 1e3:.0f} ms later")):
            for count in head_only:
                runs = {}
                for _ in range(repeat):  # interleaved with the revision before, if any: the same machine load
                    for name, root in ([("before", old)] if old and kind != "ray_instant" else []) + [("", None)]:
                        run = throughput(count, kind, INSTANT_DAYS, root)
                        runs.setdefault(name, []).append(run)
                        print(f"{count:3d} buildings {label}, one group, {name or 'now':6s}: head "
                              f"{run['cpu_s'] / run['steps'] * 1e3:.4f} ms CPU per building-step", flush=True)
                for name, made in runs.items():
                    figures.update(throughput_figures(f"{kind}_{count}" + (f"_{name}" if name else ""), median_run(made)))
        for count in (c for c in counts if c >= 16):
            run = throughput(count, "ray_own_core", days)
            print(f"{count:3d} x small office, Ray, the head on a core of its own: head "
                  f"{run['cpu_s'] / run['steps'] * 1e3:.4f} ms CPU per building-step", flush=True)
            figures.update(throughput_figures(f"ray_own_core_{count}", run))
        if head_only and ray_calls:
            for buildings in (16, 64):
                figures[f"ray_call_{buildings}_buildings_head_cpu_ms"] = figure(ray_call_cost(buildings), "ms")
            # the 64-row call answered after 5 ms (a node's EnergyPlus step takes milliseconds), and the
            # same calls through a compiled graph
            figures["ray_call_64_buildings_answer_5ms_head_cpu_ms"] = figure(ray_call_cost(64, 0.005), "ms")
            for answer_s, label in ((0.0, ""), (0.005, "_answer_5ms")):
                figures[f"ray_compiled_call_64_buildings{label}_head_cpu_ms"] = figure(
                    ray_compiled_call_cost(64, answer_s), "ms")
        if replayed:
            figures.update(asyncio.run(memory_and_recovery(folder, replayed)))
    return figures


async def memory_and_recovery(folder: Path, replayed: list[int]) -> dict:
    figures = {}
    for model in ("small_office", "large_office"):
        figures[f"energyplus_rss_{model}_mb"] = figure(await engine_rss_mb(folder, model), "MB")
    actor_mb, seconds = await actor_rss_and_recovery(folder, replayed)
    figures["ray_actor_worker_rss_mb"] = figure(actor_mb, "MB")
    for steps, value in seconds.items():
        figures[f"recovery_after_{steps}_steps_s"] = figure(value, "s")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="*", default=[1, 4, 16],
                        help="building counts of the throughput runs (none: head-only runs alone, into scale_head.json)")
    parser.add_argument("--local-only", type=int, nargs="*", default=[], help="counts run on the local executor only")
    parser.add_argument("--replayed", type=int, nargs="*", default=[10, 144, 432, 1000],
                        help="recovery after these numbers of steps (none: no memory or recovery figures)")
    parser.add_argument("--head-only", type=int, nargs="*", default=[16, 64, 256],
                        help="counts run with engines that answer at once (the head's own cost), and Ray's per-call cost")
    parser.add_argument("--before", help="git revision whose bridge package is measured too, run by run")
    parser.add_argument("--repeat", type=int, default=1,
                        help="head-only runs made this many times each (figures: the run of median head CPU)")
    parser.add_argument("--no-ray-calls", action="store_true", help="leave out the cost of bare Ray calls")
    parser.add_argument("--days", type=int, default=3, help="July days simulated per throughput run")
    parser.add_argument("--child", nargs=2, metavar=("COUNT", "KIND"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_run(int(args.child[0]), args.child[1], args.days)))
        return
    load = os.getloadavg()[0]
    figures = measure(args.counts, args.local_only, args.replayed, args.before, args.days, args.head_only,
                      args.repeat, not args.no_ray_calls)
    write_results("scale" if args.counts or args.local_only else "scale_head", figures, notes=(
        f"Load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. "
        f"Small offices, {args.days} July day(s) in fast mode ({args.days * 144} steps), on a 2-core machine "
        "shared with other jobs: local and Ray executors compete with EnergyPlus for the same 2 cores. Ray: a "
        "local single-node Ray started per run, buildings of 0.03 logical CPU each, all in the one node's actor "
        "(one step per node and step, over the actor's step channel). Each throughput run is a process of its own"
        + (f"; '_before' figures: the same runs with the bridge of revision {args.before}, interleaved" if args.before
           else "") + (f"; head-only runs made {args.repeat} times each, figures of the run of median head CPU"
                       if args.repeat > 1 else "") + ". Recovery: from the kill of a Small Office actor after N steps (the step asked once its process is gone) until that step is answered."))


if __name__ == "__main__":
    main()
