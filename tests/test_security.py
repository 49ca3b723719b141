"""OPC UA security: users and roles, certificates, trusted clients; end to end against the real bridge."""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest
from asyncua import Client, ua

from conftest import FAST_HASH, SIMS, run_bridge, run_cli, secured_config, wait_until, write_users
from bridge.config import ConfigError, load_config
from bridge.protocol import NAMESPACE
from bridge.security import SecurityError, User, hash_password, load_users, verify_password
from bridge.security.client import configure_client
from bridge.security.settings import PASSWORD_VARIABLE, ClientSecurity
from controllers.client import BridgeClient



def test_password_hash_round_trip():
    hashed = hash_password("correct horse", iterations=FAST_HASH)
    assert hashed.startswith("pbkdf2_sha256$1000$")
    assert verify_password("correct horse", hashed)
    assert not verify_password("correct hors", hashed)
    assert not verify_password("correct horse", "md5$1$00$00")
    assert hash_password("x", FAST_HASH) != hash_password("x", FAST_HASH)  # salted


@pytest.mark.parametrize("text, message", [
    ('[[user]]\nname = "a"\nrole = "admin"\npassword_hash = "pbkdf2_sha256$1$00$00"\n', "role must be one of"),
    ('[[user]]\nname = "a"\nrole = "viewer"\npassword = "plain"\n', "needs exactly 'name', 'role' and 'password_hash'"),
    ('[[user]]\nname = "a"\nrole = "viewer"\npassword_hash = "plain"\n', "twinbridge hash-password"),
    ('[[user]]\nname = "a"\nrole = "viewer"\npassword_hash = "pbkdf2_sha256$1$00$00"\n' * 2, "listed twice"),
    ("", "no [[user]] accounts"),
])
def test_bad_users_file_is_refused_naming_the_entry(tmp_path, text, message):
    path = tmp_path / "users.toml"
    path.write_text(text)
    with pytest.raises(SecurityError, match=re.escape(message)) as error:
        load_users(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("server, message", [
    ('security_policies = ["Basic128Rsa15_Sign"]', "security policies must be a non-empty list"),
    ('security_policies = "None"', "must be a list"),
    ('security_policies = ["Basic256Sha256_SignAndEncrypt"]', "needs 'certificate' and 'private_key'"),
    ('anonymous = "none"', "needs a 'users' file"),
    ('anonymous = "guest"', "anonymous must be one of"),
    ('trusted_clients = "pki/trusted"', "trusted_clients needs a secure policy"),
    ('users = "missing.toml"', "missing.toml: file not found"),
    ('certificat = "server.der"', "unknown keys ['certificat']"),
    ('users = "users.toml"', "users need a secure policy"),
    ('login_backoff_s = 0', "login_backoff_s must be a positive number of seconds"),
    ('login_window_s = "10"', "'login_window_s' must be a number, got '10'"),
    ('login_max_failures = 2.5', "'login_max_failures' must be an integer, got 2.5"),
    ('login_max_failures = 0', "login_max_failures must be a whole number of at least 1, got 0"),
    ('login_backoff_max_s = 0.5', "login_backoff_max_s (0.5) must not be below login_backoff_s (1.0)"),
])
def test_bad_server_security_is_a_config_error(tmp_path, server, message):
    write_users(tmp_path / "users.toml", {"op": ("operator", "pw")})
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        load_config(secured_config(tmp_path, server))
    assert "[server]" in str(error.value) or "missing.toml" in str(error.value)


def test_default_server_is_open_and_users_default_to_no_anonymous(tmp_path):
    assert load_config(SIMS / "small_office.toml").security.anonymous == "operator"
    write_users(tmp_path / "users.toml", {"op": ("operator", "pw")})
    security = load_config(secured_config(tmp_path, '\n'.join([
        'security_policies = ["Basic256Sha256_SignAndEncrypt"]', 'certificate = "s.der"', 'private_key = "s.pem"',
        'users = "users.toml"']))).security
    assert security.anonymous == "none" and set(security.users) == {"op"}


def test_malformed_client_security_string_is_refused():
    with pytest.raises(SecurityError, match="policy,mode,certificate,private_key"):
        ClientSecurity("Basic256Sha256,SignAndEncrypt").parts()
    with pytest.raises(SecurityError, match="security policies must be"):
        ClientSecurity("Basic256,SignAndEncrypt,c.der,k.pem").parts()
    with pytest.raises(SecurityError, match="TWINBRIDGE_UNSET_VARIABLE_FOR_TEST"):
        ClientSecurity(user="op", password_env="TWINBRIDGE_UNSET_VARIABLE_FOR_TEST").password()


async def connect(endpoint: str, security: str = "", user: str = "") -> Client:
    client = Client(endpoint, timeout=10)
    await configure_client(client, ClientSecurity(security, user))
    await client.connect()
    return client


async def node(client: Client, path: str):
    return client.get_node(ua.NodeId(path, await client.get_namespace_index(NAMESPACE)))


@pytest.mark.engine
def test_secured_bridge_end_to_end(tmp_path, monkeypatch):
    """Basic256Sha256 SignAndEncrypt only, trusted client certificates, users with roles: an unknown
    client certificate is refused and kept for the administrator; once trusted (no restart) a viewer
    reads but may not write or start; an operator starts the run and writes a setpoint, through the
    controllers' client library too; anonymous, wrong-password and unknown-user clients are refused, and
    so are an unsecured channel and an untrusted client that leaves its certificate out of CreateSession."""
    write_users(tmp_path / "users.toml", {"op": ("operator", "op-pw"), "eye": ("viewer", "eye-pw")})
    config = secured_config(tmp_path, "\n".join([
        'security_policies = ["Basic256Sha256_SignAndEncrypt"]',
        'certificate = "pki/own/server.der"', 'private_key = "pki/own/server_key.pem"',
        'trusted_clients = "pki/trusted"', 'users = "users.toml"',
        # a short backoff, so that the unknown user right after the wrong password is checked, not throttled
        'login_backoff_s = 0.01', 'login_backoff_max_s = 0.01']))
    client_pki = tmp_path / "client"
    secure = f"Basic256Sha256,SignAndEncrypt,{client_pki / 'ctl.der'},{client_pki / 'ctl_key.pem'}"
    prefix = "TestSite.SmallOffice"

    async def scenario(endpoint: str) -> dict:
        seen: dict = {}
        monkeypatch.setenv(PASSWORD_VARIABLE, "op-pw")
        with pytest.raises(ua.UaStatusCodeError) as untrusted:
            await connect(endpoint, secure, "op")
        seen["untrusted"] = type(untrusted.value).__name__
        rejected = list((tmp_path / "pki" / "rejected").glob("*.der"))
        seen["rejected"] = len(rejected)
        shutil.move(rejected[0], tmp_path / "pki" / "trusted" / rejected[0].name)

        monkeypatch.setenv(PASSWORD_VARIABLE, "eye-pw")
        viewer = await connect(endpoint, secure, "eye")
        try:
            seen["viewer_status"] = await (await node(viewer, f"{prefix}.Control.Status")).read_value()
            setpoint = await node(viewer, f"{prefix}.Inputs.CoolingSetpoint")
            with pytest.raises(ua.UaStatusCodeError) as write:
                await setpoint.write_value(ua.DataValue(ua.Variant(25.0, ua.VariantType.Double)))
            seen["viewer_write"] = type(write.value).__name__
            control = await node(viewer, "TestSite.Control")
            with pytest.raises(ua.UaStatusCodeError) as call:
                await control.call_method(await node(viewer, "TestSite.Control.Start"))
            seen["viewer_call"] = type(call.value).__name__
        finally:
            await viewer.disconnect()

        monkeypatch.setenv(PASSWORD_VARIABLE, "op-pw")
        operator = await connect(endpoint, secure, "op")
        try:
            await (await node(operator, "TestSite.Control")).call_method(await node(operator, "TestSite.Control.Start"))
            step = await node(operator, f"{prefix}.Control.Step")
            seen["steps"] = await wait_until(lambda: _positive(step), 120)
            setpoint = await node(operator, f"{prefix}.Inputs.CoolingSetpoint")
            await setpoint.write_value(ua.DataValue(ua.Variant(25.5, ua.VariantType.Double)))
            seen["operator_wrote"] = await setpoint.read_value()
        finally:
            await operator.disconnect()

        library = BridgeClient(endpoint, "SmallOffice", security=ClientSecurity(secure, "op"))
        await library.connect()
        try:
            await library.write_inputs({"CoolingSetpoint": 26.0})
            seen["library_inputs"] = await library.read_inputs()
        finally:
            await library.close()

        for label, security, user, password in (("anonymous", secure, "", ""), ("wrong_password", secure, "op", "nope"),
                                                ("unknown_user", secure, "nobody", "op-pw")):
            monkeypatch.setenv(PASSWORD_VARIABLE, password or "unused")
            with pytest.raises(ua.UaStatusCodeError) as refused:
                client = await connect(endpoint, security, user)
                await client.disconnect()
            seen[label] = type(refused.value).__name__

        # What asyncua's own client will not even try, the server must refuse by itself:
        # an unsecured channel to a server that offers none (as operator, to a building it could drive) ...
        monkeypatch.setenv(PASSWORD_VARIABLE, "op-pw")
        with monkeypatch.context() as patch:
            patch.setattr(Client, "find_endpoint", staticmethod(lambda endpoints, mode, uri: endpoints[0]))
            with pytest.raises(ua.UaStatusCodeError) as refused:
                client = await connect(endpoint, "", "op")
                await client.disconnect()
        seen["unsecured_channel"] = type(refused.value).__name__
        # ... and a CreateSession without its (optional) client certificate, from an untrusted application
        stranger = Client(endpoint, timeout=10)
        await configure_client(stranger, ClientSecurity(
            f"Basic256Sha256,SignAndEncrypt,{tmp_path / 'stranger.der'},{tmp_path / 'stranger_key.pem'}", "op"))
        create_session = stranger.uaclient.create_session

        async def without_certificate(params):
            params.ClientCertificate = None
            return await create_session(params)

        stranger.uaclient.create_session = without_certificate
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await stranger.connect()
            await stranger.disconnect()
        seen["untrusted_without_certificate"] = type(refused.value).__name__
        monkeypatch.setenv(PASSWORD_VARIABLE, "eye-pw")
        viewer = await connect(endpoint, secure, "eye")
        try:
            seen["setpoint_after"] = await (await node(viewer, f"{prefix}.Inputs.CoolingSetpoint")).read_value()
        finally:
            await viewer.disconnect()
        return seen

    with run_bridge(config, tmp_path, "--wait-for-start") as bridge:
        seen = asyncio.run(scenario(bridge.endpoint))
    assert seen["untrusted"] == "BadCertificateUntrusted" and seen["rejected"] == 1
    assert seen["viewer_status"] == "Idle"
    assert seen["viewer_write"] == seen["viewer_call"] == "BadUserAccessDenied"
    assert seen["steps"] > 0 and seen["operator_wrote"] == 25.5
    assert seen["library_inputs"]["CoolingSetpoint"] == 26.0
    assert seen["anonymous"] == "BadIdentityTokenRejected" and seen["wrong_password"] == "BadUserAccessDenied"
    assert seen["unknown_user"] == "BadUserAccessDenied"
    assert seen["unsecured_channel"] == seen["untrusted_without_certificate"] == "BadUserAccessDenied"
    assert seen["setpoint_after"] == 26.0  # what the operator's library client wrote last
    assert (tmp_path / "pki" / "own" / "server.der").exists()  # the self-signed certificate was created


async def _positive(node_) -> int | None:
    value = await node_.read_value()
    return value if value > 0 else None


def test_hash_password_command_prints_a_verifiable_hash():
    done = run_cli("hash-password", stdin="s3cret\n", timeout_s=60)
    assert done.returncode == 0, done.stderr
    assert verify_password("s3cret", done.stdout.strip())
    assert run_cli("hash-password", stdin="\n", timeout_s=60).returncode == 2  # an empty password


def test_expired_server_certificate_is_refused_and_kept(tmp_path):
    """An existing certificate is never overwritten (it may be the site CA's); an expired one stops the start."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from bridge.security.server import ensure_certificate

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(1).not_valid_before(now - dt.timedelta(days=400))
                   .not_valid_after(now - dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "server.der", tmp_path / "server_key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.DER))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    before = cert_path.read_bytes()
    with pytest.raises(SecurityError, match="expired on"):
        asyncio.run(ensure_certificate(cert_path, key_path, "urn:twinbridge:Test", "localhost"))
    assert cert_path.read_bytes() == before


def test_certificate_files_are_read_by_content_and_pairs_are_never_half_replaced(tmp_path):
    """A created pair loads whatever the suffixes say (asyncua goes by suffix: a DER certificate named
    .pem failed); a certificate without its key (or the reverse) is an error, not a new pair."""
    from asyncua.crypto import uacrypto

    from bridge.security.server import ensure_certificate, file_format

    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    asyncio.run(ensure_certificate(cert, key, "urn:twinbridge:Test", "localhost"))
    assert (file_format(cert), file_format(key)) == ("der", "pem")
    asyncio.run(uacrypto.load_certificate(cert, file_format(cert)))
    asyncio.run(uacrypto.load_private_key(key, extension=file_format(key)))
    before = cert.read_bytes()
    with pytest.raises(SecurityError, match="exists but .*missing.key does not"):
        asyncio.run(ensure_certificate(cert, tmp_path / "missing.key", "urn:twinbridge:Test", "localhost"))
    assert cert.read_bytes() == before


@pytest.mark.parametrize("live, message", [
    ('username = "meter-reader"\npassword_env = "TWINBRIDGE_UNSET_FOR_TEST"', "TWINBRIDGE_UNSET_FOR_TEST"),
    ('security = "Basic256Sha256,SignAndEncrypt,only.der"', "policy,mode,certificate,private_key"),
])
def test_tracking_file_with_unusable_credentials_is_refused_when_read(tmp_path, live, message):
    """A real building's server needs credentials; a missing password is a configuration error, not a
    connection to retry forever."""
    import bridge.tracking.config as tracking_config

    example = tracking_config.__doc__.split("::", 1)[1]
    text = "\n".join(line[4:] for line in example.splitlines())
    path = tmp_path / "tracking.toml"
    path.write_text(text.replace('security = ""', "").replace('username = ""', live))
    with pytest.raises(tracking_config.TrackingConfigError, match=re.escape(message)):
        tracking_config.load_tracking_config(path)
    path.write_text(text)
    assert tracking_config.load_tracking_config(path).live.username == ""  # the example itself loads


def test_controller_with_a_viewer_account_stops_with_the_refusal(tmp_path):
    """A refused write is not a dropped connection: the control loop stops at once naming the
    status code, instead of reconnecting and being refused again for ever."""
    from controllers.base import ControllerError
    from controllers.loop import LoopOptions, run_controller
    from controllers.schedule import ScheduleController, load_schedule

    config = secured_config(tmp_path, 'anonymous = "viewer"')
    controller = ScheduleController(load_schedule(SIMS.parent / "controllers/examples/small_office_schedule.toml"))
    options = LoopOptions(step_timeout_s=60, reconnect_timeout_s=5)
    with run_bridge(config, tmp_path, "--clock", "lockstep") as bridge:
        with pytest.raises(ControllerError, match="BadUserAccessDenied") as refused:
            asyncio.run(asyncio.wait_for(run_controller(controller, bridge.endpoint, "SmallOffice", options=options), 120))
    assert "SmallOffice" in str(refused.value)


class FakeClock:
    """A monotonic clock that moves only when told (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_login_policy_is_read_from_the_server_table(tmp_path):
    from bridge.security.settings import LoginPolicy

    write_users(tmp_path / "users.toml", {"op": ("operator", "pw")})
    security = load_config(secured_config(tmp_path, "\n".join([
        'security_policies = ["Basic256Sha256_SignAndEncrypt"]', 'certificate = "s.der"', 'private_key = "s.pem"',
        'users = "users.toml"', "login_backoff_s = 0.5", "login_backoff_max_s = 8", "login_max_failures = 4",
        "login_window_s = 120"]))).security
    assert security.login == LoginPolicy(backoff_s=0.5, backoff_max_s=8, max_failures=4, window_s=120)
    assert load_config(SIMS / "small_office.toml").security.login == LoginPolicy()


def test_login_throttle_backs_off_exponentially_up_to_its_cap():
    from bridge.security.server import LoginThrottle
    from bridge.security.settings import LoginPolicy

    clock = FakeClock()
    throttle = LoginThrottle(LoginPolicy(backoff_s=1.0, backoff_max_s=5.0, max_failures=100, window_s=1000.0), clock)
    assert throttle.wait_s("10.0.0.1") == 0.0
    waits = []
    for _ in range(5):
        throttle.failed("10.0.0.1")
        waits.append(throttle.wait_s("10.0.0.1"))
        clock.now += waits[-1]
        assert throttle.wait_s("10.0.0.1") == 0.0  # once the backoff is over, the next password is checked
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert throttle.wait_s("10.0.0.2") == 0.0  # per address
    clock.now += 1000.0  # every failure has left the window: the count starts again
    throttle.failed("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == 1.0 and throttle.failures("10.0.0.1") == 1


def test_login_throttle_limits_failures_per_window():
    from bridge.security.server import LoginThrottle
    from bridge.security.settings import LoginPolicy

    clock = FakeClock()
    throttle = LoginThrottle(LoginPolicy(backoff_s=0.1, backoff_max_s=0.1, max_failures=3, window_s=60.0), clock)
    first = clock.now
    for _ in range(3):
        throttle.failed("10.0.0.1")
        clock.now += 1.0
    assert throttle.wait_s("10.0.0.1") == pytest.approx(first + 60.0 - clock.now)  # until the oldest ages out
    clock.now = first + 60.0
    assert throttle.wait_s("10.0.0.1") == 0.0 and throttle.failures("10.0.0.1") == 2
    throttle.failed("10.0.0.1")
    assert throttle.wait_s("10.0.0.1") == pytest.approx(1.0)  # three again: until the one at first + 1 ages out
    clock.now += 1000.0
    throttle.failed("10.0.0.9")  # a failure once a window has passed sweeps the addresses without recent ones
    assert set(throttle._failures) == {"10.0.0.9"}


def _user_manager(monkeypatch, clock, **policy):
    """A BridgeUserManager for users op (pw) and eye (eye-pw), and the list of threads its PBKDF2 checks ran in."""
    import threading

    import bridge.security.server as server_module
    from bridge.security.settings import LoginPolicy, ServerSecurity

    users = {name: User(name, "operator", hash_password(pw, FAST_HASH))
             for name, pw in (("op", "pw"), ("eye", "eye-pw"))}
    security = ServerSecurity(("Basic256Sha256_SignAndEncrypt",), users=users, anonymous="none",
                              login=LoginPolicy(**policy))
    checks: list[str] = []

    def counted(password: str, password_hash: str) -> bool:
        checks.append(threading.current_thread().name)
        return verify_password(password, password_hash)

    monkeypatch.setattr(server_module, "verify_password", counted)
    return server_module.BridgeUserManager(security, clock=clock), checks


def test_a_throttled_address_is_refused_without_a_password_check(monkeypatch):
    """Failed logins are throttled per address: while throttled, a password (even the right one) is
    refused without PBKDF2; other addresses are checked as usual; checks run off the event loop."""
    clock = FakeClock()
    manager, checks = _user_manager(monkeypatch, clock, backoff_s=2.0, backoff_max_s=60.0)

    async def scenario() -> list:
        return [await manager.check_password("10.0.0.1", "op", "wrong"),
                await manager.check_password("10.0.0.1", "op", "wrong again"),
                await manager.check_password("10.0.0.1", "op", "pw"),
                await manager.check_password("10.0.0.2", "op", "pw"),
                await manager.check_password("10.0.0.2", "op", "pw")]

    assert asyncio.run(scenario()) == [False, False, False, True, True]
    assert len(checks) == 2  # the first wrong one, and the right one from 10.0.0.2 once (then remembered)
    assert all(name.startswith("twinbridge-password") for name in checks)
    clock.now += 2.0
    assert asyncio.run(manager.check_password("10.0.0.1", "op", "pw")) and len(checks) == 2  # remembered
    assert manager.get_user(None, "op", "pw", certificate=b"der").twinbridge_role == "operator"
    assert manager.get_user(None, "op", "wrong", certificate=b"der") is None


def test_concurrent_wrong_logins_cost_one_check_and_few_log_lines(monkeypatch, caplog):
    """40 wrong passwords at once from one address: one PBKDF2 (one check at a time per address; the
    others then find the address throttled); the refusals logged in one line, then summed up."""
    manager, checks = _user_manager(monkeypatch, FakeClock())
    manager.REPORT_EVERY_S = 0.2

    async def storm() -> list[bool]:
        results = await asyncio.gather(*(manager.check_password("10.0.0.1", "op", f"guess{i}") for i in range(40)))
        others = await asyncio.gather(manager.check_password("10.0.0.3", "eye", "eye-pw"))
        await asyncio.sleep(0.5)  # the summary line is due
        return [*results, *others]

    with caplog.at_level("WARNING", logger="bridge.security.server"):
        results = asyncio.run(storm())
    assert results == [False] * 40 + [True] and len(checks) == 2
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert "wrong user name or password" in lines[0] and "10.0.0.1" in lines[0]
    assert "refused 39 more sessions from 10.0.0.1" in lines[1] and "39 throttled" in lines[1]
    assert "guess" not in " ".join(lines)  # passwords are never logged


def test_login_storm_does_not_stall_the_server(tmp_path, monkeypatch):
    """A real secured server on loopback (PBKDF2 at its full 600,000 iterations): 40 concurrent
    wrong-password logins (from another process, bench/bench_login_storm.py's) leave a connected
    client's reads fast and its connection up, are all refused with BadUserAccessDenied, and cost
    one password check (the address is then throttled)."""
    import time

    import bridge.security.server as server_module
    from bench.bench_login_storm import run_storm_process, security_string
    from devtools.launcher import free_port
    from bridge.security.settings import ServerSecurity
    from bridge.server import TagServer

    users = {"bench": User("bench", "operator", hash_password("bench-pw"))}
    security = ServerSecurity(("Basic256Sha256_SignAndEncrypt",), tmp_path / "server.der", tmp_path / "server_key.pem",
                              users=users, anonymous="none")
    checks: list[str] = []

    def counted(password: str, password_hash: str) -> bool:
        checks.append(password)
        return verify_password(password, password_hash)

    monkeypatch.setattr(server_module, "verify_password", counted)
    monkeypatch.setenv(PASSWORD_VARIABLE, "bench-pw")
    pki = tmp_path / "client_pki"

    async def scenario(endpoint: str) -> dict:
        server = TagServer(endpoint, "Campus", security=security)
        await server.init()
        await server.listen()
        try:
            reader = await connect(endpoint, security_string(pki), "bench")  # asyncua's defaults: 1 s probes
            lost = []

            async def on_lost(exc: Exception) -> None:
                lost.append(exc)

            reader.connection_lost_callback = on_lost
            storm = asyncio.create_task(run_storm_process(endpoint, pki, 40))
            latencies = []
            while not storm.done():
                began = time.monotonic()
                await reader.nodes.server_state.read_value()
                latencies.append(time.monotonic() - began)
                await asyncio.sleep(0.02)
            answers = [answer for answer, _ in (await storm)["answers"]]
            await asyncio.sleep(1.5)  # one more watchdog probe
            state = await reader.nodes.server_state.read_value()
            await reader.disconnect()
            return {"answers": answers, "max_latency": max(latencies), "lost": lost, "state": state}
        finally:
            await server.stop()

    seen = asyncio.run(scenario(f"opc.tcp://127.0.0.1:{free_port()}"))
    assert seen["answers"] == ["BadUserAccessDenied"] * 40
    assert checks.count("wrong-pw") == 1, checks  # one check; then the address is throttled
    assert seen["lost"] == [] and seen["state"] == ua.ServerState.Running
    # within asyncua's 1 s connection probe (40 checks on the event loop stalled it 8 s or more)
    assert seen["max_latency"] < 1.0, seen["max_latency"]
