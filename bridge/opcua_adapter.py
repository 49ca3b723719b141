"""Every use the bridge makes of asyncua's internals, in one place.

Written against asyncua 2.1. Nothing here is asyncua's public API (``Server``'s methods, ``Node``, the
``ua`` types, the user-manager and crypto modules); each function says what it reaches and why the
public API does not do. An upgrade of asyncua is checked here (and by tests/test_write_guard.py,
tests/test_security.py and tests/test_bridge_units.py, which run through every one of them).

- ``AsyncuaInternals``: one server's ``iserver`` (the internal server behind ``Server``):
  - ``intercept_writes``: the Write service (``iserver.attribute_service.write``), wrapped so the
    bridge's write guard answers each item before asyncua writes the rest (asyncua has per-node write
    callbacks only, which cannot refuse one item of a request and keep the others);
  - ``attribute_ids``, ``read_attribute``: the address space (``iserver.aspace``) read directly, as
    the guard does for each written item and the campus for each step's inputs;
  - ``set_value``: a node's value slot (``AttributeValue``), set and its ``datachange_callbacks``
    called: ``write_attribute_value`` minus its per-call lookup and type check (~1.5 us against ~5 us
    per value);
  - ``value_slots``: the value slots of a group of nodes (a building's inputs, a Control tag of every
    building), read or set together without a lookup per node (``ValueSlots``, ~0.2 us per node);
  - ``watch_writes``: a callback whenever the value of one of a group of nodes is stored, whatever
    the path (a building's inputs: the campus reads them again only then);
  - ``value_block``: the values of a group of nodes (a building's outputs) served from one row per step
    (``ValueBlock``): each node's DataValue is made only when read or for a node someone monitors, through
    the slot's ``value_callback``, which asyncua's Read, monitored-item creation and data-change
    sampling all go through (``read_attribute_value``);
  - ``add_nodes``: nodes added in one call through the internal session (``iserver.isession``), with
    their attributes as given (``Node.add_variable`` cannot set a type definition without
    instantiating it, ~10 ms per tag);
  - ``set_history_storage``: the history manager's storage (``iserver.history_manager``), which
    HistoryRead is answered from; ``Server.historize_node_data_change`` would record values itself
    (a storage is a ``HistoryStorageInterface``, from asyncua's server package, imported here);
  - ``cache_standard_nodes``: the standard address space saved as a shelf (``aspace.make_aspace_shelf``),
    which ``Server.init(shelf_file=...)`` reads at later starts (~1 s of CPU saved);
  - ``stop_clock``: the server-clock task (``iserver.time_task``) ended at once; ``Server.stop``
    waits up to 1 s for it;
  - ``connected_clients``: the binary server's connections (``bserver.clients``);
  - ``set_user_manager``, ``certificate``: the user manager and certificate of ``iserver`` (``Server``
    takes a user manager only when it is constructed, and has no getter for its certificate).
- ``check_passwords_before_activation``: ``UaProcessor._process_message`` wrapped so a password is
  checked off the event loop before asyncua activates a session (asyncua asks its user manager
  synchronously and has no asynchronous hook).
- ``subscribe_every_sample`` (client side): ``Subscription._subscribe`` with a data-change filter that
  triggers on the timestamp too, so that a step repeating the previous value is still reported
  (``Subscription.subscribe_data_change`` takes no filter).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.utils import Buffer, ServiceError
from asyncua.server.address_space import AddressSpace, AttributeValue
from asyncua.server.history import HistoryStorageInterface
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import struct_from_binary

log = logging.getLogger(__name__)

# What a Write is answered with: given the items, the writing session's user (None: the server itself)
# and the function writing a subset of the items through asyncua, one status code per item.
Forward = Callable[[list[ua.WriteValue]], Awaitable[list[ua.StatusCode]]]
WriteHandler = Callable[[list[ua.WriteValue], Any, Forward], Awaitable[list[ua.StatusCode]]]


class AsyncuaInternals:
    """What the bridge does through the internals of one asyncua ``Server`` (module docstring)."""

    def __init__(self, server: Server):
        self.server = server
        self._value_slots: dict[ua.NodeId, AttributeValue] = {}

    def intercept_writes(self, handler: WriteHandler) -> None:
        """Have ``handler`` answer every Write request, network clients' and the server's own."""
        service = self.server.iserver.attribute_service
        forward = service.write

        async def write(params: ua.WriteParameters, user=None, **kwargs) -> list[ua.StatusCode]:
            async def through_asyncua(items: list[ua.WriteValue]) -> list[ua.StatusCode]:
                subset = ua.WriteParameters(NodesToWrite=items)
                return await (forward(subset, user=user) if user is not None else forward(subset))

            return await handler(params.NodesToWrite, user, through_asyncua)

        service.write = write

    async def write(self, items: Sequence[ua.WriteValue], user) -> list[ua.StatusCode]:
        """A Write request as a session of ``user`` sends it (tests: what a network client gets)."""
        params = ua.WriteParameters(NodesToWrite=list(items))
        return await self.server.iserver.attribute_service.write(params, user=user)

    def attribute_ids(self, node_id: ua.NodeId) -> Collection[int] | None:
        """The attributes node ``node_id`` has, or None when there is no such node."""
        node = self.server.iserver.aspace.get(node_id)
        return None if node is None else node.attributes

    def read_attribute(self, node_id: ua.NodeId, attribute: int = ua.AttributeIds.Value) -> ua.DataValue:
        return self.server.iserver.aspace.read_attribute_value(node_id, attribute)

    async def set_value(self, node_id: ua.NodeId, data: ua.DataValue) -> None:
        """Store ``data`` in the node's Value attribute and call its data-change callbacks (subscriptions)."""
        slot = self._slot(node_id)
        slot.value, slot.value_callback = data, None  # as asyncua's write: a value served by callback no longer is
        if slot.datachange_callbacks:
            await _changed(node_id, slot, data)

    def _slot(self, node_id: ua.NodeId) -> AttributeValue:
        slot = self._value_slots.get(node_id)
        if slot is None:
            slot = self._value_slots[node_id] = self.server.iserver.aspace[node_id].attributes[ua.AttributeIds.Value]
        return slot

    def value_slots(self, node_ids: Sequence[ua.NodeId]) -> "ValueSlots":
        return ValueSlots([self._slot(n) for n in node_ids], list(node_ids), self.read_attribute)

    def watch_writes(self, node_ids: Sequence[ua.NodeId], on_write: Callable[[], None]) -> None:
        """Have ``on_write()`` called whenever the Value of one of ``node_ids`` is stored, by whatever path
        (asyncua's Write service or ``write_attribute_value``, ``set_value``, ``ValueSlots.set``)."""
        for node_id in node_ids:
            slot = self._slot(node_id)
            if not isinstance(slot, _WatchedSlot):
                value = slot.__dict__.pop("value")  # the class's property holds it from now on
                slot.__class__, slot.on_write = _WatchedSlot, []
                slot.stored = value
            slot.on_write.append(on_write)

    def value_block(self, node_ids: Sequence[ua.NodeId], make: Callable[[int, object], ua.DataValue]) -> "ValueBlock":
        """The nodes of ``node_ids`` served by a ``ValueBlock`` whose DataValues ``make`` builds."""
        return ValueBlock([self._slot(n) for n in node_ids], list(node_ids), make)

    async def add_nodes(self, items: list[ua.AddNodesItem]) -> None:
        """Add nodes as the server itself; raise the status of the first one refused."""
        for result in await self.server.iserver.isession.add_nodes(items):
            result.StatusCode.check()

    def set_history_storage(self, storage: HistoryStorageInterface) -> None:
        self.server.iserver.history_manager.set_storage(storage)

    async def cache_standard_nodes(self, shelf: Path) -> None:
        """Save the standard address space of an initialised server in ``shelf`` (``write_shelf``),
        in a thread; raise OSError."""
        await asyncio.to_thread(write_shelf, self.server.iserver.aspace, shelf)

    async def stop_clock(self) -> None:
        """End asyncua's server-clock task now: it sleeps 1 s between updates and ``Server.stop`` waits for it."""
        clock = getattr(self.server.iserver, "time_task", None)
        if clock is not None:
            clock.cancel()
            self.server.iserver.time_task = None
            with contextlib.suppress(asyncio.CancelledError):
                await clock

    def connected_clients(self) -> int:
        return len(self.server.bserver.clients) if self.server.bserver is not None else 0

    def set_user_manager(self, manager: object) -> None:
        self.server.iserver.set_user_manager(manager)

    def certificate(self):
        """The server's certificate (cryptography's x509.Certificate), once loaded; else None."""
        return self.server.iserver.certificate


async def _changed(node_id: ua.NodeId, slot: AttributeValue, data: ua.DataValue) -> None:
    """Call the data-change callbacks of a node's value slot (its subscriptions' monitored items)."""
    for handle, callback in list(slot.datachange_callbacks.items()):
        try:
            await callback(handle, data)
        except Exception:
            log.exception("data-change callback of %s failed", node_id)


class ValueBlock:
    """The Value attributes of a fixed group of nodes (one building's outputs), set together once per step
    from one row (any object ``make`` understands): ``publish`` only notes the row, and returns the nodes
    that have data-change callbacks (someone monitors them), whose DataValues (``make(index, row)``)
    ``notify`` builds and hands to them. Any other node's DataValue is built when first read (the slot's
    ``value_callback``, which asyncua reads through), then kept until the next row: every read and every
    notification of a step sees the same DataValue, as if it had been stored in the slot. A step costs
    the same whatever the number of nodes: the slots are the block's own (``_BlockSlot``), so that a
    write to one (asyncua's, the bridge's own) is noted as it happens, and the monitored ones are known
    (``_Monitors``, which asyncua adds and removes data-change callbacks through)."""

    def __init__(self, slots: list[AttributeValue], node_ids: list[ua.NodeId], make: Callable[[int, object], ua.DataValue]):
        self._slots, self._node_ids, self._make = slots, node_ids, make
        self._rows: list[object] = [None] * len(slots)  # per node: its row, or the DataValue built from it
        # what each node held before its first row (a node taken from another block: what that one serves)
        self._kept = [slot.block_index[0]._read(slot.block_index[1]) if isinstance(slot, _BlockSlot) else slot.value
                      for slot in slots]
        self.read_callbacks = [functools.partial(self._read, i) for i in range(len(slots))]
        self.written: set[int] = set()  # indices of the nodes written since the last row (they serve that value)
        self.monitored: set[int] = set()  # indices of the nodes with data-change callbacks
        for i, slot in enumerate(slots):
            slot.value = None
            slot.datachange_callbacks = _Monitors(slot.datachange_callbacks, self.monitored, i)
            if not isinstance(slot, _BlockSlot):
                del slot.value_callback  # the class's property serves it from now on
                slot.__class__ = _BlockSlot
            slot.block_index = (self, i)

    def _read(self, index: int, node_id: ua.NodeId | None = None, attribute: int | None = None) -> ua.DataValue:
        row = self._rows[index]
        if row is None:
            return self._kept[index]
        if not isinstance(row, ua.DataValue):
            row = self._rows[index] = self._make(index, row)
        return row

    def publish(self, row: object, indices: Iterable[int] | None = None) -> list[int]:
        """``row`` is the value of the nodes at ``indices`` (None: all of them); the indices of those that
        are monitored, for ``notify``."""
        if indices is None:
            self._rows = [row] * len(self._slots)
            self.written.clear()
        else:
            indices = list(indices)
            for i in indices:
                self._rows[i] = row
            self.written.difference_update(indices)
        if not self.monitored:
            return []
        return sorted(self.monitored if indices is None else self.monitored.intersection(indices))

    async def notify(self, indices: list[int]) -> None:
        """Call the data-change callbacks of the nodes at ``indices`` with their current DataValues."""
        for i in indices:
            await _changed(self._node_ids[i], self._slots[i], self._read(i))


class _BlockSlot(AttributeValue):
    """A value slot of a ``ValueBlock`` (its class once the block takes it): served by the block's
    callback, except after a write (asyncua's writes store the value and drop the callback), which
    it serves until the block's next row."""

    block_index: tuple[ValueBlock, int]

    @property
    def value_callback(self) -> Callable[..., ua.DataValue] | None:
        block, index = self.block_index
        return None if index in block.written else block.read_callbacks[index]

    @value_callback.setter
    def value_callback(self, callback: Callable[..., ua.DataValue] | None) -> None:
        block, index = self.block_index
        if callback is None:
            block.written.add(index)
        elif callback is block.read_callbacks[index]:
            block.written.discard(index)
        else:
            raise ValueError("the value callback of a ValueBlock's node is the block's")


class _WatchedSlot(AttributeValue):
    """A value slot (its class once ``AsyncuaInternals.watch_writes`` watches it) that calls its
    ``on_write`` callbacks whenever its value is stored."""

    stored: ua.DataValue | None
    on_write: list[Callable[[], None]]

    @property
    def value(self) -> ua.DataValue | None:
        return self.stored

    @value.setter
    def value(self, data: ua.DataValue | None) -> None:
        self.stored = data
        for callback in self.on_write:
            callback()


class _Monitors(dict):
    """A value slot's data-change callbacks (handle -> callback), as asyncua keeps them, which also keeps
    ``monitored`` (the indices of a ``ValueBlock``'s nodes that have any) current."""

    def __init__(self, callbacks: dict, monitored: set[int], index: int):
        super().__init__(callbacks)
        self._monitored, self._index = monitored, index
        if self:
            monitored.add(index)

    def __setitem__(self, handle, callback) -> None:
        super().__setitem__(handle, callback)
        self._monitored.add(self._index)

    def __delitem__(self, handle) -> None:
        super().__delitem__(handle)
        self._forget()

    def pop(self, handle, *default):
        value = super().pop(handle, *default)
        self._forget()
        return value

    def clear(self) -> None:
        super().clear()
        self._forget()

    def _forget(self) -> None:
        if not self:
            self._monitored.discard(self._index)


class ValueSlots:
    """The Value attributes of a fixed group of nodes (one building's inputs, one Control tag of every
    building), read or set without a lookup per node."""

    def __init__(self, slots: list[AttributeValue], node_ids: list[ua.NodeId],
                 read_attribute: Callable[[ua.NodeId], ua.DataValue]):
        self._slots, self._node_ids, self._read_attribute = slots, node_ids, read_attribute

    def read(self) -> list[ua.DataValue]:
        """The current DataValue of each node, in order (through asyncua's read when a slot serves it by callback)."""
        return [slot.value if slot.value_callback is None else self._read_attribute(node_id)
                for slot, node_id in zip(self._slots, self._node_ids)]

    async def set(self, data: ua.DataValue) -> None:
        """``data`` in every node, as ``AsyncuaInternals.set_value`` sets one."""
        for slot, node_id in zip(self._slots, self._node_ids):
            slot.value, slot.value_callback = data, None
            if slot.datachange_callbacks:
                await _changed(node_id, slot, data)


def write_shelf(aspace: AddressSpace, shelf: Path) -> None:
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


ACTIVATE_SESSION = ua.NodeId(ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary)


def check_passwords_before_activation(manager_type: type) -> None:
    """Have asyncua's servers whose user manager is a ``manager_type`` await its
    ``check_password(address, user name, password) -> bool`` before they activate a session with a
    user name (once per process; servers with another user manager are left as they are).

    asyncua 2.1 asks its user manager synchronously (``get_user`` inside
    ``InternalSession.activate_session``) and has no asynchronous hook, so the processing of
    requests (``UaProcessor._process_message``, one task per connection) is wrapped: an
    ActivateSession carrying a user name first has its password checked, awaited off the event
    loop; a refused one is answered BadUserAccessDenied, as get_user's refusal would be."""
    original = UaProcessor._process_message
    if getattr(original, "twinbridge_checks_passwords", False):
        return

    async def process_message(processor: UaProcessor, typeid: ua.NodeId, requesthdr: ua.RequestHeader,
                              seqhdr: object, body: Buffer) -> object:
        manager = processor.iserver.user_manager
        if typeid == ACTIVATE_SESSION and isinstance(manager, manager_type):
            login = _user_name_login(processor, requesthdr, body.copy())
            if login is not None and not await manager.check_password(_address(processor.name), *login):
                raise ServiceError(ua.StatusCodes.BadUserAccessDenied)
        return await original(processor, typeid, requesthdr, seqhdr, body)

    process_message.twinbridge_checks_passwords = True
    UaProcessor._process_message = process_message


def _user_name_login(processor: UaProcessor, requesthdr: ua.RequestHeader, body: Buffer) -> tuple[str, str] | None:
    """(user name, password) of an ActivateSession request, decrypted as asyncua will; None when it
    carries no user name, or anything asyncua will refuse by itself (no such session, a token it
    does not take or cannot decrypt)."""
    try:
        token = struct_from_binary(ua.ActivateSessionParameters, body).UserIdentityToken
        session = processor.session or processor.iserver.lookup_external_session(requesthdr.AuthenticationToken)
        taken = isinstance(token, ua.UserNameIdentityToken) and isinstance(token, processor.iserver.supported_tokens)
        if not taken or session is None:
            return None
        username, password = processor.iserver.decrypt_user_token(session, token)
    except Exception:  # asyncua's own handling of the request answers it
        return None
    return (username, password or "") if username else None


def _address(peer: object) -> str:
    """The client's IP address from a transport's peer name ((host, port, ...) for TCP)."""
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


async def subscribe_every_sample(subscription, nodes: list, queue_size: int) -> list:
    """Monitor the Value of ``nodes`` in ``subscription`` (an asyncua client ``Subscription``), reporting
    every new sample, a repeated value with a new timestamp included; per node the monitored-item
    handle, or the ``ua.StatusCode`` the server refused it with."""
    trigger = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
    return await subscription._subscribe(nodes, ua.AttributeIds.Value, mfilter=trigger, queuesize=queue_size)
