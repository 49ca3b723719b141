"""The OPC UA face of the bridge (asyncua): a campus of buildings as a SCADA tag tree.

Address space, namespace ``urn:twinbridge``, string node ids that read well in a tag browser::

    Objects/<Campus>/Control/{Status, StatusCode, SimTime, Step, Fault, Clock, Start(), Pause(), ...}
    Objects/<Campus>/Outputs/TotalElectricPower
    Objects/<Campus>/<Building>/Inputs/<Tag>      AnalogItemType, writable, EURange enforced, HistoryRead
    Objects/<Campus>/<Building>/Outputs/<Tag>     AnalogItemType, read-only, HistoryRead
    Objects/<Campus>/<Building>/Control/{..., OutputReady, InputReady}

Node id of a tag: ``ns=<urn:twinbridge>;s=<Campus>.<Building>.<Inputs|Outputs|Control>.<Name>``.
Output values carry SourceTimestamp = simulation time and a status (``quality``: Bad for NaN or an
infinity, Uncertain outside EURange). A client writes the Value of an input or of
InputReady, nothing else (BadNotWritable); a Value with a StatusCode other than Good, a
ServerTimestamp or an IndexRange is refused (BadWriteNotSupported), an input value that is not a
Double scalar (BadTypeMismatch), outside the input's EURange or breaking an order between inputs (a
tag map's ``below``; BadOutOfRange). Each item of a Write is answered on its own; refusals are
logged, a few per client and reason every ``REFUSALS_WINDOW_S``, then counted (``ThrottledLog``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncua
from asyncua import Server, ua
from asyncua.crypto.permission_rules import UserRole
from asyncua.server.address_space import AddressSpace, AttributeValue
from asyncua.server.history import HistoryStorageInterface

from bridge.config import cache_dir
from bridge.errors import TwinbridgeError
from bridge.historian import read_tag
from bridge.ratelimit import ThrottledLog
from bridge.security.server import may_write, secure_server
from bridge.security.settings import ServerSecurity
from bridge.tagmap import UNBOUNDED, InputOrder, InputTag, TagMap

log = logging.getLogger(__name__)

NAMESPACE = "urn:twinbridge"
UNECE = "http://www.opcfoundation.org/UA/units/un/cefact"
# UNECE Recommendation 20 common codes of the units the tag maps use.
UNIT_CODES = {"degC": "CEL", "K": "KEL", "kW": "KWT", "W": "WTT", "kWh": "KWH", "J": "JOU", "%": "P1",
              "Pa": "PAL", "m3/s": "MQS", "kg/s": "KGS", "W/m2": "D54"}
STATUS_CODES = {"Idle": 0, "Running": 1, "Finished": 2, "Reset": 3, "Stopped": 4, "Paused": 5, "Faulted": -1}
METHODS = ("Start", "Pause", "Resume", "Reset", "Stop")
HISTORY_PAGE = 10_000  # most values of one tag in one HistoryRead answer; a continuation point gives the rest
# Control.Exchange on the campus side: given the coroutine function that writes the call's inputs and
# the calling session (any object that identifies it), it decides when (and whether) to write them, and
# returns (step, outputs, applied) of the step to answer with (applied: the call's inputs drove that step).
Exchange = Callable[[Callable[[], Awaitable[None]], object], Awaitable[tuple[int, list[float], bool]]]
NUMBER_VARIANTS = {ua.VariantType.Double, ua.VariantType.Float, ua.VariantType.SByte, ua.VariantType.Byte,
                   ua.VariantType.Int16, ua.VariantType.UInt16, ua.VariantType.Int32, ua.VariantType.UInt32,
                   ua.VariantType.Int64, ua.VariantType.UInt64}
REFUSALS_LOGGED, REFUSALS_WINDOW_S = 5, 10.0  # refused writes logged one by one per client and reason per window
# A write item to refuse: (OPC UA status code, what was refused and why, for the log)
Refusal = tuple[int, str]


class InputRefused(TwinbridgeError, ValueError):
    """Input values the bridge will not write; ``code`` is the OPC UA status to answer with."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def engineering_units(unit: str) -> ua.EUInformation:
    code = UNIT_CODES.get(unit, "")
    unit_id = 0
    for char in code:
        unit_id = (unit_id << 8) | ord(char)
    return ua.EUInformation(NamespaceUri=UNECE, UnitId=unit_id or -1,
                            DisplayName=ua.LocalizedText(unit), Description=ua.LocalizedText(unit))


GOOD, UNCERTAIN_RANGE, BAD_RANGE = (ua.StatusCode(code) for code in (
    ua.StatusCodes.Good, ua.StatusCodes.UncertainEngineeringUnitsExceeded, ua.StatusCodes.BadOutOfRange))


def quality(value: float | None, eu_range: tuple[float, float]) -> ua.StatusCode:
    """OPC UA status of a value of a Double tag whose EURange is ``eu_range`` (docs/protocol.md, "Quality"):
    BadOutOfRange for no finite number (NaN, an infinity, or the NULL the historian stores for them),
    UncertainEngineeringUnitsExceeded outside EURange (OPC UA Part 8, 6.3.2), else Good."""
    if value is None or not math.isfinite(value):
        return BAD_RANGE
    return GOOD if eu_range[0] <= value <= eu_range[1] else UNCERTAIN_RANGE


def tag_value(value: float | None, eu_range: tuple[float, float], source: dt.datetime,
              server: dt.datetime) -> ua.DataValue:
    """A Double tag value with its ``quality``; a Bad value is null (OPC UA Part 4, 7.7.1)."""
    status = quality(value, eu_range)
    variant = ua.Variant() if status is BAD_RANGE else ua.Variant(float(value), ua.VariantType.Double)
    return ua.DataValue(variant, StatusCode=status, SourceTimestamp=source, ServerTimestamp=server)


def utc(time: dt.datetime) -> dt.datetime:
    return time.replace(tzinfo=dt.timezone.utc) if time.tzinfo is None else time


def _write_shelf(aspace: AddressSpace, shelf: Path) -> None:
    """Keep OPC UA's standard address space (~1 s of CPU to build) as an asyncua shelf for later starts.

    One process writes it (the one that creates the lock file; servers starting together just go
    without it this time), under a private name, then renames it into place; ``shelf`` itself is
    written last, as the marker asyncua looks for (``dbm.dumb`` keeps the data in ``<name>.dat``
    and ``<name>.dir``), so no server ever reads half a shelf."""
    shelf.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(shelf.with_name(shelf.name + ".lock"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    private = shelf.with_name(f"{shelf.name}.{os.getpid()}")
    aspace.make_aspace_shelf(private)
    for part in shelf.parent.glob(f"{private.name}*"):
        part.replace(shelf.with_name(shelf.name + part.name[len(private.name):]))
    shelf.touch()


@dataclass
class ControlNodes:
    """Node ids of one Control folder (campus or building)."""

    prefix: str
    ids: dict[str, ua.NodeId] = field(default_factory=dict)


class HistorianStorage(HistoryStorageInterface):
    """OPC UA HistoryRead on input and output tags, answered from the run's historian."""

    def __init__(self) -> None:
        super().__init__()
        self.historian_path: Path | None = None
        self.tags: dict[ua.NodeId, tuple[str, str]] = {}
        self.ranges: dict[ua.NodeId, tuple[float, float]] = {}  # EURange of each tag, for its values' quality

    async def init(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def read_node_history(self, node_id: ua.NodeId, start: dt.datetime | None, end: dt.datetime | None,
                                nb_values: int) -> tuple[list[ua.DataValue], dt.datetime | None]:
        """Values of a tag between ``start`` and ``end`` inclusive (None or the win epoch: not given), at most
        ``nb_values`` (0: no limit) and never more than HISTORY_PAGE, in OPC UA Part 11's order: newest
        first when ``start`` is later than ``end`` or when only ``end`` and ``nb_values`` are given, else
        oldest first. When more are left, the time of the next one is the continuation point (asyncua
        sends it packed and gives it back as ``start`` of the client's next request; going back, that
        start is not earlier than ``end``, so the direction holds). ``end`` and ``nb_values`` alone get no
        continuation point: asyncua would give it back as a start before ``end``, a forward read."""
        if self.historian_path is None or node_id not in self.tags:
            return [], None
        building, tag = self.tags[node_id]
        epoch = ua.get_win_epoch()
        low = None if start in (None, epoch) else start.replace(tzinfo=None)
        high = None if end in (None, epoch) else end.replace(tzinfo=None)
        back_from_end = low is None and high is not None and nb_values > 0
        backwards = low is not None and high is not None and low > high
        if backwards:
            low, high = high, low
        page = min(nb_values or HISTORY_PAGE, HISTORY_PAGE)
        rows = read_tag(self.historian_path, building, tag, low, high, page + 1, back_from_end or backwards)
        following = utc(rows[page][0]) if len(rows) > page and not back_from_end else None
        eu_range = self.ranges.get(node_id, UNBOUNDED)
        return [tag_value(value, eu_range, utc(time), utc(time)) for time, value in rows[:page]], following


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
        self.history = HistorianStorage()
        self.idx = 0
        self.inputs: dict[str, dict[str, ua.NodeId]] = {}
        self.outputs: dict[str, dict[str, ua.NodeId]] = {}
        self.controls: dict[str | None, ControlNodes] = {}
        self._input_items: dict[ua.NodeId, tuple[str, InputTag]] = {}  # input node -> (building, tag-map entry)
        self._held_inputs: dict[ua.NodeId, float] = {}  # input node -> the last number read from it
        self._refusals = ThrottledLog(log, REFUSALS_LOGGED, REFUSALS_WINDOW_S)
        self._orders: dict[str, tuple[InputOrder, ...]] = {}
        self._input_lock = asyncio.Lock()  # a check of input values and their write are one step
        self._on_input_ready: dict[ua.NodeId, Callable[[], None]] = {}
        self._root = None
        self._kpi_folders: set[ua.NodeId] = set()
        self._kpi_nodes: set[ua.NodeId] = set()
        self._value_slots: dict[ua.NodeId, AttributeValue] = {}
        self._ranges: dict[ua.NodeId, tuple[float, float]] = {}  # EURange of each analog tag

    async def init(self) -> None:
        """Prepare the address space; nothing is served until ``listen``."""
        shelf = cache_dir() / f"opcua-standard-nodes-asyncua-{asyncua.__version__}"
        if shelf.is_file():
            await self.server.init(shelf_file=shelf)  # nodes are read from the shelf as they are used
        else:
            await self.server.init()
            try:
                await asyncio.to_thread(_write_shelf, self.server.iserver.aspace, shelf)
            except OSError as exc:  # only start-up time is lost
                log.warning("cannot cache the standard address space in %s: %s", shelf.parent, exc)
        self.server.set_endpoint(self.endpoint)
        self.server.set_server_name(f"twinbridge {self.campus}")
        await secure_server(self.server, self.security, f"urn:twinbridge:{self.campus}", self.endpoint)
        self.server.iserver.history_manager.set_storage(self.history)
        self.idx = await self.server.register_namespace(NAMESPACE)
        self._guard_writes()
        self._root = await self._folder(self.server.nodes.objects, self.campus, self.campus)

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
        # asyncua's server-clock task sleeps 1 s between updates and stop() waits for it: end it now.
        clock = getattr(self.server.iserver, "time_task", None)
        if clock is not None:
            clock.cancel()
            self.server.iserver.time_task = None
            with contextlib.suppress(asyncio.CancelledError):
                await clock
        self._refusals.flush(everything=True)
        await self.server.stop()

    def connected_clients(self) -> int:
        return len(self.server.bserver.clients) if self.server.bserver is not None else 0

    def _id(self, path: str) -> ua.NodeId:
        return ua.NodeId(path, self.idx)

    async def _folder(self, parent, path: str, name: str):
        return await parent.add_folder(self._id(path), ua.QualifiedName(name, self.idx))

    async def _analog(self, parent, path: str, name: str, unit: str, low: float, high: float,
                      value: float, writable: bool, description: str, historized: bool = True):
        """An AnalogItemType variable (Double) with its EURange and EngineeringUnits properties;
        ``historized``: the historian records it (HistoryRead answers from there).

        Added as one node and two properties rather than through asyncua's ``instantiate``, which
        browses the type's whole hierarchy for every tag (~10 ms each)."""
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
                               RequestedNewNodeId=self._id(path), BrowseName=ua.QualifiedName(name, self.idx),
                               NodeClass=ua.NodeClass.Variable, NodeAttributes=attributes,
                               TypeDefinition=ua.NodeId(ua.ObjectIds.AnalogItemType))
        (await self.server.iserver.isession.add_nodes([item]))[0].StatusCode.check()
        node = self.server.get_node(self._id(path))
        await node.write_value(ua.DataValue(ua.Variant(value, ua.VariantType.Double), SourceTimestamp=self.start_time))
        await node.add_property(self._id(f"{path}.EURange"), ua.QualifiedName("EURange", 0), ua.Range(low, high))
        self._ranges[node.nodeid] = self.history.ranges[node.nodeid] = (low, high)
        await node.add_property(self._id(f"{path}.EngineeringUnits"), ua.QualifiedName("EngineeringUnits", 0),
                                engineering_units(unit))
        return node

    async def _control(self, parent, prefix: str, key: str | None,
                       methods: Mapping[str, Callable[[], Awaitable[str]]], handshake: bool) -> None:
        folder = await self._folder(parent, f"{prefix}.Control", "Control")
        nodes = ControlNodes(prefix)
        initial = {"Status": ("Idle", ua.VariantType.String), "StatusCode": (0, ua.VariantType.Int32),
                   "SimTime": (dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc), ua.VariantType.DateTime),
                   "SimTimeSeconds": (0.0, ua.VariantType.Double), "Step": (0, ua.VariantType.Int64),
                   "Fault": ("", ua.VariantType.String), "Clock": ("", ua.VariantType.String),
                   "SimTimeLocal": ("", ua.VariantType.String), "UtcOffset": (0.0, ua.VariantType.Double)}
        if handshake:
            initial |= {"OutputReady": (False, ua.VariantType.Boolean), "InputReady": (False, ua.VariantType.Boolean)}
        for name, (value, variant) in initial.items():
            node = await folder.add_variable(self._id(f"{prefix}.Control.{name}"), ua.QualifiedName(name, self.idx),
                                             ua.Variant(value, variant))
            if name == "InputReady":
                await node.set_writable()
            nodes.ids[name] = node.nodeid
        for name in METHODS:
            await folder.add_method(self._id(f"{prefix}.Control.{name}"), ua.QualifiedName(name, self.idx),
                                    _method(name, methods[name]), [], [ua.VariantType.String])
        self.controls[key] = nodes

    async def add_campus_nodes(self, methods: Mapping[str, Callable[[], Awaitable[str]]],
                               total_power_kw: float = 1e6) -> None:
        """The campus Control folder and its TotalElectricPower output, EURange 0 to ``total_power_kw``."""
        await self._control(self._root, self.campus, None, methods, handshake=False)
        outputs = await self._folder(self._root, f"{self.campus}.Outputs", "Outputs")
        path = f"{self.campus}.Outputs.TotalElectricPower"
        await self._analog(outputs, path, "TotalElectricPower", "kW", 0.0, total_power_kw, 0.0, False,
                           "Sum of the electric demand of all running buildings", historized=False)
        self.outputs[self.campus] = {"TotalElectricPower": self._id(path)}

    async def add_building(self, name: str, tagmap: TagMap, methods: Mapping[str, Callable[[], Awaitable[str]]],
                           on_input_ready: Callable[[], None], exchange: Exchange) -> None:
        prefix = f"{self.campus}.{name}"
        building = await self._folder(self._root, prefix, name)
        inputs = await self._folder(building, f"{prefix}.Inputs", "Inputs")
        outputs = await self._folder(building, f"{prefix}.Outputs", "Outputs")
        self.inputs[name], self.outputs[name] = {}, {}
        self._orders[name] = tagmap.orders
        for item in tagmap.inputs:
            path = f"{prefix}.Inputs.{item.tag}"
            rules = [rule for rule in (order.describe(item.tag) for order in tagmap.orders) if rule]
            await self._analog(inputs, path, item.tag, item.unit, item.min, item.max, item.default, True,
                               "; ".join(filter(None, [item.description, *rules])))
            self.inputs[name][item.tag] = self._id(path)
            self._input_items[self._id(path)] = (name, item)
            self._held_inputs[self._id(path)] = item.default
            self.history.tags[self._id(path)] = (name, item.tag)
        for item in tagmap.outputs:
            path = f"{prefix}.Outputs.{item.tag}"
            low, high = tagmap.output_range(item)
            await self._analog(outputs, path, item.tag, item.unit, low, high, 0.0, False, item.description)
            self.outputs[name][item.tag] = self._id(path)
            self.history.tags[self._id(path)] = (name, item.tag)
        await self._control(building, prefix, name, methods, handshake=True)
        self._on_input_ready[self.controls[name].ids["InputReady"]] = on_input_ready
        await self._exchange_method(prefix, name, tagmap, exchange)

    async def _exchange_method(self, prefix: str, name: str, tagmap: TagMap, exchange: Exchange) -> None:
        """``Control.Exchange(Inputs) -> (Step, Outputs, Applied)``: a controller's whole step in one call.

        It checks the inputs (tag-map order; an empty array holds the current ones) and hands their
        write to ``exchange``, which raises InputReady and returns the step to answer with and whether
        the inputs drove it."""
        control = self.server.get_node(self._id(f"{prefix}.Control"))
        for tags, label in ((tagmap.inputs, "InputTags"), (tagmap.outputs, "OutputTags")):
            node = await control.add_variable(self._id(f"{prefix}.Control.{label}"), ua.QualifiedName(label, self.idx),
                                              ua.Variant([t.tag for t in tags], ua.VariantType.String))
            self.controls[name].ids[label] = node.nodeid

        async def call(parent, *arguments: ua.Variant):
            try:
                values = self._exchange_inputs(name, arguments)
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
                                  ArrayDimensions=[0], Description=ua.LocalizedText("output values in OutputTags order"))
        applied_arg = ua.Argument(Name="Applied", DataType=ua.NodeId(ua.ObjectIds.Boolean), ValueRank=-1,
                                  Description=ua.LocalizedText("true when the inputs of this call drove Step; false "
                                                               "when Step was computed without them (a late call)"))
        await control.add_method(self._id(f"{prefix}.Control.Exchange"), ua.QualifiedName("Exchange", self.idx), call,
                                 [inputs_arg], [step_arg, outputs_arg, applied_arg])

    def _exchange_inputs(self, building: str, arguments: tuple[ua.Variant, ...]) -> dict[str, float]:
        """The input values of an Exchange call (empty: keep the current ones); raise InputRefused."""
        if len(arguments) != 1:
            code = ua.StatusCodes.BadArgumentsMissing if not arguments else ua.StatusCodes.BadTooManyArguments
            raise InputRefused(code, f"expected one argument (Inputs), got {len(arguments)}")
        inputs = arguments[0]
        values = inputs.Value if inputs.Value is not None else []  # Null or empty: keep the current values
        if not (isinstance(values, list) and all(map(is_number, values))
                and (inputs.VariantType in NUMBER_VARIANTS or not values)):
            raise InputRefused(ua.StatusCodes.BadTypeMismatch,
                               f"Inputs must be an array of numbers, got {inputs.VariantType.name} {values!r:.80}")
        tags = list(self.inputs[building])
        if values and len(values) != len(tags):
            raise InputRefused(ua.StatusCodes.BadInvalidArgument,
                               f"Inputs has {len(values)} values, InputTags {len(tags)}")
        for tag, value in zip(tags, values):
            problem = self._range_problem(self.inputs[building][tag], value)
            if problem:
                raise InputRefused(ua.StatusCodes.BadOutOfRange, f"{value!r} to {problem}")
        named = dict(zip(tags, map(float, values)))
        broken = [order.explain(named) for order in self._orders[building] if named and not order.holds(named)]
        if broken:
            raise InputRefused(ua.StatusCodes.BadOutOfRange, "; ".join(broken))
        return named

    async def _write_inputs(self, building: str, values: Mapping[str, float]) -> None:
        async with self._input_lock:
            for tag, value in values.items():
                await self.write_value(self.inputs[building][tag], value, ua.VariantType.Double)

    def _range_problem(self, node_id: ua.NodeId, value) -> str | None:
        """Why ``value`` may not be written to input ``node_id`` (not a number, outside EURange), or None."""
        building, item = self._input_items[node_id]
        if is_number(value) and item.min <= value <= item.max:
            return None
        return f"{building}.{item.tag}: outside EURange [{item.min:g}, {item.max:g}]"

    def _disordered_writes(self, items: list[ua.WriteValue], candidates: list[int], source: str) -> set[int]:
        """Indices of the input writes among ``candidates`` that would break a ``below`` order of their
        building, judged on the values the whole request leaves (so its order of writes does not matter);
        ``source`` (who wrote them) is named in the log."""
        refused: set[int] = set()
        while True:
            writes = {i: (*self._input_items[items[i].NodeId], items[i].Value.Value.Value) for i in candidates
                      if i not in refused and items[i].NodeId in self._input_items}
            newly = set()
            for building in {b for b, _, _ in writes.values()}:
                written = {item.tag: float(v) for b, item, v in writes.values() if b == building}
                values = self.read_inputs(building) | written
                for order in self._orders[building]:
                    if order.holds(values):
                        continue
                    involved = {i for i, (b, item, _) in writes.items()
                                if b == building and item.tag in (order.lower, order.upper)}
                    self._refusals.warning(_refusals_key(source, ua.StatusCodes.BadOutOfRange),
                                           "refused write to %s of %s: %s (by %s)", building,
                                           ", ".join(sorted({writes[i][1].tag for i in involved})),
                                           order.explain(values), source)
                    newly |= involved
            if not newly:
                return refused
            refused |= newly

    def _guard_writes(self) -> None:
        """Check every Write before asyncua does: a viewer's is refused whole (BadUserAccessDenied), a
        network client's item by item (``_client_refusal``), input values by type, EURange and order
        (``_input_refusal``, ``_disordered_writes``). The items left go on to asyncua in one request, so
        a refused item loses none of the others. InputReady raised by a client is noticed."""
        service = self.server.iserver.attribute_service
        forward = service.write

        async def write(params: ua.WriteParameters, user=None, **kwargs):
            items, source = params.NodesToWrite, _source(user)
            if not may_write(user):
                self._refusals.warning(_refusals_key(source, ua.StatusCodes.BadUserAccessDenied),
                                       "refused a write by %s (role %s)", source, user.twinbridge_role)
                return [ua.StatusCode(ua.StatusCodes.BadUserAccessDenied)] * len(items)
            results: list[ua.StatusCode | None] = []
            for item in items:
                refusal = (self._client_refusal(item) if _from_client(user) else None) or self._input_refusal(item)
                if refusal:
                    code, what = refusal
                    self._refusals.warning(_refusals_key(source, code), "refused write %s (by %s)", what, source)
                results.append(ua.StatusCode(refusal[0]) if refusal else None)
            codes: list[ua.StatusCode] = []
            async with self._input_lock:
                inputs = [i for i, r in enumerate(results) if r is None and self._is_input_value(items[i])]
                for i in self._disordered_writes(items, inputs, source):
                    results[i] = ua.StatusCode(ua.StatusCodes.BadOutOfRange)
                accepted = [i for i, r in enumerate(results) if r is None]
                if accepted:
                    subset = ua.WriteParameters(NodesToWrite=[items[i] for i in accepted])
                    codes = await (forward(subset, user=user) if user is not None else forward(subset))
            for i, code in zip(accepted, codes):
                results[i] = code
                callback = self._on_input_ready.get(items[i].NodeId)
                if callback and code.is_good() and items[i].AttributeId == ua.AttributeIds.Value \
                        and items[i].Value.Value.Value is True:
                    callback()
            return results

        service.write = write

    def _is_input_value(self, item: ua.WriteValue) -> bool:
        return item.AttributeId == ua.AttributeIds.Value and item.NodeId in self._input_items

    def _client_refusal(self, item: ua.WriteValue) -> Refusal | None:
        """Why the bridge refuses one item of a network client's Write, apart from input values, or None.

        Clients write the Value attribute of writable variables (inputs, InputReady), a DataValue with
        a value, no StatusCode other than Good, no ServerTimestamp (the server stamps the time it took
        the value) and no IndexRange (every writable value is a scalar); a SourceTimestamp is kept."""
        aspace = self.server.iserver.aspace
        node, target = aspace.get(item.NodeId), _node_name(item.NodeId)
        if node is None:
            return ua.StatusCodes.BadNodeIdUnknown, f"to {target}: no such node"
        if item.AttributeId not in node.attributes:
            return ua.StatusCodes.BadAttributeIdInvalid, f"to {target}: it has no attribute {item.AttributeId}"
        if item.AttributeId != ua.AttributeIds.Value:
            return ua.StatusCodes.BadNotWritable, f"to {ua.AttributeIds(item.AttributeId).name} of {target}: read-only"
        access = aspace.read_attribute_value(item.NodeId, ua.AttributeIds.AccessLevel).Value
        if access is None or not isinstance(access.Value, int) \
                or not ua.ua_binary.test_bit(access.Value, ua.AccessLevel.CurrentWrite):
            return ua.StatusCodes.BadNotWritable, f"to {target}: read-only"
        unsupported = _unsupported_write(item)
        if unsupported:
            return ua.StatusCodes.BadWriteNotSupported, f"to {target}: {unsupported}"
        return None

    def _input_refusal(self, item: ua.WriteValue) -> Refusal | None:
        """Why a value may not be written to an input (not a Double scalar, outside EURange), or None
        (also for any other write)."""
        if not self._is_input_value(item):
            return None
        variant = item.Value.Value if item.Value is not None else None
        value = variant.Value if variant is not None else None
        if variant is None or variant.VariantType != ua.VariantType.Double or not is_number(value):
            building, tag = self._input_items[item.NodeId]
            kind = variant.VariantType.name if variant is not None else "no value"
            return ua.StatusCodes.BadTypeMismatch, f"of {value!r:.80} to {building}.{tag.tag}: {kind}, not a Double"
        problem = self._range_problem(item.NodeId, value)
        return (ua.StatusCodes.BadOutOfRange, f"of {value!r} to {problem}") if problem else None

    # In-process updates, bypassing the session layer.

    async def write_value(self, node_id: ua.NodeId, value, variant: ua.VariantType,
                          time: dt.datetime | None = None) -> None:
        """Set a value and notify subscribers (data-change callbacks)."""
        now = dt.datetime.now(dt.timezone.utc)
        await self._set(node_id, ua.DataValue(ua.Variant(value, variant), SourceTimestamp=utc(time) if time else now,
                                              ServerTimestamp=now))

    async def publish_outputs(self, building: str, outputs: Mapping[str, float], time: dt.datetime) -> dict[str, str]:
        """Put ``outputs`` (tag -> value) on the building's output tags, each with its ``quality``; return the
        tags whose value is not Good, with the name of their status."""
        now, source = dt.datetime.now(dt.timezone.utc), utc(time)
        flagged = {}
        for tag, node_id in self.outputs[building].items():
            if tag in outputs:
                data = tag_value(outputs[tag], self._ranges[node_id], source, now)
                await self._set(node_id, data)
                if data.StatusCode is not GOOD:
                    flagged[tag] = data.StatusCode.name
        return flagged

    async def _set(self, node_id: ua.NodeId, data: ua.DataValue) -> None:
        """Store ``data`` in the node's Value attribute and call its data-change callbacks (subscriptions).

        What asyncua's ``write_attribute_value`` does, minus its per-call node lookup and type check:
        ~1.5 us against ~5 us per value, and the bridge sets ~25 values per step."""
        slot = self._value_slots.get(node_id)
        if slot is None:
            slot = self._value_slots[node_id] = self.server.iserver.aspace[node_id].attributes[ua.AttributeIds.Value]
        slot.value = data
        for handle, callback in slot.datachange_callbacks.items():
            try:
                await callback(handle, data)
            except Exception:
                log.exception("data-change callback of %s failed", node_id)

    def read_inputs(self, building: str) -> dict[str, float]:
        """The values the input tags of ``building`` hold. A tag holding no finite number (the write guard
        lets none through; this is its second line) gives the last number read from it, and an error."""
        aspace = self.server.iserver.aspace
        values = {}
        for tag, node_id in self.inputs[building].items():
            variant = aspace.read_attribute_value(node_id, ua.AttributeIds.Value).Value
            value = variant.Value if variant is not None else None
            if is_number(value) and math.isfinite(value):
                self._held_inputs[node_id] = value = float(value)
            else:
                value = self._held_inputs[node_id]
                self._refusals.warning(f"{building}.{tag} holding no number", "%s.%s holds %r, not a number: "
                                       "its last value %g is used", building, tag, variant, value)
            values[tag] = value
        return values

    async def set_control(self, key: str | None, **values) -> None:
        variants = {"Status": ua.VariantType.String, "StatusCode": ua.VariantType.Int32,
                    "SimTime": ua.VariantType.DateTime, "SimTimeSeconds": ua.VariantType.Double,
                    "Step": ua.VariantType.Int64, "Fault": ua.VariantType.String,
                    "OutputReady": ua.VariantType.Boolean, "InputReady": ua.VariantType.Boolean,
                    "Clock": ua.VariantType.String, "SimTimeLocal": ua.VariantType.String,
                    "UtcOffset": ua.VariantType.Double}
        if key not in self.controls:  # the address space is not built (start-up failed)
            return
        nodes = self.controls[key].ids
        for name, value in values.items():
            if name == "SimTime":
                value = utc(value)
            await self.write_value(nodes[name], value, variants[name])
        if "Status" in values:
            await self.write_value(nodes["StatusCode"], STATUS_CODES[values["Status"]], ua.VariantType.Int32)

    async def publish_kpis(self, building: str | None, kpis: Mapping[str, object]) -> None:
        """Numeric KPIs as read-only Double tags under ``<Campus>[.<Building>].KPIs`` (created on first use)."""
        prefix = self.campus if building is None else f"{self.campus}.{building}"
        folder_id = self._id(f"{prefix}.KPIs")
        folder = self.server.get_node(folder_id)
        if folder_id not in self._kpi_folders:
            folder = await self._folder(self.server.get_node(self._id(prefix)), f"{prefix}.KPIs", "KPIs")
            self._kpi_folders.add(folder_id)
        for name, value in kpis.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            node_id = self._id(f"{prefix}.KPIs.{name}")
            if node_id not in self._kpi_nodes:
                await folder.add_variable(node_id, ua.QualifiedName(name, self.idx), 0.0)
                self._kpi_nodes.add(node_id)
            await self.write_value(node_id, float(value), ua.VariantType.Double)


def _from_client(user) -> bool:
    """Whether a write comes from a network client (asyncua's own are written as its Admin)."""
    return user is not None and user.role != UserRole.Admin


def _source(user) -> str:
    """Who writes, for the log: the client's user name (``anonymous``) or the server itself."""
    return (user.name or "a client") if _from_client(user) else "the server"


def _refusals_key(source: str, code: int) -> str:
    """What ``ThrottledLog`` counts refusals by, as its summary line names them."""
    return f"refused writes by {source} ({ua.StatusCode(code).name})"


def _node_name(node_id: ua.NodeId) -> str:
    """A node id as the log shows it: a tag's dotted path, else the OPC UA text form (quoted when a
    client's string holds characters that could forge a log line)."""
    text = node_id.Identifier if isinstance(node_id.Identifier, str) else node_id.to_string()
    return text if text.isprintable() else repr(text)


def _unsupported_write(item: ua.WriteValue) -> str | None:
    """What a written DataValue carries that the bridge does not take (BadWriteNotSupported), or None:
    only a value and an optional SourceTimestamp are taken."""
    data = item.Value
    if item.IndexRange:
        return f"an IndexRange ({item.IndexRange!r:.40}) on a scalar"
    if data is None or data.Value is None:
        return "a DataValue without a value"
    if data.StatusCode is not None and data.StatusCode.value != ua.StatusCodes.Good:
        return f"a value with status {data.StatusCode.name}"
    if data.ServerTimestamp is not None or data.ServerPicoseconds:
        return "a ServerTimestamp (the server stamps the time it takes a value)"
    return None


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
