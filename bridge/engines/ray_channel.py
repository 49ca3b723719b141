"""The step channel between the head and a Ray node actor (docs/scale.md, "Step channel").

A Ray actor call costs the head 0.5-1.3 ms of CPU per node and step, most of the head's cost at 64
buildings per node (docs/scale.md); one request and its answer over a TCP connection cost it about 0.13 ms
(measured side by side, ``bench/bench_scale.py``'s bare calls). So the steps of a node's buildings go over a
connection of their own, and Ray does all the rest: it places, starts, watches, kills and relaunches the node
actors and carries their other calls (start, replay, stop).

Wire: the node actor listens on its node's Ray address, on a port the system chooses (``serve``), and the head
learns the address and hands it a fresh 32-byte token in one Ray call (Ray's own authenticated channel). The
head connects and sends the token; the actor closes a connection whose first bytes are not that token
(compared in constant time) before it reads anything else. Then each step is one frame each way, a 4-byte
big-endian length and a pickle: the request ``(changed, names)``, the answer ``(True, answer)`` or
``(False, what failed)``. A frame longer than MAX_FRAME_BYTES is refused. When Ray's own traffic is TLS
(``RAY_USE_TLS=1`` with ``RAY_TLS_SERVER_CERT``, ``RAY_TLS_SERVER_KEY``, ``RAY_TLS_CA_CERT`` on every node, Ray's
"TLS authentication" settings), so is the channel's, with the same files and both ends' certificates checked
against that CA (``tls_contexts``); otherwise it trusts its network as Ray does (docs/scale.md, "Securing it").
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import pickle
import os
import secrets
import ssl
import struct
from collections.abc import Awaitable, Callable

from bridge.engines.base import EngineFault

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
MAX_FRAME_BYTES = 64 * 2**20  # far above a step of hundreds of buildings (tens of kB)
OPEN_TIMEOUT_S = 10.0  # to learn the actor's address and connect, or for a connection to present its token
_LENGTH = struct.Struct("!I")


class ChannelLost(EngineFault):
    """The step channel broke (its actor, its node or the network gone): the actor is treated as lost."""


def frame(message: object) -> bytes:
    """``message`` as one frame: its pickle's length (4 bytes, big-endian), then the pickle."""
    payload = pickle.dumps(message, protocol=5)
    if len(payload) > MAX_FRAME_BYTES:
        raise ValueError(f"a step channel frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    return _LENGTH.pack(len(payload)) + payload


async def read_frame(reader: asyncio.StreamReader) -> object:
    """The next frame's message; ValueError for a length above MAX_FRAME_BYTES, IncompleteReadError when the
    stream ends before the frame does."""
    (length,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
    if length > MAX_FRAME_BYTES:
        raise ValueError(f"a step channel frame announces {length} bytes, more than {MAX_FRAME_BYTES}")
    return pickle.loads(await reader.readexactly(length))


def tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext] | None:
    """(server, client) TLS contexts from Ray's TLS settings when ``RAY_USE_TLS`` is on, else None: each end
    presents ``RAY_TLS_SERVER_CERT`` / ``RAY_TLS_SERVER_KEY`` and requires the other's to be signed by
    ``RAY_TLS_CA_CERT`` (mutual TLS, as Ray's gRPC; host names are not checked: the certificate is the
    cluster's, not a node's)."""
    if os.environ.get("RAY_USE_TLS", "0").lower() not in ("1", "true"):
        return None
    names = ("RAY_TLS_SERVER_CERT", "RAY_TLS_SERVER_KEY", "RAY_TLS_CA_CERT")
    cert, key, ca = (os.environ.get(name, "") for name in names)
    contexts = []
    for purpose in (ssl.PROTOCOL_TLS_SERVER, ssl.PROTOCOL_TLS_CLIENT):
        context = ssl.SSLContext(purpose)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_cert_chain(cert, key)
            context.load_verify_locations(ca)
        except OSError as exc:  # ssl.SSLError too: an OSError, which the head takes as "no channel"
            files = ", ".join(f"{name} = {os.environ.get(name)!r}" for name in names)
            raise OSError(f"step channel TLS (RAY_USE_TLS is on): cannot load {files}: {exc.strerror or exc}") from None
        contexts.append(context)
    return contexts[0], contexts[1]


Step = Callable[[dict, "list[str] | None"], Awaitable[object]]


async def serve(step: Step, token: bytes, host: str) -> tuple[asyncio.AbstractServer, tuple[str, int]]:
    """In the node actor: listen on ``host`` for the head's connections, answer each request with
    ``step(changed, names)``; the server and its address."""

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                presented = await reader.readexactly(len(token))
            if not hmac.compare_digest(presented, token):
                log.warning("step channel: refused a connection from %s (wrong token)", peer)
                return
            while True:
                try:
                    changed, names = await read_frame(reader)
                except asyncio.IncompleteReadError:
                    return  # the head closed it
                try:
                    answer = (True, await step(changed, names))
                except Exception as exc:  # a step breaking its contract: the head faults the node's buildings
                    answer = (False, f"{type(exc).__name__}: {exc}")
                writer.write(frame(answer))
                await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, pickle.UnpicklingError) as exc:
            log.warning("step channel: connection from %s closed: %s", peer, exc or type(exc).__name__)
        finally:
            writer.close()

    tls = tls_contexts()
    server = await asyncio.start_server(connection, host, 0, ssl=tls and tls[0],
                                        ssl_handshake_timeout=OPEN_TIMEOUT_S if tls else None)
    return server, (host, server.sockets[0].getsockname()[1])


class StepChannel:
    """The head's end of one node actor's step channel: one step in flight at a time, in the order asked."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str):
        self._reader, self._writer, self.address = reader, writer, address
        self._turn = asyncio.Lock()
        self.closed = False

    @classmethod
    async def open(cls, actor) -> "StepChannel":
        """Ask ``actor`` (a NodeActor handle) to listen and connect to it, within OPEN_TIMEOUT_S (TimeoutError;
        OSError when its address cannot be reached; Ray's own error when the actor is gone)."""
        token, tls = secrets.token_bytes(TOKEN_BYTES), tls_contexts()
        async with asyncio.timeout(OPEN_TIMEOUT_S):
            host, port = await actor.open_channel.remote(token)
            reader, writer = await asyncio.open_connection(host, port, ssl=tls and tls[1])
        writer.write(token)
        return cls(reader, writer, f"{host}:{port}")

    async def step(self, changed: dict, names: list[str] | None) -> object:
        """The actor's answer to one step; EngineFault when its step failed there, ChannelLost when the
        connection broke. Cancelled or broken mid-step, the channel closes (its stream would be out of step)."""
        async with self._turn:
            if self.closed:
                raise ChannelLost(f"step channel to {self.address} is closed")
            try:
                self._writer.write(frame((changed, names)))
                done, answer = await read_frame(self._reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, pickle.UnpicklingError) as exc:
                self.close()
                raise ChannelLost(f"step channel to {self.address} broke: {exc or type(exc).__name__}") from None
            except BaseException:
                self.close()
                raise
        if not done:
            raise EngineFault(f"step failed in its Ray actor: {answer}")
        return answer

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._writer.close()
