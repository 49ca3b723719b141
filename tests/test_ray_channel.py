"""The step channel between the head and a Ray node actor (bridge/engines/ray_channel.py): frames, the token,
faults and broken connections, on loopback without Ray; and a node group's steps going over it or, when it
cannot be opened, as Ray calls (a stand-in actor). The real cluster's runs are tests/test_ray_executor.py."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ray = pytest.importorskip("ray")
from bridge.engines import ray_channel  # noqa: E402
from bridge.engines.base import EngineFault  # noqa: E402
from bridge.engines.ray_actor import RayNodeGroup  # noqa: E402
from bridge.engines.ray_channel import ChannelLost, StepChannel, frame, read_frame, serve  # noqa: E402

TOKEN = b"t" * ray_channel.TOKEN_BYTES
inputs = st.dictionaries(st.text(min_size=1, max_size=8),
                         st.dictionaries(st.text(min_size=1, max_size=8), st.floats(width=64), max_size=4), max_size=6)
messages = st.tuples(inputs, st.none() | st.lists(st.text(max_size=8), max_size=6))


def read_all(data: bytes, cuts: list[int]) -> list[object]:
    """The frames of ``data`` fed to a stream reader in pieces cut at ``cuts``."""

    async def run() -> list[object]:
        reader = asyncio.StreamReader()
        edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
        for a, b in zip(edges, edges[1:]):
            reader.feed_data(data[a:b])
        reader.feed_eof()
        found = []
        while True:
            try:
                found.append(await read_frame(reader))
            except asyncio.IncompleteReadError as exc:
                assert not exc.partial  # the stream ended between frames
                return found

    return asyncio.run(run())


@settings(max_examples=60, deadline=None)
@given(st.lists(messages, min_size=1, max_size=4), st.lists(st.integers(min_value=0), max_size=8))
def test_frames_cut_anywhere_give_back_each_message(sent, cuts):
    received = read_all(b"".join(frame(m) for m in sent), cuts)
    assert repr(received) == repr(sent)  # NaN-safe, and tells -0.0 from 0.0


@settings(max_examples=30, deadline=None)
@given(messages, st.integers(min_value=1, max_value=40))
def test_a_frame_cut_short_is_an_incomplete_read(message, short):
    data = frame(message)
    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(read_from(data[:max(0, len(data) - short)]))


def test_a_frame_announcing_more_than_the_limit_is_refused_before_it_is_read():
    with pytest.raises(ValueError, match="more than"):
        asyncio.run(read_from((ray_channel.MAX_FRAME_BYTES + 1).to_bytes(4, "big")))


async def read_from(data: bytes) -> object:
    """The first frame of a stream holding ``data``."""
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return await read_frame(reader)


async def served(step) -> tuple[asyncio.AbstractServer, tuple[str, int]]:
    return await serve(step, TOKEN, "127.0.0.1")


async def connected(address: tuple[str, int], token: bytes = TOKEN) -> StepChannel:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(token)
    return StepChannel(reader, writer, f"{address[0]}:{address[1]}")


def test_steps_are_answered_in_order_and_a_failing_step_is_an_engine_fault():
    calls = []

    async def step(changed, names):
        calls.append((changed, names))
        if changed.get("B1", {}).get("x") == -1.0:
            raise RuntimeError("engine broke")
        return 600.0 * len(calls), names

    async def run():
        server, address = await served(step)
        channel = await connected(address)
        answers = await asyncio.gather(*(channel.step({"B1": {"x": float(i)}}, None if i else ["B1"])
                                         for i in range(5)))
        with pytest.raises(EngineFault, match="RuntimeError: engine broke") as fault:
            await channel.step({"B1": {"x": -1.0}}, None)
        assert not isinstance(fault.value, ChannelLost)
        after = await channel.step({}, None)  # the channel goes on after a step failed
        channel.close()
        server.close()
        return answers, after

    answers, after = asyncio.run(run())
    assert answers == [(600.0, ["B1"])] + [(600.0 * i, None) for i in range(2, 6)]
    assert [c[0]["B1"]["x"] for c in calls[:5]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert after == (4200.0, None)


def test_a_connection_without_the_token_is_closed_before_anything_is_unpickled():
    steps = []

    async def step(changed, names):
        steps.append(changed)
        return 0.0, names

    async def run():
        server, address = await served(step)
        wrong = await connected(address, b"x" * ray_channel.TOKEN_BYTES)
        with pytest.raises(ChannelLost, match="broke"):
            await wrong.step({"B1": {"x": 1.0}}, ["B1"])
        right = await connected(address)
        answer = await right.step({"B1": {"x": 2.0}}, ["B1"])
        right.close()
        server.close()
        return answer

    assert asyncio.run(run()) == (0.0, ["B1"])
    assert steps == [{"B1": {"x": 2.0}}]


def test_a_cancelled_step_closes_the_channel_and_a_connection_lost_mid_step_is_channel_lost():
    async def run():
        hold = asyncio.Event()

        async def step(changed, names):
            await hold.wait()
            return 0.0, names

        server, address = await served(step)
        channel = await connected(address)
        pending = asyncio.ensure_future(channel.step({}, ["B1"]))
        await asyncio.sleep(0.05)
        pending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pending
        assert channel.closed  # its stream would be a frame behind
        with pytest.raises(ChannelLost, match="closed"):
            await channel.step({}, None)
        server.close()

        async def dies_mid_step(reader, writer):  # an actor killed while it steps: its end closes
            await reader.readexactly(ray_channel.TOKEN_BYTES)
            await read_frame(reader)
            writer.close()

        killed = await asyncio.start_server(dies_mid_step, "127.0.0.1", 0)
        broken = await connected(killed.sockets[0].getsockname())
        with pytest.raises(ChannelLost, match="broke"):
            await asyncio.wait_for(broken.step({}, ["B1"]), 5)
        assert broken.closed
        killed.close()

    asyncio.run(run())


class StandInActor:
    """A node actor's handle as the group uses it: ``open_channel.remote`` and ``step.remote``, answered in
    this process (``serve`` on loopback, or an address where nothing listens)."""

    def __init__(self, listen: bool):
        self.listen, self.servers, self.ray_steps = listen, [], []
        self.open_channel = SimpleNamespace(remote=self._open)
        self.step = SimpleNamespace(remote=self._ray_step)

    async def _answer(self, changed, names):
        return 600.0, names

    async def _open(self, token: bytes):
        if not self.listen:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                return "127.0.0.1", probe.getsockname()[1]  # closed again: nothing listens there
        server, address = await serve(self._answer, token, "127.0.0.1")
        self.servers.append(server)
        return address

    async def _ray_step(self, changed, names):
        self.ray_steps.append(names)
        return await self._answer(changed, names)


def group_with(actor: StandInActor) -> RayNodeGroup:
    config = SimpleNamespace(name="Campus", engine_step_timeout_s=5.0)
    group = RayNodeGroup(config, SimpleNamespace(), None, "", [])
    group.actor = actor
    return group


def test_a_groups_steps_go_over_one_channel_and_as_ray_calls_when_it_cannot_be_opened(caplog):
    async def steps(actor: StandInActor) -> list:
        group = group_with(actor)
        answers = [await group._step(actor, {}, group._names_sent(["B1", "B2"])) for _ in range(3)]
        if group._channel is not None:  # not group._kill(): ray.kill would start a Ray in this test process
            group._channel.close()
        for server in actor.servers:
            server.close()
        return answers

    listening = StandInActor(listen=True)
    assert asyncio.run(steps(listening)) == [(600.0, ["B1", "B2"]), (600.0, None), (600.0, None)]
    assert len(listening.servers) == 1 and listening.ray_steps == []  # one channel opened, no Ray step

    deaf = StandInActor(listen=False)
    with caplog.at_level("WARNING"):
        assert asyncio.run(steps(deaf)) == [(600.0, ["B1", "B2"]), (600.0, None), (600.0, None)]
    assert deaf.ray_steps == [["B1", "B2"], None, None]
    assert caplog.text.count("no step channel to its Ray actor") == 1, caplog.text
    assert not ray.is_initialized()  # the cluster tests join their own cluster later in this process


def test_steps_asked_while_the_channel_opens_share_one_channel_and_keep_their_order():
    """Two steps asked before the channel is open (two batches in flight): one channel, the actor gets
    them in the order asked (the second carries no names: those of the first)."""
    async def run(actor: StandInActor) -> list:
        group = group_with(actor)
        first = asyncio.ensure_future(group._step(actor, {}, group._names_sent(["B1", "B2"])))
        second = asyncio.ensure_future(group._step(actor, {}, group._names_sent(["B1", "B2"])))
        answers = await asyncio.wait_for(asyncio.gather(first, second), 5)
        group._channel.close()
        for server in actor.servers:
            server.close()
        return answers

    actor = StandInActor(listen=True)
    received = []
    answer = actor._answer

    async def recording(changed, names):
        received.append(names)
        return await answer(changed, names)

    actor._answer = recording
    answers = asyncio.run(run(actor))
    assert len(actor.servers) == 1  # not one listener (and one leaked connection) per step in flight
    assert received == [["B1", "B2"], None] and answers == [(600.0, ["B1", "B2"]), (600.0, None)]


def write_tls_files(folder, name: str) -> dict[str, str]:
    """A CA and a certificate it signs, as Ray's TLS settings name them (PEM files in ``folder``)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool):
        now = dt.datetime.now(dt.timezone.utc)
        return (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .sign(issuer_key, hashes.SHA256()))

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files = {"RAY_TLS_CA_CERT": folder / f"{name}-ca.pem", "RAY_TLS_SERVER_CERT": folder / f"{name}.pem",
             "RAY_TLS_SERVER_KEY": folder / f"{name}.key"}
    files["RAY_TLS_CA_CERT"].write_bytes(certificate(f"{name} CA", ca_key, f"{name} CA", ca_key, True)
                                         .public_bytes(serialization.Encoding.PEM))
    files["RAY_TLS_SERVER_CERT"].write_bytes(certificate("node", key, f"{name} CA", ca_key, False)
                                             .public_bytes(serialization.Encoding.PEM))
    files["RAY_TLS_SERVER_KEY"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
    return {variable: str(path) for variable, path in files.items()}


def test_with_rays_tls_settings_the_channel_is_mutual_tls_and_refuses_other_peers(tmp_path, monkeypatch):
    """RAY_USE_TLS=1: the steps cross encrypted, each end's certificate checked against Ray's CA; a plain
    connection or one whose certificate another CA signed gets no step (the head falls back to Ray calls)."""
    cluster, stranger = write_tls_files(tmp_path, "cluster"), write_tls_files(tmp_path, "stranger")
    monkeypatch.setenv("RAY_USE_TLS", "1")
    for variable, path in cluster.items():
        monkeypatch.setenv(variable, path)
    actor = StandInActor(listen=True)
    steps = []

    async def answer(changed, names):
        steps.append(names)
        return 600.0, names

    actor._answer = answer

    async def run():
        channel = await StepChannel.open(actor)  # TLS both ways
        assert channel._writer.get_extra_info("ssl_object") is not None
        first = await channel.step({}, ["B1"])
        channel.close()
        (host, port) = actor.servers[0].sockets[0].getsockname()
        plain = await connected((host, port))  # no TLS: the handshake fails, nothing is unpickled
        with pytest.raises(ChannelLost):
            await asyncio.wait_for(plain.step({}, ["B2"]), 15)
        for variable, path in stranger.items():
            monkeypatch.setenv(variable, path)
        _, client = ray_channel.tls_contexts()
        with pytest.raises(OSError):  # ssl.SSLError: the actor's certificate is not the stranger CA's
            await asyncio.open_connection(host, port, ssl=client)
        for server in actor.servers:
            server.close()
        return first

    assert asyncio.run(run()) == (600.0, ["B1"])
    assert steps == [["B1"]]


def test_tls_files_that_cannot_be_loaded_are_one_line_naming_the_settings(tmp_path, monkeypatch):
    """RAY_USE_TLS=1 with a certificate file missing: an OSError (the head then steps by Ray calls) whose one
    line names Ray's TLS settings and their files, not a bare "[Errno 2] No such file or directory"."""
    files = write_tls_files(tmp_path, "cluster")
    monkeypatch.setenv("RAY_USE_TLS", "1")
    for variable, path in files.items():
        monkeypatch.setenv(variable, path)
    monkeypatch.setenv("RAY_TLS_CA_CERT", str(tmp_path / "missing-ca.pem"))
    with pytest.raises(OSError) as raised:
        ray_channel.tls_contexts()
    message = str(raised.value)
    assert "\n" not in message and "RAY_TLS_CA_CERT" in message and "missing-ca.pem" in message, message


def test_a_step_cancelled_before_it_was_sent_leaves_the_next_step_carrying_the_names():
    """Names go only when they change; a step carrying new names but cancelled while it waited for the channel
    never reached the actor, so the next step must carry them (else the actor steps its old buildings)."""

    async def run():
        actor = StandInActor(listen=True)
        group = group_with(actor)
        await group._step(actor, {}, group._names_sent(["B1"]))
        await group._channel._turn.acquire()  # the channel busy: the next step waits to be sent
        waiting = asyncio.ensure_future(group._step(actor, {}, group._names_sent(["B1", "B2"])))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        group._channel._turn.release()
        sent = group._names_sent(["B1", "B2"])
        answer = await group._step(actor, {}, sent)
        group._channel.close()
        for server in actor.servers:
            server.close()
        return sent, answer

    assert asyncio.run(run()) == (["B1", "B2"], (600.0, ["B1", "B2"]))
