"""The OPC UA face of the bridge (asyncua): a campus of buildings as a SCADA tag tree.

Address space, namespace ``urn:twinbridge`` (bridge/protocol.py), string node ids that read well in a
tag browser::

    Objects/<Campus>/Control/{Status, StatusCode, SimTime, Step, Fault, Clock, Start(), Pause(), ...}
    Objects/<Campus>/Outputs/TotalElectricPower
    Objects/<Campus>/<Building>/Inputs/<Tag>      AnalogItemType, writable, EURange enforced, HistoryRead
    Objects/<Campus>/<Building>/Outputs/<Tag>     AnalogItemType, read-only, HistoryRead
    Objects/<Campus>/<Building>/Control/{..., OutputReady, InputReady}

Node id of a tag: ``ns=<urn:twinbridge>;s=<Campus>.<Building>.<Inputs|Outputs|Control>.<Name>``.
Output values carry SourceTimestamp = simulation time and a status (``quality``: Bad for NaN or an
infinity, Uncertain outside EURange). What clients may write is checked by the write guard
(bridge/writeguard.py), HistoryRead answered from the historian (bridge/opcua_history.py); every use
of asyncua's internals is in bridge/opcua_adapter.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import operator
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import asyncua
from asyncua import Server, ua

from bridge.config import cache_dir
from bridge.opcua_adapter import AsyncuaInternals, ValueBlock, ValueSlots
from bridge.opcua_history import GOOD, HistorianStorage, quality, tag_value, utc
from bridge.protocol import CONTROL, EXCHANGE, INPUTS, KPIS, METHODS, NAMESPACE, OUTPUTS, TOTAL_POWER, Status, node_path
from bridge.security.server import secure_server
from bridge.security.settings import ServerSecurity
from bridge.stepgroup import Row
from bridge.tagmap import TagMap
from bridge.writeguard import InputRefused, WriteGuard

log = logging.getLogger(__name__)


UNECE = "http://www.opcfoundation.org/UA/units/un/cefact"
# UNECE Recommendation 20 common codes of the units the tag maps use.
UNIT_CODES = {"degC": "CEL", "K": "KEL", "kW": "KWT", "W": "WTT", "kWh": "KWH", "J": "JOU", "%": "P1",
              "Pa": "PAL", "m3/s": "MQS", "kg/s": "KGS", "W/m2": "D54"}
# Control.Exchange on the campus side: given the coroutine function that writes the call's inputs and
# the calling session (any object that identifies it), it decides when (and whether) to write them, and
# returns (step, outputs, applied) of the step to answer with (applied: the call's inputs drove that step).
Exchange = Callable[[Callable[[], Awaitable[None]], object], Awaitable[tuple[int, list[float], bool]]]


def engineering_units(unit: str) -> ua.EUInformation:
    code = UNIT_CODES.get(unit, "")
    unit_id = 0
    for char in code:
        unit_id = (unit_id << 8) | ord(char)
    return ua.EUInformation(NamespaceUri=UNECE, UnitId=unit_id or -1,
                            DisplayName=ua.LocalizedText(unit), Description=ua.LocalizedText(unit))


@dataclass
class ControlNodes:
    """Node ids of one Control folder (campus or building)."""

    prefix: str
    ids: dict[str, ua.NodeId] = field(default_factory=dict)
    variants: dict[str, ua.VariantType] = field(default_factory=dict)  # the type each value is written as


class TagServer:
    """asyncua server holding the campus address space; the campus clock writes to it."""

    def __init__(self, endpoint: str, campus: str, start_time: dt.datetime | None = None,
                 security: ServerSecurity | None = None):
        """``start_time``: simulation time of the run's start, the timestamp of the tags' initial values
        (so that no value ever carries a wall-clock time). ``security``: policies, certificate, users
        (default: an open server, policy None, anonymous operators; docs/security.md)."""
        self.endpoint, self.campus = endpoint, campus
        self.security = security or ServerSecurity()
        self.start_time = utc(start_time) if start_time else dt.datetime.now(dt.timezone.utc)
        self.server = Server()
        self.internals = AsyncuaInternals(self.server)
        self.history = HistorianStorage()
        self.guard = WriteGuard(self.internals)
        self.idx = 0
        self.outputs: dict[str, dict[str, ua.NodeId]] = {}
        self.controls: dict[str | None, ControlNodes] = {}
        self._root = None
        self._kpi_folders: set[ua.NodeId] = set()
        self._kpi_nodes: set[ua.NodeId] = set()
        self._ranges: dict[ua.NodeId, tuple[float, float]] = {}  # EURange of each analog tag
        self._blocks: dict[tuple[str, ...], OutputBlock] = {}  # buildings -> the block serving their outputs
        self._block_of: dict[str, tuple[str, ...]] = {}  # building -> the key of the block that last took its outputs
        self._control_slots: dict[tuple, ValueSlots] = {}  # (tag name, building or None) -> its slot
        self._control_blocks: dict[str, tuple[list, ValueBlock]] = {}  # tag name -> (keys, their block): ``set_controls``

    async def init(self) -> None:
        """Prepare the address space; nothing is served until ``listen``."""
        shelf = cache_dir() / f"opcua-standard-nodes-asyncua-{asyncua.__version__}"
        if shelf.is_file():
            await self.server.init(shelf_file=shelf)  # nodes are read from the shelf as they are used
        else:
            await self.server.init()
            try:
                await self.internals.cache_standard_nodes(shelf)
            except OSError as exc:  # only start-up time is lost
                log.warning("cannot cache the standard address space in %s: %s", shelf.parent, exc)
        self.server.set_endpoint(self.endpoint)
        self.server.set_server_name(f"twinbridge {self.campus}")
        await secure_server(self.server, self.security, f"{NAMESPACE}:{self.campus}", self.endpoint)
        self.internals.set_history_storage(self.history)
        self.idx = await self.server.register_namespace(NAMESPACE)
        self.internals.intercept_writes(self.guard.write)
        self._root = await self._folder(self.server.nodes.objects)

    async def listen(self) -> None:
        asyncua_log = logging.getLogger("asyncua.server.server")
        level = asyncua_log.level
        asyncua_log.setLevel(logging.CRITICAL)  # it logs a failed bind with a traceback before raising it
        try:
            await self.server.start()
        except OSError as exc:
            raise OSError(f"cannot serve OPC UA at {self.endpoint}: {exc.strerror or exc}") from None
        finally:
            asyncua_log.setLevel(level)
        log.info("OPC UA server listening at %s (namespace %s)", self.endpoint, NAMESPACE)

    async def stop(self, linger_s: float = 0.0) -> None:
        """Stop serving; with ``linger_s``, first give connected clients that long to read the final
        state and disconnect (a controller reading Status after the last step, say)."""
        deadline = time.monotonic() + linger_s
        while self.connected_clients() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await self.internals.stop_clock()
        self.guard.refusals.flush(everything=True)
        await self.server.stop()

    def connected_clients(self) -> int:
        return self.internals.connected_clients()

    def _id(self, *parts: str) -> ua.NodeId:
        """Node id of the node at ``parts`` below Objects/<Campus> (no parts: the campus folder)."""
        return ua.NodeId(node_path(self.campus, *parts), self.idx)

    async def _folder(self, parent, *parts: str):
        """The folder at ``parts`` below Objects/<Campus>, named by the last part (no parts: the campus)."""
        name = parts[-1] if parts else self.campus
        return await parent.add_folder(self._id(*parts), ua.QualifiedName(name, self.idx))

    async def _analog(self, parent, parts: tuple[str, ...], unit: str, low: float, high: float,
                      value: float, writable: bool, description: str, historized: bool = True):
        """An AnalogItemType variable (Double) at ``parts``, named by the last part, with its EURange and
        EngineeringUnits properties; ``historized``: the historian records it (HistoryRead answers from there).

        Added as one node and two properties rather than through asyncua's ``instantiate``, which
        browses the type's whole hierarchy for every tag (~10 ms each)."""
        name = parts[-1]
        attributes = ua.VariableAttributes()
        attributes.DisplayName = ua.LocalizedText(name)
        if description:
            attributes.Description = ua.LocalizedText(description)
        attributes.DataType = ua.NodeId(ua.ObjectIds.Double)
        attributes.ValueRank = -1
        attributes.Value = ua.Variant(value, ua.VariantType.Double)
        access = ua.AccessLevel.CurrentRead.mask
        access |= ua.AccessLevel.CurrentWrite.mask if writable else 0
        access |= ua.AccessLevel.HistoryRead.mask if historized else 0
        attributes.AccessLevel = attributes.UserAccessLevel = access
        attributes.Historizing = historized
        item = ua.AddNodesItem(ParentNodeId=parent.nodeid, ReferenceTypeId=ua.NodeId(ua.ObjectIds.HasComponent),
                               RequestedNewNodeId=self._id(*parts), BrowseName=ua.QualifiedName(name, self.idx),
                               NodeClass=ua.NodeClass.Variable, NodeAttributes=attributes,
                               TypeDefinition=ua.NodeId(ua.ObjectIds.AnalogItemType))
        await self.internals.add_nodes([item])
        node = self.server.get_node(self._id(*parts))
        await node.write_value(ua.DataValue(ua.Variant(value, ua.VariantType.Double), SourceTimestamp=self.start_time))
        await node.add_property(self._id(*parts, "EURange"), ua.QualifiedName("EURange", 0), ua.Range(low, high))
        self._ranges[node.nodeid] = self.history.ranges[node.nodeid] = (low, high)
        await node.add_property(self._id(*parts, "EngineeringUnits"), ua.QualifiedName("EngineeringUnits", 0),
                                engineering_units(unit))
        return node

    async def _control(self, parent, key: str | None, methods: Mapping[str, Callable[[], Awaitable[str]]],
                       handshake: bool) -> None:
        """The Control folder of building ``key`` (None: the campus)."""
        where = () if key is None else (key,)
        folder = await self._folder(parent, *where, CONTROL)
        nodes = ControlNodes(node_path(self.campus, *where))
        initial = {"Status": (Status.IDLE.value, ua.VariantType.String),
                   "StatusCode": (Status.IDLE.code, ua.VariantType.Int32),
                   "SimTime": (dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), ua.VariantType.DateTime),
                   "SimTimeSeconds": (0.0, ua.VariantType.Double), "Step": (0, ua.VariantType.Int64),
                   "Fault": ("", ua.VariantType.String), "Clock": ("", ua.VariantType.String),
                   "SimTimeLocal": ("", ua.VariantType.String), "UtcOffset": (0.0, ua.VariantType.Double)}
        if handshake:
            initial |= {"OutputReady": (False, ua.VariantType.Boolean), "InputReady": (False, ua.VariantType.Boolean)}
        self.controls[key] = nodes
        await self.add_control_tags(key, initial)
        if handshake:
            await self.server.get_node(nodes.ids["InputReady"]).set_writable()
        for name in METHODS:
            await folder.add_method(self._id(*where, CONTROL, name), ua.QualifiedName(name, self.idx),
                                    _method(name, methods[name]), [], [ua.VariantType.String])

    async def add_control_tags(self, key: str | None, tags: Mapping[str, tuple[object, ua.VariantType]]) -> None:
        """Variables of the Control folder of building ``key`` (None: the campus), name -> (initial value,
        type); read-only for clients, set with ``set_control``."""
        nodes = self.controls[key]
        where = () if key is None else (key,)
        folder = self.server.get_node(self._id(*where, CONTROL))
        for name, (value, variant) in tags.items():
            node = await folder.add_variable(self._id(*where, CONTROL, name), ua.QualifiedName(name, self.idx),
                                             ua.Variant(value, variant))
            nodes.ids[name], nodes.variants[name] = node.nodeid, variant

    def input_node(self, building: str, tag: str) -> ua.NodeId:
        """The node id of input ``tag`` of ``building``."""
        return self.guard.inputs[building][tag]

    async def make_input_read_only(self, building: str, tag: str, why: str) -> None:
        """Clients may no longer write input ``tag`` of ``building`` (their writes: BadNotWritable); ``why``
        is appended to its Description. The bridge itself still writes it (``write_value``)."""
        node = self.server.get_node(self.input_node(building, tag))
        access = await node.read_attribute(ua.AttributeIds.AccessLevel)
        level = access.Value.Value & ~ua.AccessLevel.CurrentWrite.mask
        for attribute in (ua.AttributeIds.AccessLevel, ua.AttributeIds.UserAccessLevel):
            await node.write_attribute(attribute, ua.DataValue(ua.Variant(level, ua.VariantType.Byte)))
        description = (await node.read_description()).Text or ""
        await node.write_attribute(ua.AttributeIds.Description, ua.DataValue(ua.Variant(
            ua.LocalizedText("; ".join(filter(None, [description, why]))), ua.VariantType.LocalizedText)))

    async def add_campus_nodes(self, methods: Mapping[str, Callable[[], Awaitable[str]]],
                               total_power_kw: float = 1e6) -> None:
        """The campus Control folder and its TotalElectricPower output, EURange 0 to ``total_power_kw``."""
        await self._control(self._root, None, methods, handshake=False)
        outputs = await self._folder(self._root, OUTPUTS)
        await self._analog(outputs, (OUTPUTS, TOTAL_POWER), "kW", 0.0, total_power_kw, 0.0, False,
                           "Sum of the electric demand of all running buildings", historized=False)
        self.outputs[self.campus] = {TOTAL_POWER: self._id(OUTPUTS, TOTAL_POWER)}

    async def add_building(self, name: str, tagmap: TagMap, methods: Mapping[str, Callable[[], Awaitable[str]]],
                           on_input_ready: Callable[[], None], exchange: Exchange) -> None:
        building = await self._folder(self._root, name)
        inputs = await self._folder(building, name, INPUTS)
        outputs = await self._folder(building, name, OUTPUTS)
        self.outputs[name] = {}
        guarded = {}
        for item in tagmap.inputs:
            rules = [rule for rule in (order.describe(item.tag) for order in tagmap.orders) if rule]
            await self._analog(inputs, (name, INPUTS, item.tag), item.unit, item.min, item.max, item.default, True,
                               "; ".join(filter(None, [item.description, *rules])))
            node_id = self._id(name, INPUTS, item.tag)
            guarded[item.tag] = (node_id, item)
            self.history.tags[node_id] = (name, item.tag)
        for item in tagmap.outputs:
            low, high = tagmap.output_range(item)
            await self._analog(outputs, (name, OUTPUTS, item.tag), item.unit, low, high, 0.0, False, item.description)
            self.outputs[name][item.tag] = self._id(name, OUTPUTS, item.tag)
            self.history.tags[self._id(name, OUTPUTS, item.tag)] = (name, item.tag)
        await self._control(building, name, methods, handshake=True)
        self.guard.add_building(name, guarded, tagmap.orders, self.controls[name].ids["InputReady"], on_input_ready)
        await self._exchange_method(name, tagmap, exchange)

    async def _exchange_method(self, name: str, tagmap: TagMap, exchange: Exchange) -> None:
        """``Control.Exchange(Inputs) -> (Step, Outputs, Applied)``: a controller's whole step in one call.

        It checks the inputs (tag-map order; an empty array holds the current ones) and hands their
        write to ``exchange``, which raises InputReady and returns the step to answer with and whether
        the inputs drove it."""
        control = self.server.get_node(self._id(name, CONTROL))
        for tags, label in ((tagmap.inputs, "InputTags"), (tagmap.outputs, "OutputTags")):
            node = await control.add_variable(self._id(name, CONTROL, label), ua.QualifiedName(label, self.idx),
                                              ua.Variant([t.tag for t in tags], ua.VariantType.String))
            self.controls[name].ids[label] = node.nodeid

        async def call(parent, *arguments: ua.Variant):
            try:
                values = self.guard.exchange_inputs(name, arguments)
            except InputRefused as refused:
                log.warning("refused Exchange on %s: %s", name, refused)
                return ua.StatusCode(refused.code)
            try:
                step, outputs, applied = await exchange(functools.partial(self._write_inputs, name, values),
                                                        _calling_session())
            except TimeoutError:
                return ua.StatusCode(ua.StatusCodes.BadTimeout)
            except ValueError:
                return ua.StatusCode(ua.StatusCodes.BadInvalidState)
            return [ua.Variant(step, ua.VariantType.Int64), ua.Variant(outputs, ua.VariantType.Double),
                    ua.Variant(applied, ua.VariantType.Boolean)]

        inputs_arg = ua.Argument(Name="Inputs", DataType=ua.NodeId(ua.ObjectIds.Double), ValueRank=1,
                                 ArrayDimensions=[0], Description=ua.LocalizedText("input values in InputTags order"))
        step_arg = ua.Argument(Name="Step", DataType=ua.NodeId(ua.ObjectIds.Int64), ValueRank=-1)
        outputs_arg = ua.Argument(Name="Outputs", DataType=ua.NodeId(ua.ObjectIds.Double), ValueRank=1,
                                  ArrayDimensions=[0],
                                  Description=ua.LocalizedText("output values in OutputTags order"))
        applied_arg = ua.Argument(Name="Applied", DataType=ua.NodeId(ua.ObjectIds.Boolean), ValueRank=-1,
                                  Description=ua.LocalizedText("true when the inputs of this call drove Step; false "
                                                               "when Step was computed without them (a late call)"))
        await control.add_method(self._id(name, CONTROL, EXCHANGE), ua.QualifiedName(EXCHANGE, self.idx), call,
                                 [inputs_arg], [step_arg, outputs_arg, applied_arg])

    async def _write_inputs(self, building: str, values: Mapping[str, float]) -> None:
        async with self.guard.lock:
            for tag, value in values.items():
                await self.write_value(self.input_node(building, tag), value, ua.VariantType.Double)

    # In-process updates, bypassing the session layer.

    async def write_value(self, node_id: ua.NodeId, value, variant: ua.VariantType,
                          time: dt.datetime | None = None) -> None:
        """Set a value and notify subscribers (data-change callbacks)."""
        now = dt.datetime.now(dt.timezone.utc)
        await self.internals.set_value(node_id, ua.DataValue(ua.Variant(value, variant),
                                                             SourceTimestamp=utc(time) if time else now,
                                                             ServerTimestamp=now))

    async def publish_outputs(self, building: str, outputs: Mapping[str, float], time: dt.datetime) -> dict[str, str]:
        """Put ``outputs`` (tag -> value) on the building's output tags, each with its ``quality``; return the
        tags whose value is not Good, with the name of their status."""
        return (await self.publish_many([(building, outputs)], time)).get(building, {})

    async def publish_many(self, outputs: Iterable[tuple[str, Mapping[str, float]]],
                           time: dt.datetime) -> dict[str, dict[str, str]]:
        """``publish_outputs`` of several buildings' outputs (building, tag -> value) of one simulated
        ``time``; the flagged tags of the buildings that have any.

        One ``ValueBlock`` per building: the values are kept as one row, and a tag's DataValue is made
        only when it is read or monitored (the same DataValue either way, with the publishing time as its
        ServerTimestamp)."""
        source, now, flagged = utc(time), dt.datetime.now(dt.timezone.utc), {}
        for building, values in outputs:
            block = self._output_block((building,))
            tags, lows, highs = block.tags[0], block.lows, block.highs
            indices = None  # all
            try:
                row = values.values if isinstance(values, Row) and values.tags == tags else [values[tag] for tag in tags]
                good = all(map(operator.le, lows, row)) and all(map(operator.le, row, highs))  # NaN: False
            except (KeyError, TypeError):  # a tag left out, a None
                row = [values.get(tag) for tag in tags]
                indices, good = [i for i, tag in enumerate(tags) if tag in values], False
            if not good:
                statuses = {tags[i]: quality(row[i], (lows[i], highs[i])) for i in (range(len(tags)) if indices is None else indices)}
                flagged[building] = {tag: status.name for tag, status in statuses.items() if status is not GOOD}
                if not flagged[building]:
                    del flagged[building]
            monitored = block.values.publish((row, source, now), indices)
            if monitored:
                await block.values.notify(monitored)
        return flagged

    async def publish_block(self, buildings: tuple[str, ...], values: list[float],
                            time: dt.datetime) -> dict[str, dict[str, str]]:
        """``publish_many`` of ``buildings``' outputs of one simulated ``time`` given as one list, each
        building's values in its output tags' order (tag-map order), one building after the other: one
        ``ValueBlock`` over all their output tags takes them in one assignment, and their ranges are
        checked in one pass; the flagged tags of the buildings that have any."""
        block = self._output_block(buildings)
        if len(values) != len(block.lows):
            raise ValueError(f"{len(values)} output values for the {len(block.lows)} output tags of {len(buildings)} buildings")
        flagged = {}
        if not (all(map(operator.le, block.lows, values)) and all(map(operator.le, values, block.highs))):  # NaN: False
            first = 0
            for building, tags in zip(buildings, block.tags):
                statuses = {tag: quality(values[i], (block.lows[i], block.highs[i]))
                            for i, tag in enumerate(tags, first)}
                first += len(tags)
                bad = {tag: status.name for tag, status in statuses.items() if status is not GOOD}
                if bad:
                    flagged[building] = bad
        monitored = block.values.publish((values, utc(time), dt.datetime.now(dt.timezone.utc)))
        if monitored:
            await block.values.notify(monitored)
        return flagged

    def _output_block(self, buildings: tuple[str, ...]) -> OutputBlock:
        """The ``OutputBlock`` of the output tags of ``buildings`` (in order), made when they were last
        published otherwise (alone, or with other buildings): a block takes its nodes from the blocks that
        served them, which are dropped."""
        block = self._blocks.get(buildings)
        if block is not None:
            return block
        for building in buildings:
            self._blocks.pop(self._block_of.get(building), None)
            self._block_of[building] = buildings
        tags = [tuple(self.outputs[building]) for building in buildings]
        node_ids = [self.outputs[building][tag] for building, names in zip(buildings, tags) for tag in names]
        ranges = [self._ranges[node_id] for node_id in node_ids]

        def make(index: int, row: tuple[list[float], dt.datetime, dt.datetime]) -> ua.DataValue:
            values, source, now = row
            return tag_value(values[index], ranges[index], source, now)

        shared = {}  # one float object per distinct bound: fewer objects for each step's range check to touch
        block = self._blocks[buildings] = OutputBlock(self.internals.value_block(node_ids, make), tags,
                                                      [shared.setdefault(r[0], r[0]) for r in ranges],
                                                      [shared.setdefault(r[1], r[1]) for r in ranges])
        return block

    def read_inputs(self, building: str) -> dict[str, float]:
        """The values the input tags of ``building`` hold (``WriteGuard.read_inputs``: never a null)."""
        return self.guard.read_inputs(building)

    def current_inputs(self, building: str) -> Mapping[str, float]:
        """``read_inputs`` not to be changed, the same mapping while they are (``WriteGuard.current_inputs``)."""
        return self.guard.current_inputs(building)

    async def set_control(self, key: str | None, **values) -> None:
        """Set Control tags of building ``key`` (None: the campus) by name; Status also sets StatusCode."""
        await self.set_controls([key], **values)

    async def set_controls(self, keys: list[str | None], **values) -> None:
        """The same ``values`` on the Control tags of every building in ``keys`` (None: the campus's):
        each value made once (one DataValue shared by all the tags it goes to); Status also sets StatusCode.
        A tag of several buildings (Step, SimTime each step) is served by one ``ValueBlock`` of those
        buildings' nodes, so that setting it costs the same whatever their number (a new block when the
        buildings differ from the last call's), and its DataValue is made only when first read or notified."""
        keys = [key for key in keys if key in self.controls]  # absent: the address space is not built
        if not keys:
            return
        if "Status" in values:
            values["StatusCode"] = Status(values["Status"]).code
        now, variants = dt.datetime.now(dt.timezone.utc), self.controls[keys[0]].variants
        for name, value in values.items():
            data = _Made(utc(value) if name == "SimTime" else value, variants[name], now)
            if len(keys) == 1:
                group = (name, keys[0])
                slots = self._control_slots.get(group)
                if slots is None:
                    slots = self._control_slots[group] = self.internals.value_slots([self.controls[keys[0]].ids[name]])
                await slots.set(data.data())
                continue
            block = self._control_blocks.get(name)
            if block is None or block[0] != keys:
                block = self._control_blocks[name] = (keys, self.internals.value_block(
                    [self.controls[k].ids[name] for k in keys], _made_data))
            monitored = block[1].publish(data)
            if monitored:
                await block[1].notify(monitored)

    async def publish_kpis(self, building: str | None, kpis: Mapping[str, object]) -> None:
        """Numeric KPIs as read-only Double tags under ``<Campus>[.<Building>].KPIs`` (created on first use)."""
        where = () if building is None else (building,)
        folder_id = self._id(*where, KPIS)
        folder = self.server.get_node(folder_id)
        if folder_id not in self._kpi_folders:
            folder = await self._folder(self.server.get_node(self._id(*where)), *where, KPIS)
            self._kpi_folders.add(folder_id)
        for name, value in kpis.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            node_id = self._id(*where, KPIS, name)
            if node_id not in self._kpi_nodes:
                await folder.add_variable(node_id, ua.QualifiedName(name, self.idx), 0.0)
                self._kpi_nodes.add(node_id)
            await self.write_value(node_id, float(value), ua.VariantType.Double)


@dataclass
class OutputBlock:
    """The output tags of one or more buildings served by one ``ValueBlock`` (``TagServer._output_block``):
    each building's tag names, and the EURange lows and highs of all the tags, in order."""

    values: ValueBlock
    tags: list[tuple[str, ...]]
    lows: list[float]
    highs: list[float]


class _Made:
    """A Control value set for several buildings (``set_controls``): its DataValue made when first asked for,
    then the same one for every tag it went to."""

    __slots__ = ("value", "variant", "time", "_data")

    def __init__(self, value: object, variant: ua.VariantType, time: dt.datetime):
        self.value, self.variant, self.time, self._data = value, variant, time, None

    def data(self) -> ua.DataValue:
        if self._data is None:
            self._data = ua.DataValue(ua.Variant(self.value, self.variant), SourceTimestamp=self.time,
                                      ServerTimestamp=self.time)
        return self._data


def _made_data(index: int, made: _Made) -> ua.DataValue:
    """A ``ValueBlock``'s DataValue when its row is a ``_Made`` (the Control tags of ``set_controls``)."""
    return made.data()


def _calling_session() -> object:
    """What identifies the client session of the method call being served: asyncua serves each
    connection's requests one at a time in a task of its own (one session per connection), which
    lives as long as the connection."""
    return asyncio.current_task()


def _method(name: str, action: Callable[[], Awaitable[str]]):
    async def call(parent):
        try:
            return [ua.Variant(await action(), ua.VariantType.String)]
        except ValueError as exc:
            log.warning("method %s refused: %s", name, exc)
            return ua.StatusCode(ua.StatusCodes.BadInvalidState)

    return call
