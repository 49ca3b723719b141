"""The Ray executor (docs/scale.md): buildings in Ray actors on a two-node local cluster, in lockstep,
with the same historian as the local executor; a killed actor relaunched and replayed; clear errors."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from asyncua import Client, ua  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from bridge.engines.factory import make_engine  # noqa: E402
from bridge.config import load_config, reference_model  # noqa: E402
from bridge.engines.base import EngineFault  # noqa: E402
from bridge.historian import buildings_in, load_history  # noqa: E402
from conftest import TAGMAPS, free_port, run_bridge, run_cli, wait_until  # noqa: E402

pytestmark = [pytest.mark.engine, pytest.mark.ray]
BUILDINGS = ("B1", "B2", "B3", "B4")


def campus_file(tmp_path: Path, executor: str = "", clock: str = "fast", speed: float = 60.0,
                model: str = "ref:small_office", name: str = "campus.toml") -> Path:
    """Four small offices, one July day (144 steps); ``executor`` is the extra ``[campus]`` lines."""
    buildings = "".join(f'[[buildings]]\nname = "{b}"\nmodel = "{model}"\ntagmap = "{TAGMAPS}/small_office.toml"\n\n'
                        for b in BUILDINGS)
    path = tmp_path / name
    path.write_text(f'[campus]\nname = "RayCampus"\n{executor}\n\n[run]\nstart = "07-01"\nend = "07-01"\n'
                    f'clock = "{clock}"\nspeed = {speed}\nengine_start_timeout_s = 120\n\n{buildings}')
    return path


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes on this machine (2 logical CPUs each); this process joins as a driver."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes(timeout=60)
    ray.init(address=cluster.address, namespace="twinbridge")
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def ray_executor(cluster: Cluster) -> str:
    return f'executor = "ray"\nray_address = "{cluster.address}"\nnum_cpus = 0.5\nmemory_mb = 200'


def kill(actor) -> None:
    """Kill a node actor and wait (up to 30 s) until its process is gone: a step may still be answered over
    its step channel in the moment between ``ray.kill`` and the process's end."""
    pid = int(ray.get(actor.where.remote(), timeout=30).split("pid ")[1])
    ray.kill(actor)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"actor process {pid} still alive 30 s after ray.kill"
        time.sleep(0.02)


def historians(bridge) -> dict:
    path = bridge.historian()
    return {name: load_history(path, name) for name in buildings_in(path)}


def run_to_end(config: Path, tmp_path: Path) -> tuple[dict, str]:
    with run_bridge(config, tmp_path, keep_serving=False) as bridge:
        assert bridge.wait(timeout_s=180) == 0, bridge.log
        return historians(bridge), bridge.log


@pytest.fixture(scope="module")
def local_history(tmp_path_factory) -> dict:
    tmp_path = tmp_path_factory.mktemp("local")
    return run_to_end(campus_file(tmp_path), tmp_path)[0]


def assert_same(history: dict, expected: dict) -> None:
    assert set(history) == set(expected) == set(BUILDINGS)
    for name, frame in expected.items():
        assert len(frame) == 144
        assert history[name].equals(frame), name


def test_campus_on_two_ray_nodes_records_what_the_local_executor_records(cluster, local_history, tmp_path):
    history, log = run_to_end(campus_file(tmp_path, ray_executor(cluster)), tmp_path)
    assert_same(history, local_history)
    assert log.count("engine started in Ray actor on node") == 4
    nodes = {line.split("on node ")[1].split()[0] for line in log.splitlines() if "started in Ray actor" in line}
    assert len(nodes) == 2, log  # spread over both nodes
    assert log.count("step channel to its Ray actor at") == 2, log  # one per node actor, every step over it


def test_a_killed_actor_is_replayed_and_rejoins_without_a_lost_step(cluster, local_history, tmp_path):
    """The actor of B2's node (B2 and B4) killed at step 40 or later: both replayed from the historian.
    B2's cooling setpoint is written at step 20 or later: the actor steps B2 on it from then on (it is sent
    once, the actor keeps it), and after the relaunch too (its replay and its next steps)."""
    config = campus_file(tmp_path, ray_executor(cluster), clock="paced", speed=600 * 144 / 12)  # about 12 s

    async def kill_mid_run(endpoint: str) -> None:
        async with Client(endpoint, timeout=10) as client:
            idx = await client.get_namespace_index("urn:twinbridge")
            step = client.get_node(ua.NodeId("RayCampus.Control.Step", idx))

            async def past(k: int) -> bool:
                return await step.read_value() >= k

            await wait_until(lambda: past(20), timeout_s=120)
            await client.get_node(ua.NodeId("RayCampus.B2.Inputs.CoolingSetpoint", idx)).write_value(
                ua.DataValue(ua.Variant(26.5, ua.VariantType.Double)))
            await wait_until(lambda: past(40), timeout_s=120)
        (name,) = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if ".B2." in a["name"]]
        kill(ray.get_actor(name, namespace="twinbridge"))

    with run_bridge(config, tmp_path, keep_serving=False) as bridge:
        asyncio.run(kill_mid_run(bridge.endpoint))
        assert bridge.wait(timeout_s=180) == 0, bridge.log
        history, log = historians(bridge), bridge.log
    written = history["B2"]["CoolingSetpoint"] == 26.5
    first = int(history["B2"]["step"][written].iloc[0])
    assert 20 <= first < 40 and written[first - 1:].all(), history["B2"]["CoolingSetpoint"].tolist()
    assert history["B2"][:first - 1].equals(local_history["B2"][:first - 1])
    assert not history["B2"]["HvacPower"].equals(local_history["B2"]["HvacPower"])  # the engine stepped on 26.5
    assert_same({**history, "B2": local_history["B2"]}, local_history)
    assert "B2: Ray actor lost at step" in log and "relaunching it (restart 1 of 3)" in log, log
    assert "B2: replayed" in log and "rejoined lockstep at step" in log, log
    # B2's node-mate (buildings are dealt round-robin over the two nodes) is relaunched and replayed with it
    assert "B4: replayed" in log, log
    # its inputs are read back from the historian, not kept in memory (all but the steps not recorded yet)
    replayed = next(line for line in log.splitlines() if "B2: replayed" in line)
    steps, recorded = (int(word.strip("(")) for word in replayed.split("replayed ")[1].split()[:3:2])
    assert steps >= 39 and steps - 2 <= recorded <= steps, replayed
    assert "differ from those published" not in log
    assert log.count("step channel to its Ray actor at") == 3, log  # the relaunched actor's own channel


def test_an_actor_that_cannot_start_is_a_fault_of_its_building(cluster, tmp_path):
    """A model EnergyPlus refuses, and resource needs no node has: an EngineFault naming the building."""
    bad = tmp_path / "bad.idf"
    bad.write_text(reference_model("small_office").read_text() + "\nNotAnObject,1;\n")
    config = load_config(campus_file(tmp_path, ray_executor(cluster)))
    building = dataclasses.replace(config.buildings[0], model=bad)

    async def start(building, config) -> str:
        engine = make_engine(building, config, tmp_path / building.name)
        began = time.monotonic()
        try:
            with pytest.raises(EngineFault) as fault:
                await engine.start()
        finally:
            await engine.stop()
        return str(fault.value), time.monotonic() - began

    message, _ = asyncio.run(start(building, config))
    assert message.startswith("B1: EnergyPlus") and "Severe" in message, message
    greedy = dataclasses.replace(config.buildings[0], num_cpus=64.0)
    message, waited = asyncio.run(start(greedy, config.with_overrides(engine_start_timeout_s=3.0)))
    assert "B1: its Ray actor did not start within 3 s (needs num_cpus=64" in message
    assert waited < 20


def test_a_building_that_faults_in_a_shared_node_actor_leaves_its_node_mates_running(cluster, tmp_path):
    """Four buildings on two nodes share node actors (two each); B1's model fails: B1 alone is an EngineFault,
    the three others (its node-mate among them) start and step in lockstep."""
    bad = tmp_path / "bad.idf"
    bad.write_text(reference_model("small_office").read_text() + "\nNotAnObject,1;\n")
    config = load_config(campus_file(tmp_path, ray_executor(cluster)))
    buildings = [dataclasses.replace(config.buildings[0], model=bad), *config.buildings[1:]]

    async def run() -> tuple[object, dict[str, list]]:
        engines = [make_engine(b, config, tmp_path / b.name) for b in buildings]
        try:
            started = await asyncio.gather(*(e.start() for e in engines), return_exceptions=True)
            assert any(e.group is engines[0].group for e in engines[1:]), "B1 shares its node actor with none"
            going = engines[1:]
            steps = {e.name: [] for e in going}
            for _ in range(3):
                samples = await asyncio.gather(*(e.step(b.tagmap.defaults) for e, b in zip(going, buildings[1:])))
                for engine, sample in zip(going, samples):
                    steps[engine.name].append(sample.sim_time_s)
            return started, steps
        finally:
            await asyncio.gather(*(e.stop() for e in engines))

    started, steps = asyncio.run(run())
    assert isinstance(started[0], EngineFault) and str(started[0]).startswith("B1: "), started[0]
    assert not any(isinstance(result, BaseException) for result in started[1:]), started[1:]
    assert steps == {name: [600.0, 1200.0, 1800.0] for name in BUILDINGS[1:]}


def test_an_unreachable_ray_address_faults_the_run_in_one_clear_line(tmp_path):
    config = campus_file(tmp_path, f'executor = "ray"\nray_address = "127.0.0.1:{free_port()}"')
    began = time.monotonic()
    result = run_cli("run", str(config), "--endpoint", f"opc.tcp://127.0.0.1:{free_port()}",
                     "--run-dir", str(tmp_path / "runs"), timeout_s=120)
    assert result.returncode == 1, result.stderr
    assert "B1 faulted: B1: Ray cluster at 127.0.0.1:" in result.stderr and "unreachable" in result.stderr
    assert time.monotonic() - began < 90



def test_past_max_restarts_a_lost_actor_faults_its_building(cluster, tmp_path):
    """Policy: one relaunch (max_restarts = 1) answers the step; the next loss is a fault naming it."""
    config = load_config(campus_file(tmp_path, ray_executor(cluster) + "\nmax_restarts = 1"))
    building = config.buildings[0]

    async def run() -> str:
        engine = make_engine(building, config, tmp_path / building.name)
        try:
            await engine.start()
            defaults = building.tagmap.defaults
            outputs = [await engine.step(defaults) for _ in range(3)]
            kill(engine._actor)
            assert (await engine.step(defaults)).sim_time_s == outputs[-1].sim_time_s + 600
            kill(engine._actor)
            with pytest.raises(EngineFault) as fault:
                await engine.step(defaults)
            return str(fault.value)
        finally:
            await engine.stop()

    message = asyncio.run(asyncio.wait_for(run(), 120))
    assert message.startswith("B1: its Ray actor was lost during step 5, after 1 relaunch(es) (max_restarts 1)")


def test_stopping_a_building_during_its_replay_ends_the_replay_and_leaves_no_actor(cluster, tmp_path):
    config = load_config(campus_file(tmp_path, ray_executor(cluster)))
    building = config.buildings[0]

    def actors() -> list[str]:
        return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if ".B1." in a["name"]]

    async def run() -> str:
        engine = make_engine(building, config, tmp_path / building.name)
        await engine.start()
        for _ in range(3):
            await engine.step(building.tagmap.defaults)
        kill(engine._actor)
        step = asyncio.ensure_future(engine.step(building.tagmap.defaults))
        await asyncio.sleep(0.5)  # the relaunched actor is starting
        await engine.stop()
        with pytest.raises(EngineFault) as fault:
            await step
        return str(fault.value)

    before = set(actors())
    message = asyncio.run(asyncio.wait_for(run(), 60))
    assert message.startswith("B1: stopped while its Ray actor was being relaunched"), message
    assert set(actors()) <= before


def test_the_inputs_kept_for_a_replay_are_trimmed_to_those_the_historian_lacks(tmp_path):
    """Every TRIM_EVERY steps a Ray building forgets the inputs of the steps its run's historian holds; the
    historian is read once for all the buildings trimmed together (``trim``, a node's members)."""
    import datetime as dt

    from bridge.engines.ray_actor import RayEngine, trim
    from bridge.historian import Historian

    config = load_config(campus_file(tmp_path))
    buildings, run = config.buildings[:2], tmp_path / "run"
    engines = [RayEngine(b, config, run / b.name) for b in buildings]
    historian = Historian(run / "historian.sqlite", {b.name: b.tagmap for b in buildings})
    for engine, recorded in zip(engines, (5, 3)):
        assert [engine.record({"CoolingSetpoint": 20.0 + step}) for step in range(1, 8)] == [False] * 7
        historian.record([(engine.name, step, step * 600.0, dt.datetime(2025, 7, 1), engine.tail[step])
                          for step in range(1, recorded + 1)])
    trim(engines)
    assert [sorted(engine.tail) for engine in engines] == [[6, 7], [4, 5, 6, 7]]
    assert engines[1].tail[4] == {"CoolingSetpoint": 24.0}
    engine = engines[0]
    assert [engine.record({}) for _ in range(RayEngine.TRIM_EVERY - 7)][-1] is True  # step TRIM_EVERY: trim due
