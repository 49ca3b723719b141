"""The write guard of the OPC UA server: what a client may write, answered item by item.

A client writes the Value of an input or of InputReady, nothing else (BadNotWritable); a Value with a
StatusCode other than Good, a ServerTimestamp or an IndexRange is refused (BadWriteNotSupported), an
input value that is not a Double scalar (BadTypeMismatch), outside the input's EURange or breaking an
order between inputs (a tag map's ``below``; BadOutOfRange). Each item of a Write is answered on its
own; refusals are logged, a few per client and reason every ``REFUSALS_WINDOW_S``, then counted
(``ThrottledLog``). The inputs of a ``Control.Exchange`` call get the same checks
(``exchange_inputs``), and ``read_inputs`` hands the campus the inputs' numbers.

``WriteGuard`` sees the address space through ``NodeReader`` (``bridge.opcua_adapter.AsyncuaInternals``
in the server), so it can be tried alone against any stand-in.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from asyncua import ua
from asyncua.crypto.permission_rules import UserRole

from bridge.errors import TwinbridgeError
from bridge.opcua_adapter import Forward, ValueSlots
from bridge.ratelimit import ThrottledLog
from bridge.security.server import may_write
from bridge.tagmap import InputOrder, InputTag, follows_weather_file

log = logging.getLogger(__name__)

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


class NodeReader(Protocol):
    """What the guard reads of the address space."""

    def attribute_ids(self, node_id: ua.NodeId) -> Collection[int] | None: ...

    def read_attribute(self, node_id: ua.NodeId, attribute: int = ua.AttributeIds.Value) -> ua.DataValue: ...

    def value_slots(self, node_ids: Sequence[ua.NodeId]) -> ValueSlots: ...

    def watch_writes(self, node_ids: Sequence[ua.NodeId], on_write: Callable[[], None]) -> None: ...


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class WriteGuard:
    """Checks of the values clients write to a building's inputs (and of every other write item)."""

    def __init__(self, nodes: NodeReader):
        self.nodes = nodes
        self.refusals = ThrottledLog(log, REFUSALS_LOGGED, REFUSALS_WINDOW_S)
        self.lock = asyncio.Lock()  # a check of input values and their write are one step
        self.inputs: dict[str, dict[str, ua.NodeId]] = {}  # building -> tag -> input node, in tag-map order
        self._items: dict[ua.NodeId, tuple[str, InputTag]] = {}  # input node -> (building, tag-map entry)
        self._held: dict[ua.NodeId, float] = {}  # input node -> the last number read from it
        self._orders: dict[str, tuple[InputOrder, ...]] = {}
        self._on_input_ready: dict[ua.NodeId, Callable[[], None]] = {}
        self._readers: dict[str, ValueSlots] = {}  # building -> the reader of its input nodes
        self._current: dict[str, dict[str, float]] = {}  # building -> its inputs, read since the last write (all numbers)

    def add_building(self, building: str, inputs: dict[str, tuple[ua.NodeId, InputTag]], orders: tuple[InputOrder, ...],
                     input_ready: ua.NodeId, on_input_ready: Callable[[], None]) -> None:
        """Guard the input nodes of ``building`` (tag -> (node, tag-map entry)) and its ``orders``;
        ``on_input_ready`` is called when a client raises its InputReady node."""
        self.inputs[building] = {tag: node_id for tag, (node_id, _) in inputs.items()}
        for node_id, item in inputs.values():
            self._items[node_id] = (building, item)
            self._held[node_id] = item.default
        self._orders[building] = orders
        self.nodes.watch_writes([node_id for node_id, _ in inputs.values()], lambda: self._current.pop(building, None))
        self._on_input_ready[input_ready] = on_input_ready

    async def write(self, items: list[ua.WriteValue], user, forward: Forward) -> list[ua.StatusCode]:
        """Answer a Write request before asyncua does: a viewer's is refused whole (BadUserAccessDenied),
        a network client's item by item (``_client_refusal``), input values by type, EURange and order
        (``_input_refusal``, ``_disordered_writes``). The items left go on to ``forward`` in one request,
        so a refused item loses none of the others. InputReady raised by a client is noticed."""
        source = _source(user)
        if not may_write(user):
            self.refusals.warning(_refusals_key(source, ua.StatusCodes.BadUserAccessDenied),
                                  "refused a write by %s (role %s)", source, user.twinbridge_role)
            return [ua.StatusCode(ua.StatusCodes.BadUserAccessDenied)] * len(items)
        results: list[ua.StatusCode | None] = []
        for item in items:
            refusal = (self._client_refusal(item) if _from_client(user) else None) or self._input_refusal(item)
            if refusal:
                code, what = refusal
                self.refusals.warning(_refusals_key(source, code), "refused write %s (by %s)", what, source)
            results.append(ua.StatusCode(refusal[0]) if refusal else None)
        codes: list[ua.StatusCode] = []
        async with self.lock:
            inputs = [i for i, r in enumerate(results) if r is None and self._is_input_value(items[i])]
            for i in self._disordered_writes(items, inputs, source):
                results[i] = ua.StatusCode(ua.StatusCodes.BadOutOfRange)
            accepted = [i for i, r in enumerate(results) if r is None]
            if accepted:
                codes = await forward([items[i] for i in accepted])
        for i, code in zip(accepted, codes):
            results[i] = code
            callback = self._on_input_ready.get(items[i].NodeId)
            if callback and code.is_good() and items[i].AttributeId == ua.AttributeIds.Value \
                    and items[i].Value.Value.Value is True:
                callback()
        return results

    def exchange_inputs(self, building: str, arguments: tuple[ua.Variant, ...]) -> dict[str, float]:
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

    def read_inputs(self, building: str) -> dict[str, float]:
        """The values the input tags of ``building`` hold. A tag holding no finite number (the guard lets
        none through; this is its second line) gives the last number read from it, and an error."""
        return dict(self.current_inputs(building))

    def current_inputs(self, building: str) -> Mapping[str, float]:
        """``read_inputs`` without a copy, not to be changed: the very mapping of the last read while no
        input of ``building`` was written since (its nodes tell, ``NodeReader.watch_writes``), so that a
        caller can tell unchanged inputs by identity (``bridge.stepgroup``)."""
        current = self._current.get(building)
        if current is not None:
            return current
        reader = self._readers.get(building)
        if reader is None:
            reader = self._readers[building] = self.nodes.value_slots(list(self.inputs[building].values()))
        values, good = {}, True
        for (tag, node_id), datavalue in zip(self.inputs[building].items(), reader.read()):
            variant = datavalue.Value
            value = variant.Value if variant is not None else None
            if is_number(value) and (math.isfinite(value) or self._follows_weather_file(node_id, value)):
                self._held[node_id] = value = float(value)
            else:
                value, good = self._held[node_id], False
                self.refusals.warning(f"{building}.{tag} holding no number", "%s.%s holds %r, not a number: "
                                      "its last value %g is used", building, tag, variant, value)
            values[tag] = value
        if good:  # else read again (and said again, within ``refusals``' limits) next time
            self._current[building] = values
        return values

    def _range_problem(self, node_id: ua.NodeId, value) -> str | None:
        """Why ``value`` may not be written to input ``node_id`` (not a number, outside EURange), or None.
        A weather input also takes NaN: the weather file's value again (bridge/tagmap.py)."""
        building, item = self._items[node_id]
        if is_number(value) and (item.min <= value <= item.max or self._follows_weather_file(node_id, value)):
            return None
        return f"{building}.{item.tag}: outside EURange [{item.min:g}, {item.max:g}]"

    def _follows_weather_file(self, node_id: ua.NodeId, value: float) -> bool:
        """``value`` hands weather input ``node_id`` back to the weather file (NaN on a weather input)."""
        item = self._items[node_id][1]
        return item.weather is not None and follows_weather_file(value)

    def _disordered_writes(self, items: list[ua.WriteValue], candidates: list[int], source: str) -> set[int]:
        """Indices of the input writes among ``candidates`` that would break a ``below`` order of their
        building, judged on the values the whole request leaves (so its order of writes does not matter);
        ``source`` (who wrote them) is named in the log."""
        refused: set[int] = set()
        while True:
            writes = {i: (*self._items[items[i].NodeId], items[i].Value.Value.Value) for i in candidates
                      if i not in refused and items[i].NodeId in self._items}
            newly = set()
            for building in {b for b, _, _ in writes.values()}:
                written = {item.tag: float(v) for b, item, v in writes.values() if b == building}
                values = self.read_inputs(building) | written
                for order in self._orders[building]:
                    if order.holds(values):
                        continue
                    involved = {i for i, (b, item, _) in writes.items()
                                if b == building and item.tag in (order.lower, order.upper)}
                    self.refusals.warning(_refusals_key(source, ua.StatusCodes.BadOutOfRange),
                                          "refused write to %s of %s: %s (by %s)", building,
                                          ", ".join(sorted({writes[i][1].tag for i in involved})),
                                          order.explain(values), source)
                    newly |= involved
            if not newly:
                return refused
            refused |= newly

    def _is_input_value(self, item: ua.WriteValue) -> bool:
        return item.AttributeId == ua.AttributeIds.Value and item.NodeId in self._items

    def _client_refusal(self, item: ua.WriteValue) -> Refusal | None:
        """Why the bridge refuses one item of a network client's Write, apart from input values, or None.

        Clients write the Value attribute of writable variables (inputs, InputReady), a DataValue with
        a value, no StatusCode other than Good, no ServerTimestamp (the server stamps the time it took
        the value) and no IndexRange (every writable value is a scalar); a SourceTimestamp is kept."""
        attributes, target = self.nodes.attribute_ids(item.NodeId), _node_name(item.NodeId)
        if attributes is None:
            return ua.StatusCodes.BadNodeIdUnknown, f"to {target}: no such node"
        if item.AttributeId not in attributes:
            return ua.StatusCodes.BadAttributeIdInvalid, f"to {target}: it has no attribute {item.AttributeId}"
        if item.AttributeId != ua.AttributeIds.Value:
            return ua.StatusCodes.BadNotWritable, f"to {ua.AttributeIds(item.AttributeId).name} of {target}: read-only"
        access = self.nodes.read_attribute(item.NodeId, ua.AttributeIds.AccessLevel).Value
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
            building, tag = self._items[item.NodeId]
            kind = variant.VariantType.name if variant is not None else "no value"
            return ua.StatusCodes.BadTypeMismatch, f"of {value!r:.80} to {building}.{tag.tag}: {kind}, not a Double"
        problem = self._range_problem(item.NodeId, value)
        return (ua.StatusCodes.BadOutOfRange, f"of {value!r} to {problem}") if problem else None


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
