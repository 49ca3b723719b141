"""A building's engine in a Ray actor: ``[campus] executor = "ray"`` (docs/scale.md).

``RayEngine`` is the Engine the campus clock sees in the head process; it forwards each call to a
``BuildingActor`` placed by Ray on any node of the cluster, which builds the real engine (any kind)
with ``make_engine`` and runs it in the actor's own event loop. The OPC UA server, the historian and
the clock stay in the head; lockstep is unchanged (one remote call per building and step).

Recovery: ``RayEngine`` keeps the inputs of every step it was handed. When its actor dies (killed,
out of memory, its node lost) it launches a new one (Ray places it on any live node), replays the
recorded inputs up to the step in flight (EnergyPlus replays bit-identically), checks that the
replayed outputs of the last answered step equal what was answered, and answers the step: the
campus sees one slow step. At most ``max_restarts`` relaunches per run, each within
``replay_timeout_s``; past that, or on any other remote failure, an EngineFault of the building.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import socket
import tempfile
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

from bridge.config import BuildingConfig, CampusConfig, ExecutorConfig
from bridge.engines.base import Engine, EngineFault, Sample
from bridge.security.settings import ServerSecurity

log = logging.getLogger(__name__)

NAMESPACE = "twinbridge"  # Ray namespace of the bridge's actors
CONNECT_TIMEOUT_S = 30.0  # to reach a cluster's address and join it
STOP_TIMEOUT_S = 10.0  # for an actor to stop its engine before it is killed
STEP_MARGIN_S = 30.0  # a remote step may take this much longer than the engine's own step timeout
LOST = (RayActorError, ActorUnavailableError)  # the actor (or its node) is gone: relaunch and replay
_names = itertools.count()
_connection: asyncio.Future | None = None  # the process's ray.init; its result: whether it started a local Ray
_engines: set["RayEngine"] = set()  # launched and not stopped: a local Ray is shut down after the last one


class ExecutorError(EngineFault):
    """The Ray cluster cannot be reached or joined."""


def _probe(address: str, timeout_s: float) -> None:
    """Fail fast (ExecutorError) when nothing listens at a ``host:port`` address."""
    host, _, port = address.rpartition(":")
    if "://" in address or not port.isdigit():
        return  # "auto", "ray://...": left to ray.init
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout_s).close()
    except OSError as exc:
        raise ExecutorError(f"Ray cluster at {address} unreachable: {exc} (is `ray start --head` running there?)") \
            from None


def _join(executor: ExecutorConfig) -> bool:
    """ray.init: join the cluster at ``ray_address``, or start a local Ray when there is none (True)."""
    if ray.is_initialized():
        return False
    if executor.ray_address:
        _probe(executor.ray_address, CONNECT_TIMEOUT_S)
        ray.init(address=executor.ray_address, namespace=NAMESPACE, logging_level=logging.WARNING)
    else:
        ray.init(namespace=NAMESPACE, include_dashboard=False, logging_level=logging.WARNING)
    log.info("Ray: %s, resources %s", executor.ray_address or "local cluster started for this run",
             ray.cluster_resources())
    return not executor.ray_address


async def _release(engine: "RayEngine") -> None:
    """Forget a stopped engine; after the last one, shut down the local Ray this process started (its
    agents would outlive the bridge otherwise)."""
    global _connection
    _engines.discard(engine)
    if _engines or _connection is None or not _connection.done() or _connection.exception() is not None:
        return
    if _connection.result():
        _connection = None
        try:
            await asyncio.wait_for(asyncio.to_thread(ray.shutdown), STOP_TIMEOUT_S)
            log.info("Ray: local cluster shut down")
        except Exception as exc:
            log.warning("Ray: local cluster did not shut down within %.0f s: %s", STOP_TIMEOUT_S, exc)


async def connect(executor: ExecutorConfig) -> None:
    """Join Ray once per process (every building's launch awaits the same attempt); ExecutorError if
    it fails or takes more than CONNECT_TIMEOUT_S."""
    global _connection
    if (_connection is None or _connection.get_loop() is not asyncio.get_running_loop()
            or (_connection.done() and _connection.exception() is not None)):
        _connection = asyncio.ensure_future(asyncio.to_thread(_join, executor))
    try:
        await asyncio.wait_for(asyncio.shield(_connection), CONNECT_TIMEOUT_S)
    except ExecutorError:
        raise
    except asyncio.TimeoutError:
        raise ExecutorError(f"Ray: could not join {executor.ray_address or 'a local cluster'} "
                            f"within {CONNECT_TIMEOUT_S:.0f} s") from None
    except Exception as exc:  # what ray.init says: a version mismatch, a refused address
        raise ExecutorError(f"Ray: could not join {executor.ray_address or 'a local cluster'}: {exc}") from None


def _writable(workdir: Path) -> Path:
    """``workdir`` if this node can create it (a shared or same-named folder), else a temporary one."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        return workdir
    except OSError:
        return Path(tempfile.mkdtemp(prefix=f"twinbridge-{workdir.name}-"))


class BuildingActor:
    """Runs in a Ray worker (``ray.remote`` of it, ``_actor_class``): the building's real engine."""

    def __init__(self, building: BuildingConfig, config: CampusConfig, workdir: Path):
        from bridge.engines.factory import make_engine

        self.engine = make_engine(building, config, _writable(workdir))

    async def start(self) -> Sample:
        return await self.engine.start()

    async def step(self, inputs: Mapping[str, float]) -> Sample | None:
        return await self.engine.step(inputs)

    async def replay(self, steps: list[dict[str, float]]) -> Sample | None:
        """Step through ``steps`` (inputs of steps 1..n); the outputs of the last one."""
        sample = None
        for inputs in steps:
            sample = await self.engine.step(inputs)
            if sample is None:
                break
        return sample

    async def stop(self) -> None:
        await self.engine.stop()

    def where(self) -> str:
        return f"node {ray.get_runtime_context().get_node_id()[:12]} pid {os.getpid()}"


_remote_class = None


def _actor_class():
    global _remote_class
    if _remote_class is None:  # max_concurrency 2: stop may run while a step is in flight
        _remote_class = ray.remote(max_concurrency=2)(BuildingActor)
    return _remote_class


def _fault(building: str, what: str, exc: RayTaskError) -> EngineFault:
    """The engine's own EngineFault (with its details) out of a remote task error; else one naming it."""
    cause = exc.cause
    if isinstance(cause, EngineFault):
        return EngineFault(str(cause.args[0]) if cause.args else building, cause.details)
    return EngineFault(f"{building}: {what} failed in its Ray actor: {type(cause).__name__}: {cause}")


def _lost(building: str, what: str, exc: Exception) -> EngineFault:
    """An EngineFault for an actor that died or could not be created, with the first line of Ray's reason."""
    reason = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return EngineFault(f"{building}: its Ray actor was lost during {what}: {reason}", str(exc).splitlines()[1:12])


def same_sample(a: Sample | None, b: Sample | None) -> bool:
    return a == b or (a is not None and b is not None and a.sim_time_s == b.sim_time_s
                      and dict(a.outputs) == dict(b.outputs))


class RayEngine(Engine):
    """One building whose engine runs in a Ray actor; see the module docstring."""

    def __init__(self, building: BuildingConfig, config: CampusConfig, workdir: Path):
        self.building, self.name, self.workdir = building, building.name, Path(workdir).resolve()
        self.executor = config.executor
        # what the actor needs: no executor (it builds the engine itself), no server secrets
        self.remote_config = dataclasses.replace(config, executor=ExecutorConfig(), security=ServerSecurity(),
                                                 tracking=())
        self.start_timeout_s = config.engine_start_timeout_s
        self.step_timeout_s = config.engine_step_timeout_s + STEP_MARGIN_S
        self.inputs: list[dict[str, float]] = []  # inputs of steps 1, 2, ... as handed to ``step``
        self.answered: Sample | None = None  # outputs of the last step answered (0: the start)
        self.restarts = 0
        self.stopped = False
        self._actor = None
        self._started: asyncio.Future | None = None  # the first actor's start call
        self._launch_error: EngineFault | None = None

    def _new_actor(self):
        """A new actor (placed by Ray, spread over the nodes) whose start call is under way; its
        ObjectRef. Restarts work in a folder of their own."""
        cpus, memory_mb = self.executor.resources(self.building)
        workdir = self.workdir if not self.restarts else self.workdir.with_name(f"{self.name}.restart{self.restarts}")
        self._actor = _actor_class().options(
            name=f"{self.remote_config.name}.{self.name}.{os.getpid()}.{next(_names)}", namespace=NAMESPACE,
            num_cpus=cpus, memory=int(memory_mb * 2**20) or None, scheduling_strategy="SPREAD",
            max_restarts=0, max_task_retries=0,
        ).remote(self.building, self.remote_config, workdir)
        return self._actor.start.remote()

    async def launch(self) -> None:
        if self._started is not None or self._launch_error is not None:
            return
        try:
            await connect(self.executor)
        except ExecutorError as exc:
            self._launch_error = exc
            return
        _engines.add(self)
        self._started = asyncio.ensure_future(self._new_actor())

    async def start(self) -> Sample:
        await self.launch()
        if self._launch_error is not None:
            raise EngineFault(f"{self.name}: {self._launch_error}")
        try:
            async with asyncio.timeout(self.start_timeout_s):
                self.answered = await self._call(self._started, "start")
                log.info("%s: engine started in Ray actor on %s", self.name, await self._actor.where.remote())
        except TimeoutError:
            cpus, memory_mb = self.executor.resources(self.building)
            raise EngineFault(f"{self.name}: its Ray actor did not start within {self.start_timeout_s:.0f} s "
                              f"(needs num_cpus={cpus:g}, memory_mb={memory_mb:g}; cluster has "
                              f"{ray.available_resources()})") from None
        except LOST as exc:
            raise _lost(self.name, "start", exc) from None
        return self.answered

    def step(self, inputs: Mapping[str, float]) -> Awaitable[Sample | None]:
        """Record the inputs and send them to the actor at once; the awaitable answers the step."""
        self.inputs.append(dict(inputs))
        return self._answer(self._actor.step.remote(self.inputs[-1]) if self._actor is not None else None)

    async def _answer(self, ref) -> Sample | None:
        if ref is None:
            raise EngineFault(f"{self.name}: engine is not running")
        try:
            sample = await asyncio.wait_for(self._call(ref, "step"), self.step_timeout_s)
        except asyncio.TimeoutError:
            raise EngineFault(f"{self.name}: its Ray actor did not answer step {len(self.inputs)} "
                              f"within {self.step_timeout_s:.0f} s") from None
        except LOST as exc:
            sample = await self._recover(exc)
        self.answered = sample
        return sample

    async def _call(self, ref, what: str):
        """The result of a remote call; the engine's EngineFault raised as such; a lost actor raised
        as LOST (for the caller to recover from or to fault on)."""
        try:
            return await ref
        except RayTaskError as exc:
            raise _fault(self.name, what, exc) from None

    async def _recover(self, cause: Exception) -> Sample | None:
        """Relaunch and replay until the step in flight is answered, within the documented policy."""
        step = len(self.inputs)
        while True:
            if self.stopped:
                raise EngineFault(f"{self.name}: stopped while its Ray actor was being relaunched")
            if self.restarts >= self.executor.max_restarts:
                raise _lost(self.name, f"step {step}, after {self.restarts} relaunch(es) (max_restarts "
                                       f"{self.executor.max_restarts})", cause)
            self.restarts += 1
            log.warning("%s: Ray actor lost at step %d (%s); relaunching it (restart %d of %d) and replaying "
                        "%d step(s)", self.name, step, type(cause).__name__, self.restarts,
                        self.executor.max_restarts, step - 1)
            began = time.monotonic()
            try:
                async with asyncio.timeout(self.executor.replay_timeout_s):
                    sample = await self._replay()
                    where = await self._actor.where.remote() if self._actor is not None else "(stopped)"
            except LOST as exc:
                cause = exc
                continue
            except TimeoutError:
                raise EngineFault(f"{self.name}: relaunch and replay of {step - 1} step(s) took more than "
                                  f"replay_timeout_s = {self.executor.replay_timeout_s:g} s") from None
            log.warning("%s: replayed %d step(s) in %.2f s on %s; rejoined lockstep at step %d",
                        self.name, step - 1, time.monotonic() - began, where, step)
            return sample

    async def _replay(self) -> Sample | None:
        """A new actor, started and stepped through the recorded inputs; the answer of the step in flight."""
        self._kill()
        started = self._new_actor()
        actor = self._actor  # not self._actor, which ``stop`` clears: calls to a killed actor raise LOST
        first = await self._call(started, "start")
        replayed = await self._call(actor.replay.remote(self.inputs[:-1]), "replay") if len(self.inputs) > 1 \
            else first
        if not same_sample(replayed, self.answered):
            log.error("%s: replayed outputs of step %d differ from those published: %s vs %s", self.name,
                      len(self.inputs) - 1, replayed, self.answered)
        return await self._call(actor.step.remote(self.inputs[-1]), "step")

    def _kill(self) -> None:
        actor, self._actor = self._actor, None
        if actor is not None:
            with contextlib.suppress(Exception):
                ray.kill(actor)

    async def stop(self) -> None:
        """Stop the engine in its actor (up to STOP_TIMEOUT_S), then end the actor; safe at any time."""
        self.stopped = True
        if self._started is not None and not self._started.done():
            self._started.cancel()
        actor = self._actor
        if actor is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(actor.stop.remote(), STOP_TIMEOUT_S)
            self._kill()
        await _release(self)
