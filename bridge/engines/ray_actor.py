"""Buildings' engines in Ray actors: ``[campus] executor = "ray"`` (docs/scale.md).

The buildings of a campus run are dealt over the cluster's nodes; the buildings of one node run in one
``NodeActor`` there, which builds each real engine (any kind) with ``engine_of_kind`` and steps them all
in its own event loop. In the head, a ``RayNodeGroup`` stands for each node actor, and each building
has a ``RayEngine``, the Engine the campus clock sees. The group is a ``StepGroup`` (bridge/stepgroup.py):
the clock hands it the inputs of all its running members at once, and it asks one step per node and
step, over the node actor's step channel (bridge/engines/ray_channel.py; a Ray call when the channel cannot
be opened), carrying only the inputs that changed (the actor keeps each building's last inputs); the
answer, one message, holds every member's simulation time and outputs as floats in tag-map order (or
its own EngineFault), which become the members' ``Row``s. (A ``RayEngine.step`` alone joins a batch of
its group's step.) The OPC UA server, the historian and the clock stay in the head; lockstep is unchanged.

Recovery: when a node actor dies (killed, out of memory, its node lost) its group launches a new one
(on the same node if it lives, else anywhere), starts each of its buildings there and replays the
inputs of the steps each one answered, read from the run's historian (the few steps not recorded yet
from memory: each ``RayEngine`` keeps only those), checks that the replayed outputs of the last
answered step equal what was answered, and answers the step in flight: the campus sees one slow step.
At most ``max_restarts`` relaunches per node actor and run, each within ``replay_timeout_s``; past
that, or on any other remote failure, an EngineFault of each building concerned.
"""

from __future__ import annotations

import array
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
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from bridge.config import BuildingConfig, CampusConfig, ExecutorConfig
from bridge.engines import kinds, ray_channel
from bridge.engines.base import Engine, EngineFault, Sample
from bridge.historian import HistorianError, last_steps, recorded_inputs
from bridge.security.settings import ServerSecurity
from bridge.stepgroup import Block, GroupedEngine, Outcome, RowLayout, StepGroup, group_answer, one_block, sample_of

log = logging.getLogger(__name__)

NAMESPACE = "twinbridge"  # Ray namespace of the bridge's actors
CONNECT_TIMEOUT_S = 30.0  # to reach a cluster's address and join it
STOP_TIMEOUT_S = 10.0  # for an actor to stop its engine before it is killed
STEP_MARGIN_S = 30.0  # a remote step may take this much longer than the engine's own step timeout
# the actor (or its node, or its step channel) is gone: relaunch and replay
LOST = (RayActorError, ActorUnavailableError, ray_channel.ChannelLost)
_names = itertools.count()
# a node actor's answer to a step: when every building gave outputs of one simulation time, (that time, their
# floats in building and tag-map order packed as doubles: ``_packed``); else each building's simulation time and
# its outputs (floats in tag-map order; a Sample when a tag was left out), None (its run is over) or its
# EngineFault, in the order asked
Answer = tuple[float, bytes] | tuple[list[float], list[list[float] | Sample | None | EngineFault]]
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


class NodeActor:
    """Runs in a Ray worker (``ray.remote`` of it, ``_actor_class``), one per node and campus run: the
    real engines of the buildings placed on that node, stepped together by one call per step."""

    def __init__(self, config: CampusConfig):
        self.config = config
        self.engines: dict[str, Engine] = {}
        self.tags: dict[str, list[str]] = {}  # building -> its output tags, in the order its rows hold them
        self.inputs: dict[str, Mapping[str, float]] = {}  # building -> the inputs of its last step
        self.names: list[str] = []  # the buildings of the last step call
        self.channel: asyncio.AbstractServer | None = None  # listening for the head's step channel

    async def start(self, building: BuildingConfig, workdir: Path, tags: list[str]) -> Sample:
        self.tags[building.name] = tags
        self.inputs.pop(building.name, None)
        engine = self.engines[building.name] = kinds.engine_of_kind(building, self.config, _writable(workdir))
        return await engine.start()

    async def step(self, changed: dict[str, Mapping[str, float]], names: list[str] | None) -> Answer:
        """One step of the buildings ``names`` (None: those of the call before), computed together, each
        with its inputs in ``changed`` or, when it is not there, those of its step before. Their outputs
        packed (``_packed``) when all gave floats of one simulation time, else each building's simulation
        time and outputs (``_portable``), in order."""
        if names is not None:
            self.names = names
        names = self.names
        self.inputs.update(changed)
        results = await asyncio.gather(*(self.engines[name].step(self.inputs[name]) for name in names),
                                       return_exceptions=True)
        times, rows = [], []
        for name, result in zip(names, results):
            time_s, row = _portable(name, result, self.tags[name])
            times.append(time_s)
            rows.append(row)
        return _packed(times, rows)

    async def open_channel(self, token: bytes) -> tuple[str, int]:
        """Listen for the head's step channel (bridge/engines/ray_channel.py) on this node's Ray address, for
        a connection presenting ``token`` (a listener opened before is closed); the address."""
        if self.channel is not None:
            self.channel.close()
        self.channel, address = await ray_channel.serve(self.step, token, ray.util.get_node_ip_address())
        return address

    async def replay(self, name: str, steps: list[dict[str, float]]) -> Sample | None:
        """Step building ``name`` through ``steps`` (inputs of steps 1..n); the outputs of the last one."""
        sample = None
        for inputs in steps:
            sample = await self.engines[name].step(inputs)
            if sample is None:
                break
        return sample

    async def stop(self, name: str) -> None:
        engine = self.engines.pop(name, None)
        if engine is not None:
            await engine.stop()

    async def where(self) -> str:
        return f"node {ray.get_runtime_context().get_node_id()[:12]} pid {os.getpid()}"


def _packed(times: list[float], rows: list) -> Answer:
    """A step's answer as it crosses the network: when every row is a list of floats of one simulation time,
    (that time, the rows' floats one after the other as native doubles), one buffer instead of a list per
    building; else ``(times, rows)`` as they are."""
    if times and one_block(times, rows):
        return times[0], array.array("d", itertools.chain.from_iterable(rows)).tobytes()
    return times, rows


def _unpacked(sim_time_s: float, packed: bytes, layouts: list[RowLayout]) -> Block:
    """The ``Block`` of a ``_packed`` answer: each member's row cut from the doubles by its layout's length."""
    values = array.array("d")
    values.frombytes(packed)
    values, rows, first = values.tolist(), [], 0
    for layout in layouts:
        rows.append(values[first:first + len(layout.tags)])
        first += len(layout.tags)
    if first != len(values):
        raise ValueError(f"a node's answer holds {len(values)} values for {first} output tags")
    return Block(sim_time_s, layouts, rows)


def _portable(name: str, result: object, tags: list[str]) -> tuple[float, list[float] | Sample | None | EngineFault]:
    """What the head receives of one building's step: its simulation time and outputs as plain floats in
    the order of ``tags`` (a Sample when a tag is left out), None, or an EngineFault naming it (any other
    exception is an engine breaking its contract); a cancellation is raised."""
    if isinstance(result, Sample):
        outputs = result.outputs
        try:
            return float(result.sim_time_s), [float(outputs[tag]) for tag in tags]
        except KeyError:
            return float(result.sim_time_s), Sample(float(result.sim_time_s),
                                                    {tag: float(value) for tag, value in outputs.items()})
    if result is None or isinstance(result, EngineFault):
        return 0.0, result
    if isinstance(result, Exception):
        return 0.0, EngineFault(f"{name}: unexpected {type(result).__name__} from its engine: {result}")
    raise result


_remote_class = None


def _actor_class():
    global _remote_class
    if _remote_class is None:  # an async actor: starts, steps and stops of its buildings run concurrently
        _remote_class = ray.remote(NodeActor)
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


def trim(engines: list[RayEngine]) -> None:
    """Forget the inputs each of ``engines`` keeps of the steps the historian holds (memory stays flat on
    long runs): the engines of a run share its historian, read once for them all."""
    historian, recorded = engines[0].historian, {}
    if historian is not None and historian.is_file():
        with contextlib.suppress(HistorianError):
            recorded = last_steps(historian, [engine.name for engine in engines])
    for engine in engines:
        last = recorded.get(engine.name, 0)
        for step in [s for s in engine.tail if s <= last]:
            del engine.tail[step]


def _by_name(names: list[str], answer: Block | dict[str, Outcome]) -> dict[str, Outcome]:
    """Each of ``names``' outcome by name, out of a Block of them (in order) or as it is."""
    return dict(zip(names, answer.outcomes())) if type(answer) is Block else answer


def same_sample(a: Sample | None, b: Sample | None) -> bool:
    return a == b or (a is not None and b is not None and a.sim_time_s == b.sim_time_s
                      and dict(a.outputs) == dict(b.outputs))


async def _call(name: str, ref, what: str):
    """The result of a remote call; the engine's EngineFault raised as such; a lost actor raised as
    LOST (for the caller to recover from or to fault on)."""
    try:
        return await ref
    except RayTaskError as exc:
        raise _fault(name, what, exc) from None


_groups: dict[tuple[Path, str], "RayNodeGroup"] = {}  # (run folder, node id) -> the group of that node's buildings
_nodes: dict[Path, list[str]] = {}  # run folder -> the ids of the nodes alive when its first building launched


def _group_for(engine: "RayEngine") -> "RayNodeGroup":
    """The group of ``engine``'s node: the buildings of a campus run are dealt round-robin (in campus
    order) over the nodes alive when the first of them launched; one group, one actor per node."""
    run = engine.workdir.parent
    nodes = _nodes.get(run)
    if nodes is None:
        nodes = _nodes[run] = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"]) or [""]
    buildings = {b.name: b for b in engine.config.buildings}
    buildings[engine.name] = engine.building
    order = list(buildings)
    node = nodes[order.index(engine.name) % len(nodes)]
    group = _groups.get((run, node))
    if group is None:
        placed = [b for i, b in enumerate(buildings.values()) if nodes[i % len(nodes)] == node]
        group = _groups[(run, node)] = RayNodeGroup(engine.remote_config, engine.executor, run, node, placed)
    return group


class RayNodeGroup(StepGroup):
    """In the head: the buildings placed on one node, whose engines run in one ``NodeActor`` there.
    Each building's ``RayEngine.step`` joins the group's batch of the step; the batch goes out as one
    Ray call when every running member has joined (or at the next turn of the event loop), and its
    answer, every member's outputs in one message, resolves each member's step. A lost actor is
    relaunched and each member replayed (``_recover``); each member's fault stays its own."""

    def __init__(self, config: CampusConfig, executor: ExecutorConfig, run: Path, node: str,
                 placed: list[BuildingConfig]):
        self.config, self.executor, self.run, self.node = config, executor, run, node
        self.placed = [b.name for b in placed]
        self.cpus = sum(executor.resources(b)[0] for b in placed)
        self.memory_mb = sum(executor.resources(b)[1] for b in placed)
        self.members: dict[str, RayEngine] = {}
        self.actor = None
        self.restarts = 0
        self.step_timeout_s = config.engine_step_timeout_s + STEP_MARGIN_S
        self._batch: dict[str, tuple[Mapping[str, float], asyncio.Future]] = {}
        self._expected = 0  # running members when the batch being joined began
        self._flush: asyncio.Handle | None = None
        self._calls: set[asyncio.Task] = set()
        self._names: list[str] | None = None  # the buildings of the last step call the actor received
        self._channel: ray_channel.StepChannel | None = None  # to the actor's steps; None: not open (yet)
        self._channel_refused = False  # the actor's channel could not be opened: its steps go as Ray calls
        self._opening: asyncio.Future | None = None  # the channel being opened (``_open_channel``)
        self.replayed: dict[str, tuple[int, int]] = {}  # of the last relaunch: member -> (steps, from the historian)

    def _new_actor(self) -> None:
        """A new actor for the members, pinned to the group's node while it lives (else anywhere)."""
        self._names, self._channel_refused = None, False
        self.actor = _actor_class().options(
            name=f"{self.config.name}.{'.'.join(self.placed)}.{os.getpid()}.{next(_names)}", namespace=NAMESPACE,
            num_cpus=self.cpus, memory=int(self.memory_mb * 2**20) or None, max_restarts=0, max_task_retries=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(self.node, soft=True) if self.node else "SPREAD",
        ).remote(self.config)

    def start(self, engine: "RayEngine", workdir: Path):
        """Start ``engine``'s building in the group's actor (created by the first member); its ObjectRef."""
        self.members[engine.name] = engine
        if self.actor is None:
            self._new_actor()
        return self.actor.start.remote(engine.building, workdir, engine.layout.tags)

    def _waiting_for(self) -> int:
        return sum(1 for m in self.members.values() if m.running)

    def submit(self, engine: "RayEngine", inputs: Mapping[str, float]) -> asyncio.Future:
        """Join ``engine``'s step to the batch; a future of its outputs. The batch goes out once every
        running member joined, or at the next turn of the event loop."""
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        if not self._batch:  # the first of the step: how many will join (counted once per step, not per member)
            self._expected = self._waiting_for()
        self._batch[engine.name] = (inputs, answer)
        if len(self._batch) >= self._expected:
            self._send()
        elif self._flush is None:
            self._flush = loop.call_soon(self._send)
        return answer

    def _send(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        batch, self._batch = self._batch, {}
        if batch:
            self._track(self._dispatch({name: inputs for name, (inputs, _) in batch.items()},
                                       {name: answer for name, (_, answer) in batch.items()}))

    def step_members(self, engines: list["RayEngine"], inputs: list[Mapping[str, float]]) -> asyncio.Future:
        """``StepGroup.step_members``: the step asked of the actor now, one future of every member's outcome."""
        batch, due = {}, []
        for engine, values in zip(engines, inputs):
            if engine.record(values):
                due.append(engine)
            if not engine.stopped:
                batch[engine.name] = values
        if due:
            trim(due)
        answer = self._track(self._dispatch(batch))
        return answer if len(batch) == len(engines) else asyncio.ensure_future(self._with_stopped(engines, batch, answer))

    @staticmethod
    async def _with_stopped(engines: list["RayEngine"], batch: dict, answer: Awaitable[list[Outcome]]) -> list[Outcome]:
        """The outcomes of ``engines``: those of the batch, an EngineFault for each stopped one left out."""
        outcomes = await answer
        outcomes = iter(outcomes.outcomes() if type(outcomes) is Block else outcomes)
        return [next(outcomes) if engine.name in batch else EngineFault(f"{engine.name}: engine is not running")
                for engine in engines]

    def _track(self, task: asyncio.Task) -> asyncio.Task:
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        return task

    def _dispatch(self, batch: dict[str, Mapping[str, float]],
                  answers: dict[str, asyncio.Future] | None = None) -> asyncio.Task:
        """Send the batch's step to the actor now (the inputs of the members whose inputs are not the very
        mapping sent before); a task answering it (``_answer``)."""
        try:
            if self.actor is None:
                raise EngineFault("engine is not running")
            changed = {}
            for name, inputs in batch.items():
                member = self.members[name]
                if inputs is not member.sent:
                    changed[name] = member.sent = inputs
            call = self._step(self.actor, changed, self._names_sent(list(batch)))
        except Exception as exc:
            call = exc
        return asyncio.ensure_future(self._answer(batch, call, answers))

    async def _answer(self, batch: dict[str, Mapping[str, float]], call: Awaitable[Answer] | Exception,
                      answers: dict[str, asyncio.Future] | None) -> Block | list[Outcome] | None:
        """The outcome of each member of the batch (a lost actor relaunched and replayed, ``_recover``),
        in order, or a ``Block`` of them all; each member's future in ``answers`` resolved with its own."""
        try:
            if isinstance(call, Exception):
                raise call
            async with asyncio.timeout(self.step_timeout_s):
                answer = self._outcomes(list(batch), await call)
        except TimeoutError:
            answer = {name: EngineFault(f"{name}: its Ray actor did not answer step {self.members[name].steps} "
                                        f"within {self.step_timeout_s:.0f} s") for name in batch}
        except LOST as exc:
            answer = await self._recover(exc, batch)
        except Exception as exc:
            answer = {name: EngineFault(f"{name}: {exc}") for name in batch}
        except asyncio.CancelledError:
            for future in (answers or {}).values():
                future.cancel()
            raise
        if type(answer) is Block and answers is None:  # the clock's step: each member's outputs kept in the Block
            for index, name in enumerate(batch):
                self.members[name].answered = (answer, index)
            return answer
        results = _by_name(list(batch), answer)
        outcomes = []
        for name in batch:
            result = results[name]
            member = self.members[name]
            if isinstance(result, BaseException):
                member.sent = None  # the actor may not hold its inputs: sent again next step
            else:
                member.answered = result
            outcomes.append(result)
            answer = answers.get(name) if answers is not None else None
            if answer is not None and not answer.done():
                if isinstance(result, BaseException):
                    answer.set_exception(result)
                else:
                    answer.set_result(result)
        return outcomes if answers is None else None

    def _names_sent(self, names: list[str]) -> list[str] | None:
        """What a step call for ``names`` carries of them: None when they are those of the call before (the
        actor takes its steps in the order they are asked)."""
        sent = None if names == self._names else names
        self._names = names
        return sent

    async def _step(self, actor, changed: dict[str, Mapping[str, float]], names: list[str] | None) -> Answer:
        """``actor``'s answer to one step, over its step channel (bridge/engines/ray_channel.py, opened at its
        first step), or as a Ray call when the channel cannot be opened (logged once per actor). A step that
        fails or is cancelled, perhaps before it was sent, leaves the actor's names unknown: the next carries them."""
        try:
            return await self._asked(actor, changed, names)
        except BaseException:
            self._names = None
            raise

    async def _asked(self, actor, changed: dict[str, Mapping[str, float]], names: list[str] | None) -> Answer:
        if self._channel is not None and self._channel.closed:
            self._channel = None  # a step timed out or was cancelled mid-way: a new channel for the next one
        while self._channel is None and not self._channel_refused and actor is self.actor:
            if self._opening is None:  # one opening for the steps asked meanwhile, which then go in their order
                self._opening = asyncio.ensure_future(self._open_channel(actor))
            await asyncio.shield(self._opening)  # (again when it was a replaced actor's)
        if self._channel is not None and actor is self.actor:
            try:
                return await self._channel.step(changed, names)
            except ray_channel.ChannelLost:
                raise
            except EngineFault as exc:
                raise EngineFault(f"{self.config.name}: {exc}") from None
        return await _call(self.config.name, actor.step.remote(changed, names), "step")

    async def _open_channel(self, actor) -> None:
        """Open ``actor``'s step channel as ``_channel`` (closed instead when the actor was replaced meanwhile), or
        mark it refused when it cannot be opened."""
        try:
            channel = await ray_channel.StepChannel.open(actor)
        except (OSError, TimeoutError, RayTaskError) as exc:  # unreachable, or TLS settings the actor refused
            if actor is self.actor:
                self._channel_refused = True
                log.warning("%s: no step channel to its Ray actor (%s: %s); its steps go as Ray calls",
                            self.config.name, type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
            return
        finally:
            self._opening = None
        if actor is self.actor:
            self._channel = channel
            log.info("%s: step channel to its Ray actor at %s", self.config.name, channel.address)
        else:
            channel.close()

    def _outcomes(self, names: list[str], answer: Answer) -> Block | dict[str, Outcome]:
        """The actor's answer for ``names``: a ``Block`` when each gave outputs of one simulation time
        (``group_answer``), else each one's outcome by name (its outputs as a Sample of a ``Row``)."""
        times, rows = answer
        layouts = [self.members[name].layout for name in names]
        if type(rows) is bytes:
            return _unpacked(times, rows, layouts)
        outcomes = group_answer(layouts, times, rows)
        return outcomes if type(outcomes) is Block else dict(zip(names, outcomes))

    async def _recover(self, cause: Exception, batch: dict) -> dict[str, Sample | None | EngineFault]:
        """Relaunch and replay every member until the batch in flight is answered, within the policy."""
        while True:
            if all(self.members[name].stopped for name in batch):
                return {name: EngineFault(f"{name}: stopped while its Ray actor was being relaunched")
                        for name in batch}
            if self.restarts >= self.executor.max_restarts:
                return {name: _lost(name, f"step {self.members[name].steps}, after {self.restarts} relaunch(es) "
                                          f"(max_restarts {self.executor.max_restarts})", cause) for name in batch}
            self.restarts += 1
            for member in self.members.values():
                if member.running:
                    log.warning("%s: Ray actor lost at step %d (%s); relaunching it (restart %d of %d) and "
                                "replaying %d step(s)", member.name, member.steps, type(cause).__name__,
                                self.restarts, self.executor.max_restarts, member.steps - (member.name in batch))
            began = time.monotonic()
            try:
                async with asyncio.timeout(self.executor.replay_timeout_s):
                    results = await self._replay(batch)
                    where = await self.actor.where.remote() if self.actor is not None else "(stopped)"
            except LOST as exc:
                cause = exc
                continue
            except TimeoutError:
                return {name: EngineFault(f"{name}: relaunch and replay of {self.members[name].steps - 1} step(s) "
                                          f"took more than replay_timeout_s = {self.executor.replay_timeout_s:g} s")
                        for name in batch}
            for name, (steps, recorded) in self.replayed.items():
                log.warning("%s: replayed %d step(s) (%d read from the historian) in %.2f s on %s; rejoined "
                            "lockstep at step %d", name, steps, recorded, time.monotonic() - began, where,
                            self.members[name].steps)
            return results

    async def _replay(self, batch: dict) -> dict[str, Sample | None | EngineFault]:
        """A new actor; each running member started in it and stepped through its inputs up to the step
        in flight (from the historian, the rest from memory); then the batch in flight."""
        self._kill()
        self._new_actor()
        actor = self.actor  # not self.actor, which ``stop`` clears: calls to a killed actor raise LOST
        members = [m for m in self.members.values() if m.running]
        faults: dict[str, EngineFault] = {}
        self.replayed = {}

        async def relaunch(member: RayEngine) -> None:
            last = member.steps - (member.name in batch)  # the steps it answered
            try:
                first = await _call(member.name, actor.start.remote(member.building, member.restart_folder(self.restarts),
                                                                     member.layout.tags), "start")
                steps, recorded = await asyncio.to_thread(member.inputs_until, last)
                self.replayed[member.name] = (len(steps), recorded)
                replayed = await _call(member.name, actor.replay.remote(member.name, steps), "replay") if steps \
                    else first
            except EngineFault as exc:
                faults[member.name] = exc
                return
            answered = sample_of(member.answered)
            if not same_sample(replayed, answered):
                log.error("%s: replayed outputs of step %d differ from those published: %s vs %s", member.name,
                          last, replayed, answered)

        await asyncio.gather(*(relaunch(m) for m in members))
        going = {name: inputs for name, inputs in batch.items() if name not in faults and not self.members[name].stopped}
        for member in self.members.values():
            member.sent = None  # the new actor holds no inputs: each member's are sent with its next step
        results = _by_name(list(going), self._outcomes(list(going), await self._step(
            actor, going, self._names_sent(list(going))))) if going else {}
        return {**results, **faults, **{name: EngineFault(f"{name}: stopped while its Ray actor was being relaunched")
                                         for name in batch if name not in results and name not in faults}}

    def _kill(self) -> None:
        actor, self.actor = self.actor, None
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if actor is not None:
            with contextlib.suppress(Exception):
                ray.kill(actor)

    async def leave(self, engine: "RayEngine") -> None:
        """``engine`` stops: its engine in the actor stopped (up to STOP_TIMEOUT_S); the actor ended with
        the last member."""
        actor = self.actor
        if actor is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(actor.stop.remote(engine.name), STOP_TIMEOUT_S)
        if not any(m.running for m in self.members.values()):
            self._kill()
            if _groups.get((self.run, self.node)) is self:
                del _groups[(self.run, self.node)]
            if not any(run == self.run for run, _ in _groups):
                _nodes.pop(self.run, None)


class RayEngine(GroupedEngine):
    """One building whose engine runs in its node's Ray actor (``RayNodeGroup``); see the module docstring."""

    TRIM_EVERY = 256  # steps between two trims of the in-memory inputs to the steps the historian lacks

    def __init__(self, building: BuildingConfig, config: CampusConfig, workdir: Path):
        self.building, self.name, self.workdir = building, building.name, Path(workdir).resolve()
        self.config, self.executor = config, config.executor
        # what the actor needs: no executor (it builds the engines itself), no server secrets
        self.remote_config = dataclasses.replace(config, executor=ExecutorConfig(), security=ServerSecurity(),
                                                 tracking=())
        self.start_timeout_s = config.engine_start_timeout_s
        self.historian = self.workdir.parent / "historian.sqlite" if config.historian else None
        self.input_tags = [i.tag for i in building.tagmap.inputs]
        self.steps = 0  # steps handed to ``step`` (the last one may be in flight)
        self.tail: dict[int, Mapping[str, float]] = {}  # inputs of the steps the historian may not hold yet
        self.sent: Mapping[str, float] | None = None  # the inputs its actor holds (those last sent to it)
        self.layout: RowLayout | None = None  # its output tags, in the order the actor sends them (``launch``)
        # outputs of the last step answered (0: the start), or (its group's Block, its index) (``sample_of``)
        self.answered: Sample | tuple[Block, int] | None = None
        self.stopped = False
        self.group: RayNodeGroup | None = None
        self._started: asyncio.Future | None = None  # the start call
        self._launch_error: EngineFault | None = None

    @property
    def running(self) -> bool:
        """Started (or starting), not stopped, and its run not over."""
        return not self.stopped and not (self.steps and self.answered is None)

    @property
    def _actor(self):
        return self.group.actor if self.group is not None else None

    def restart_folder(self, restart: int) -> Path:
        return self.workdir.with_name(f"{self.name}.restart{restart}")

    async def launch(self) -> None:
        if self._started is not None or self._launch_error is not None:
            return
        try:
            await connect(self.executor)
        except ExecutorError as exc:
            self._launch_error = exc
            return
        self.layout = RowLayout([o.tag for o in kinds.served_tagmap(self.building, self.config).outputs])
        _engines.add(self)
        self.group = _group_for(self)
        self._started = asyncio.ensure_future(_call(self.name, self.group.start(self, self.workdir), "start"))

    async def start(self) -> Sample:
        await self.launch()
        if self._launch_error is not None:
            raise EngineFault(f"{self.name}: {self._launch_error}")
        try:
            async with asyncio.timeout(self.start_timeout_s):
                self.answered = await self._started
                log.info("%s: engine started in Ray actor on %s", self.name, await self._actor.where.remote())
        except TimeoutError:
            cpus, memory_mb = self.group.cpus, self.group.memory_mb
            raise EngineFault(f"{self.name}: its Ray actor did not start within {self.start_timeout_s:.0f} s "
                              f"(needs num_cpus={cpus:g}, memory_mb={memory_mb:g}; cluster has "
                              f"{ray.available_resources()})") from None
        except LOST as exc:
            raise _lost(self.name, "start", exc) from None
        return self.answered

    def step(self, inputs: Mapping[str, float]) -> Awaitable[Sample | None]:
        """Record the inputs and join the group's batch of this step; the awaitable answers the step.
        (The campus clock steps the group's members together instead: ``RayNodeGroup.step_members``.)"""
        inputs = dict(inputs)
        if self.record(inputs):
            trim([self])
        if self.group is None or self.stopped:
            answer = asyncio.get_running_loop().create_future()
            answer.set_exception(EngineFault(f"{self.name}: engine is not running"))
            return answer
        return self.group.submit(self, inputs)

    def record(self, inputs: Mapping[str, float]) -> bool:
        """A step begins with ``inputs`` (kept, unchanged, for a replay); True every TRIM_EVERY steps, when
        the inputs kept are to be trimmed (``trim``)."""
        self.steps += 1
        self.tail[self.steps] = inputs
        return self.steps % self.TRIM_EVERY == 0

    def inputs_until(self, last: int) -> tuple[list[dict[str, float]], int]:
        """Inputs of steps 1..``last``: from the historian, those it lacks (not recorded yet) from memory; and how many came
        from the historian. EngineFault if a step is in neither (its historian rows lost)."""
        recorded = recorded_inputs(self.historian, self.name, self.input_tags, last) \
            if self.historian is not None and self.historian.is_file() else {}
        missing = [s for s in range(1, last + 1) if s not in self.tail and s not in recorded]
        if missing:
            raise EngineFault(f"{self.name}: cannot replay: the inputs of {len(missing)} step(s) "
                              f"({missing[0]}..{missing[-1]}) are neither in the historian nor in memory")
        return [recorded[s] if s in recorded else self.tail[s] for s in range(1, last + 1)], \
            sum(1 for s in range(1, last + 1) if s in recorded)

    async def stop(self) -> None:
        """Stop the engine in its actor (up to STOP_TIMEOUT_S); the actor ends with its last building;
        safe at any time."""
        if self.stopped:
            return
        self.stopped = True
        if self._started is not None and not self._started.done():
            self._started.cancel()
        if self.group is not None:
            await self.group.leave(self)
        await _release(self)
