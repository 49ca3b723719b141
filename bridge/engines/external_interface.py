"""EnergyPlus stepped over ExternalInterface: the BCVTB socket protocol, version 2.

The bridge is the socket server; EnergyPlus, in its own process, connects as the client, sends its
outputs at the end of each zone timestep and waits for the inputs of the next one. Packets are one
line each: ``2 flag nReal nInt nBool simTime r1 .. i1 .. b1 ..``. pyEp supplies the BCVTB folder
with ``variables.dtd`` and the packet encoder; the bridge owns the process and the socket so that
every wait has a timeout (see ../shared/ENERGYPLUS.md for what pyEp does not survive).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import re
import socket
import sys
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path

from pyEp import pyEp

from bridge.config import RunPeriod
from bridge.cosim_files import input_values, write_cosim_files
from bridge.engines.base import EngineFault, Sample
from bridge.engines.energyplus import EnergyPlusEngine, severe_lines
from bridge.tagmap import TagMap

log = logging.getLogger(__name__)

FLAG_MESSAGES = {1: "finished", -1: "unspecified error", -10: "initialisation error", -20: "time-integration error"}
BCVTB_HOME = str(Path(pyEp.__file__).parent / "bcvtb")
FINAL_PACKET = b"2 1 0 0 0 0\n"
# A packet field: a decimal number as C's printf writes it, or nan / inf (what it writes for those).
NUMBER = re.compile(rb"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
COUNT = re.compile(rb"[0-9]{1,9}")  # nReal, nInt, nBool
SHOWN_BYTES = 120  # of a packet quoted in a fault


def encode_inputs(values: list[float], sim_time_s: float) -> bytes:
    """Packet carrying the input values as reals (pyEp's encoder)."""
    return pyEp.ep_process.encode_packet_simple(None, values, sim_time_s).encode()


def decode_packet(line: bytes) -> tuple[int, float, list[float]]:
    """(flag, simulation time in s, real values) of one packet line from EnergyPlus; for a flag other
    than 0 (finished, or an error) only the flag counts: (flag, 0.0, []). Raises EngineFault (naming
    no building: the engine adds its name) for anything but a well-formed packet. A real value may be
    NaN or infinite (EnergyPlus's printf writes them as nan, inf): the bridge publishes it with a Bad
    status; the time must be finite."""
    # EnergyPlus may put stray bytes before an error packet: start at the version field.
    start = line.find(b"2 ")
    parts = line[max(start, 0):].split()
    if len(parts) < 2 or parts[0] != b"2":
        raise _malformed("it does not start with the version, 2", line)
    flag = _number(parts[1], "flag", line)
    if not (math.isfinite(flag) and flag == int(flag)):
        raise _malformed(f"flag {_shown(parts[1])} is not an integer", line)
    if flag != 0:
        return int(flag), 0.0, []
    if len(parts) < 6 or not all(COUNT.fullmatch(p) for p in parts[2:5]):
        raise _malformed("flag 0 needs nReal nInt nBool (whole numbers) and simTime", line)
    n_real, n_int, n_bool = (int(p) for p in parts[2:5])
    if len(parts) != 6 + n_real + n_int + n_bool:
        raise _malformed(f"{n_real}+{n_int}+{n_bool} values announced, {len(parts) - 6} sent", line)
    sim_time_s = _number(parts[5], "simTime", line)
    if not math.isfinite(sim_time_s):
        raise _malformed(f"simTime {_shown(parts[5])} is not finite", line)
    values = [_number(v, f"value {i + 1}", line) for i, v in enumerate(parts[6:])]
    return 0, sim_time_s, values[:n_real]


def _shown(data: bytes) -> str:
    """``data`` for a message, cut to SHOWN_BYTES."""
    return repr(data[:SHOWN_BYTES]) + (" ..." if len(data) > SHOWN_BYTES else "")


def _malformed(reason: str, line: bytes) -> EngineFault:
    return EngineFault(f"malformed packet ({reason}): {_shown(line)}")


def _number(field: bytes, what: str, line: bytes) -> float:
    """A packet field as a number (``NUMBER``)."""
    if not NUMBER.fullmatch(field):
        raise _malformed(f"{what} {_shown(field)} is not a number", line)
    return float(field)


class PacketLines(asyncio.Protocol):
    """The connection EnergyPlus opens, as a sequence of packet lines.

    A Protocol rather than a StreamReader: a line is handed to its waiter from the socket callback
    itself, which saves event-loop turns on every step (the exchange is on the critical path)."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.connected: asyncio.Future = self.loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._lines: collections.deque[bytes] = collections.deque()
        self._waiter: asyncio.Future | None = None
        self._closed = False

    def factory(self) -> asyncio.Protocol:
        """For ``create_server``: the first connection is EnergyPlus, any later one is refused."""
        return self if not self.connected.done() else _Refuse()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        # Request-response of small packets: send each one at once (no Nagle delay).
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            self._lines.append(bytes(self._buffer[: end + 1]))
            del self._buffer[: end + 1]
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done() and (self._lines or self._closed):
            self._waiter.set_result(None)

    def send(self, packet: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionError("socket closed")
        self.transport.write(packet)

    async def next_line(self, timeout_s: float) -> bytes:
        """The next complete line; what is left without a newline if the connection closed (b"" if nothing).
        Raises TimeoutError after ``timeout_s``."""
        if not self._lines and not self._closed:
            waiter = self._waiter = self.loop.create_future()
            timer = self.loop.call_later(timeout_s, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        if self._lines:
            return self._lines.popleft()
        rest, self._buffer = bytes(self._buffer), bytearray()
        return rest


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


class _Refuse(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class ExternalInterfaceEngine(EnergyPlusEngine):
    """One EnergyPlus process co-simulated through ExternalInterface."""

    def __init__(self, name: str, model: Path, weather: Path, tagmap: TagMap, period: RunPeriod, workdir: Path,
                 start_timeout_s: float = 300.0, step_timeout_s: float = 60.0):
        super().__init__(name, model, weather, tagmap, period, workdir, start_timeout_s, step_timeout_s)
        self.process: asyncio.subprocess.Process | None = None
        self._server: asyncio.Server | None = None
        self._pending: PacketLines | None = None  # launched, EnergyPlus not connected yet
        self._connection: PacketLines | None = None
        self._sim_time_s = 0.0

    @property
    def output_dir(self) -> Path:
        return self.workdir / "output"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def launch(self) -> None:
        self._pending = PacketLines()
        self._server = await self._pending.loop.create_server(self._pending.factory, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        idf_path = write_cosim_files(self.workdir, self.model, self.tagmap, self.period, port)
        env = dict(os.environ, BCVTB_HOME=BCVTB_HOME)
        with open(self.workdir / "engine.log", "wb") as engine_log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge.engines.eplus_child",
                "-w", str(self.weather), "-d", str(self.output_dir), str(idf_path),
                cwd=self.workdir, env=env, stdout=engine_log, stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
            )
        log.info("%s: EnergyPlus started (pid %s), waiting for it on port %s", self.name, self.process.pid, port)

    async def start(self) -> Sample:
        """The outputs at the start of the run period. Sizing and warm-up come before them: connecting
        and the first packet share ``start_timeout_s``."""
        deadline = time.monotonic() + self.start_timeout_s
        if self.process is None:
            await self.launch()
        lines = self._pending
        exited = asyncio.ensure_future(self.process.wait())
        try:
            done, _ = await asyncio.wait({lines.connected, exited}, timeout=deadline - time.monotonic(),
                                         return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the bridge is shutting down while EnergyPlus starts
            exited.cancel()
            await self.stop()
            raise
        exited.cancel()
        if lines.connected not in done:
            code = self.process.returncode
            await self.stop()
            reason = f"exited with code {code}" if code is not None else f"did not connect within {self.start_timeout_s:.0f} s"
            raise EngineFault(f"{self.name}: EnergyPlus {reason}", severe_lines(self.output_dir / "eplusout.err"))
        self._connection, self._pending = lines, None
        self._server.close()
        sample = await self._receive(deadline - time.monotonic(),
                                     f"sent no first packet within {self.start_timeout_s:.0f} s of its start")
        if sample is None:
            raise EngineFault(f"{self.name}: EnergyPlus finished before the first timestep")
        return sample

    def step(self, inputs: Mapping[str, float]) -> Awaitable[Sample | None]:
        """Send the inputs now (EnergyPlus starts computing at once); the returned coroutine gives the outputs."""
        if self._connection is None:
            return self._failed("is not running")
        values = input_values(self.tagmap, inputs)
        try:
            self._connection.send(encode_inputs(values, self._sim_time_s))
        except ConnectionError as exc:
            return self._failed(f"connection lost while sending inputs ({exc})")
        return self._receive(self.step_timeout_s, f"no answer within {self.step_timeout_s:.0f} s")

    async def _failed(self, what: str) -> None:
        raise await self._fault(what)

    async def _receive(self, timeout_s: float, late: str) -> Sample | None:
        """The next packet's outputs (None at the end); a fault saying ``late`` after ``timeout_s``."""
        try:
            line = await self._connection.next_line(timeout_s)
        except asyncio.TimeoutError:
            raise await self._fault(late) from None
        if not line.endswith(b"\n"):
            raise await self._fault("connection closed (process died?)")
        try:
            flag, sim_time_s, values = decode_packet(line)
        except EngineFault as exc:
            raise await self._fault(f"sent a {exc}") from None
        if flag == 1:
            await self._finish()
            return None
        if flag != 0:
            raise await self._fault(f"sent flag {flag} ({FLAG_MESSAGES.get(flag, 'unknown')})")
        if len(values) != len(self.tagmap.outputs):
            raise await self._fault(f"sent {len(values)} values, expected {len(self.tagmap.outputs)}")
        end_s = self.period.steps * self.period.step_s
        if not 0.0 <= sim_time_s <= end_s:
            raise await self._fault(f"sent simTime {sim_time_s:g} s, outside the run period (0 to {end_s:g} s): "
                                    f"{_shown(line)}")
        self._sim_time_s = sim_time_s
        outputs = {item.tag: item.convert(v) for item, v in zip(self.tagmap.outputs, values)}
        return Sample(sim_time_s, outputs)

    async def _finish(self) -> None:
        """End-of-run handshake: answer flag 1, close, and let the process exit."""
        with contextlib.suppress(ConnectionError):
            self._connection.send(FINAL_PACKET)
        await self.stop(grace_s=30)
        log.info("%s: EnergyPlus finished", self.name)

    async def _fault(self, what: str) -> EngineFault:
        await self.stop(grace_s=5)
        code = self.process.returncode if self.process else None
        suffix = f"; process exit code {code}" if code is not None else ""
        return EngineFault(f"{self.name}: EnergyPlus {what}{suffix}", severe_lines(self.output_dir / "eplusout.err"))

    async def stop(self, grace_s: float = 0.0) -> None:
        if self._connection is not None:
            if self._connection.transport is not None:
                self._connection.transport.close()  # buffered packets (the final one) are still sent
            self._connection = None
        if self._server is not None:
            self._server.close()
            self._server = None
        if self.process is not None and self.process.returncode is None:
            try:
                await asyncio.wait_for(self.process.wait(), grace_s) if grace_s else None
            except asyncio.TimeoutError:
                pass
            if self.process.returncode is None:
                self.process.kill()
                await asyncio.wait_for(self.process.wait(), 10)
