"""Security of the bridge's OPC UA server: policies, certificates, trusted clients, users and roles.

Configured in the ``[server]`` table of a building or campus file (``ServerSecurity``; docs/security.md):

- ``security_policies``: endpoints offered, e.g. ``["Basic256Sha256_SignAndEncrypt"]``; ``"None"``
  (no signing or encryption, the default) may be listed alongside;
- ``certificate`` / ``private_key``: the server's application instance certificate (DER or PEM) and
  key (PEM). When a secure policy is offered and the files do not exist, a self-signed certificate
  (RSA 2048, one year, URI ``urn:twinbridge:<campus>``) and its key are created there;
- ``trusted_clients``: a folder of client application certificates. When it is set, a client whose
  certificate is not in it is refused (BadCertificateUntrusted) and its certificate is stored in
  ``<trusted_clients>/../rejected`` for an administrator to move over; the folder is read at every
  new session, so trusting a client needs no restart;
- ``users``: a users file (bridge.security.users): user name and password, role viewer or operator;
- ``anonymous``: what a client without user name gets: ``"operator"``, ``"viewer"`` or ``"none"``
  (refused). Default ``"operator"`` without a users file (an open test bench, as before),
  ``"none"`` with one;
- ``login_backoff_s``, ``login_backoff_max_s``, ``login_max_failures``, ``login_window_s``: how
  failed logins are throttled per client address (``LoginPolicy``, ``LoginThrottle``).

Passwords are checked off the event loop, in one thread, one check at a time per client address
(``BridgeUserManager.check_password``, awaited before asyncua activates a session).

Roles: a viewer may read, browse, subscribe and read history; an operator may also write inputs and
call the control methods (Start, Pause, Reset, Exchange, ...). Anything else (adding or deleting
nodes) is refused to every network client.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import os
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import USER_TYPES, PermissionRuleset, UserRole
from asyncua.crypto.permission_rules import User as UaUser
from asyncua.server.user_managers import UserManager
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from bridge.opcua_adapter import AsyncuaInternals, check_passwords_before_activation
from bridge.security.settings import LoginPolicy, ServerSecurity
from bridge.security.users import SecurityError, hash_password, verify_password

log = logging.getLogger(__name__)

OPERATOR_ONLY = {ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary),
                 ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)}


class RoleRuleset(PermissionRuleset):
    """Which OPC UA services a role may use: a viewer all session services but Write and Call,
    an operator those too; asyncua's own Admin (never given to network clients) everything."""

    def check_validity(self, user: UaUser, action_type_id: ua.NodeId, body: object) -> bool:
        if user.role == UserRole.Admin:
            return True
        if action_type_id not in _SESSION_SERVICES:
            return False
        return action_type_id not in OPERATOR_ONLY or getattr(user, "twinbridge_role", None) == "operator"


_SESSION_SERVICES = {ua.NodeId(type_id) for type_id in USER_TYPES}


class LoginThrottle:
    """Failed logins per client address, and how long an address waits before its next password is
    checked (``LoginPolicy``: backoff doubling from ``backoff_s`` up to ``backoff_max_s``, at most
    ``max_failures`` per ``window_s``). A success resets nothing: an attacker holding one account
    must not clear the count of guesses at another. Times in seconds from ``clock`` (monotonic)."""

    def __init__(self, policy: LoginPolicy, clock: Callable[[], float] = time.monotonic):
        self.policy, self.clock = policy, clock
        self._failures: dict[str, deque[float]] = {}  # the latest max_failures times per address
        self._swept = clock()

    def wait_s(self, source: str) -> float:
        """Seconds until a password from ``source`` is checked again; 0 when it is checked now."""
        recent = self._recent(source)
        if not recent:
            return 0.0
        until = recent[-1] + self.policy.delay_s(len(recent))
        if len(recent) >= self.policy.max_failures:
            until = max(until, recent[0] + self.policy.window_s)
        return max(0.0, until - self.clock())

    def failures(self, source: str) -> int:
        """Failed logins of ``source`` within the window (at most ``max_failures``)."""
        return len(self._recent(source))

    def failed(self, source: str) -> None:
        """Count a failed login of ``source`` now; addresses without a failure in the window are
        forgotten (swept once per window, so that many addresses cost no more than a pass each)."""
        now = self.clock()
        self._failures.setdefault(source, deque(maxlen=self.policy.max_failures)).append(now)
        if now - self._swept > self.policy.window_s:
            self._swept = now
            for address in [a for a, times in self._failures.items() if times[-1] <= now - self.policy.window_s]:
                del self._failures[address]

    def _recent(self, source: str) -> deque[float]:
        times = self._failures.get(source, deque())
        horizon = self.clock() - self.policy.window_s
        while times and times[0] <= horizon:
            times.popleft()
        return times


@dataclass
class _Refusals:
    """Refused logins from one address since its last log line."""

    wrong: int = 0
    throttled: int = 0
    users: set[str] = field(default_factory=set)


# PBKDF2 runs here, off the event loop (hashlib releases the GIL): one check at a time in the process,
# so that a storm of logins takes one core at most.
_PASSWORD_CHECKS = ThreadPoolExecutor(1, thread_name_prefix="twinbridge-password")


class BridgeUserManager(UserManager):
    """Admits a session at its activation: over the channel the server offers, from a trusted client
    application, with a valid user name and password (or anonymously, as configured).

    The channel and trust checks are made here, on the certificate of the secure channel itself,
    because asyncua 2.1 keeps an unsecured channel when a client asks for policy None and the
    server does not offer it, and validates client certificates only when CreateSession carries
    one. The password itself is checked before, by ``check_password`` (awaited by the ActivateSession
    hook, ``bridge.opcua_adapter.check_passwords_before_activation``): asyncua calls ``get_user``
    synchronously on the event loop, where a 0.2 s PBKDF2 would stop the whole server."""

    REPORT_EVERY_S = 60.0  # refused logins from one address: the first logged at once, the others summed up

    def __init__(self, security: ServerSecurity, trusted: "TrustedFolder | None" = None,
                 clock: Callable[[], float] = time.monotonic):
        self.security, self.trusted = security, trusted
        self.throttle = LoginThrottle(security.login, clock)
        self._key = os.urandom(32)
        self._verified: set[bytes] = set()
        self._dummy_hash = hash_password(os.urandom(16).hex()) if security.users else ""
        self._turns: dict[str, list] = {}  # address -> [lock, attempts holding or awaiting it]
        self._refusals: dict[str, _Refusals] = {}

    def get_user(self, iserver: object, username: str | None = None, password: str | None = None,
                 certificate: bytes | None = None) -> UaUser | None:
        if not certificate and "None" not in self.security.policies:
            log.warning("refused a session over an unsecured channel (offered: %s)", ", ".join(self.security.policies))
            return None
        if self.trusted is not None and not self.trusted.admits(certificate):
            return None
        if not username:
            if self.security.anonymous == "none":
                log.warning("refused an anonymous session (anonymous = 'none')")
                return None
            return _ua_user("anonymous", self.security.anonymous)
        account = self.security.users.get(username)
        if account is not None and self._token(username, password or "") in self._verified:
            return _ua_user(username, account.role)
        log.warning("refused a session for %r: its password was not checked before activation", username)
        return None

    async def check_password(self, source: str, username: str, password: str) -> bool:
        """Whether ``password`` is ``username``'s: PBKDF2 in a thread, one check at a time per client
        address ``source``; False without a check while ``source`` is throttled. A success is
        remembered for ``get_user`` (as an HMAC under a key of this process, never the password), so
        that a reconnecting client pays no PBKDF2 again; an unknown user name costs the same PBKDF2 as
        a wrong password (against a dummy hash), so timing does not tell which names exist."""
        if self.throttle.wait_s(source):
            return self._refused(source, username, throttled=True)
        async with self._turn(source):
            if self.throttle.wait_s(source):  # the check before this one failed
                return self._refused(source, username, throttled=True)
            account = self.security.users.get(username)
            token = self._token(username, password)
            if account is not None and token in self._verified:
                return True
            hashed = account.password_hash if account else self._dummy_hash
            loop = asyncio.get_running_loop()
            if await loop.run_in_executor(_PASSWORD_CHECKS, verify_password, password, hashed) and account is not None:
                self._verified.add(token)
                return True
            self.throttle.failed(source)
            return self._refused(source, username, throttled=False)

    def _token(self, username: str, password: str) -> bytes:
        return hmac.new(self._key, f"{username}\0{password}".encode(), hashlib.sha256).digest()

    @contextlib.asynccontextmanager
    async def _turn(self, source: str) -> AsyncIterator[None]:
        """Hold ``source``'s turn: one password check at a time per address (the others wait, then
        find it throttled when the check failed)."""
        turn = self._turns.setdefault(source, [asyncio.Lock(), 0])
        turn[1] += 1
        try:
            async with turn[0]:
                yield
        finally:
            turn[1] -= 1
            if not turn[1]:
                del self._turns[source]

    def _refused(self, source: str, username: str, throttled: bool) -> bool:
        """Log a refused login (False): the first from ``source`` at once, the next ones summed up
        every ``REPORT_EVERY_S`` seconds while they go on."""
        refusals = self._refusals.get(source)
        if refusals is None:
            why = (f"throttled, {self.throttle.wait_s(source):.1f} s before its next password is checked" if throttled
                   else "wrong user name or password")
            log.warning("refused a session for %r from %s: %s (further refusals from %s are summed up every %.0f s)",
                        username, source, why, source, self.REPORT_EVERY_S)
            self._refusals[source] = _Refusals()
            asyncio.get_running_loop().call_later(self.REPORT_EVERY_S, self._report, source)
            return False
        refusals.users.add(username)
        if throttled:
            refusals.throttled += 1
        else:
            refusals.wrong += 1
        return False

    def _report(self, source: str) -> None:
        """One log line for the refusals from ``source`` since the last; goes on while there are any."""
        refusals = self._refusals.pop(source)
        if not refusals.wrong and not refusals.throttled:
            return
        users = ", ".join(repr(user) for user in sorted(refusals.users)[:5])
        users += ", ..." if len(refusals.users) > 5 else ""
        log.warning("refused %d more sessions from %s in %.0f s: %d wrong user name or password, %d throttled without "
                    "a check (users %s); %d failures in the last %.0f s, next check in %.1f s at the earliest",
                    refusals.wrong + refusals.throttled, source, self.REPORT_EVERY_S, refusals.wrong,
                    refusals.throttled, users, self.throttle.failures(source), self.security.login.window_s,
                    self.throttle.wait_s(source))
        self._refusals[source] = _Refusals()
        asyncio.get_running_loop().call_later(self.REPORT_EVERY_S, self._report, source)


def may_write(user: UaUser | None) -> bool:
    """Whether a session's user may write values: server-internal writes and operators. A second
    check beside RoleRuleset, which asyncua applies only on channels it built from the policies."""
    return getattr(user, "twinbridge_role", "operator") == "operator"


def _ua_user(name: str, role: str) -> UaUser:
    user = UaUser(role=UserRole.User, name=name)
    user.twinbridge_role = role  # read by RoleRuleset
    return user


class TrustedFolder:
    """Trust list of client application certificates: valid now and one of the certificates in
    ``folder`` (compared by SHA-256 fingerprint). A refused one is written to ``rejected`` (at most
    ``MAX_REJECTED`` files) so that an administrator can trust it by moving it over. Used twice: as
    asyncua's certificate validator at CreateSession (the client learns BadCertificateUntrusted),
    and at activation on the secure channel's own certificate (``admits``)."""

    MAX_REJECTED = 100

    def __init__(self, folder: Path):
        self.folder = folder
        self.rejected = folder.parent / "rejected"

    def fingerprints(self) -> set[bytes]:
        prints = set()
        for path in sorted(self.folder.glob("*")):
            if path.suffix.lower() in (".der", ".pem", ".crt", ".cer"):
                try:
                    prints.add(load_certificate(path).fingerprint(hashes.SHA256()))
                except (OSError, ValueError) as exc:
                    log.warning("trusted_clients: cannot read %s (%s); ignored", path, exc)
        return prints

    def refusal(self, certificate: x509.Certificate, uri: str | None) -> int | None:
        """The status code refusing ``certificate`` (stored in ``rejected`` if untrusted), or None."""
        now = dt.datetime.now(dt.timezone.utc)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            log.warning("refused client %s: certificate expired or not yet valid", uri)
            return ua.StatusCodes.BadCertificateTimeInvalid
        fingerprint = certificate.fingerprint(hashes.SHA256())
        if fingerprint in self.fingerprints():
            return None
        path = self.rejected / f"{_safe(uri or '')}_{fingerprint.hex()[:16]}.der"
        try:
            self.rejected.mkdir(parents=True, exist_ok=True)
            if path.exists() or len(list(self.rejected.iterdir())) < self.MAX_REJECTED:
                path.write_bytes(certificate.public_bytes(Encoding.DER))
                log.warning("refused client %s: certificate not trusted; stored as %s (move it to %s to trust it)",
                            uri, path, self.folder)
            else:
                log.warning("refused client %s: certificate not trusted; %s is full (%d files), not stored", uri,
                            self.rejected, self.MAX_REJECTED)
        except OSError as exc:
            log.warning("refused client %s: certificate not trusted; cannot store it in %s (%s)", uri, self.rejected,
                        exc)
        return ua.StatusCodes.BadCertificateUntrusted

    async def __call__(self, certificate: x509.Certificate, description: ua.ApplicationDescription) -> None:
        code = self.refusal(certificate, description.ApplicationUri)
        if code is not None:
            raise ServiceError(code)

    def admits(self, certificate: bytes | None) -> bool:
        """Whether the secure channel's certificate (DER; None on an unsecured channel) is trusted."""
        if not certificate:
            log.warning("refused a session without a client certificate (trusted_clients is set)")
            return False
        try:
            parsed = x509.load_der_x509_certificate(certificate)
        except ValueError:
            log.warning("refused a session: the client certificate cannot be read")
            return False
        return self.refusal(parsed, None) is None


def _policy_type(name: str) -> ua.SecurityPolicyType:
    return ua.SecurityPolicyType.NoSecurity if name == "None" else ua.SecurityPolicyType[name]


def file_format(path: Path) -> str:
    """"pem" or "der", from the file's content (asyncua would go by its suffix alone)."""
    with open(path, "rb") as handle:
        return "pem" if handle.read(64).lstrip().startswith(b"-----") else "der"


def load_certificate(path: Path) -> x509.Certificate:
    """An X.509 certificate from a PEM or DER file."""
    data = path.read_bytes()
    if data.lstrip().startswith(b"-----"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def _safe(text: str) -> str:
    return "".join(char if char.isalnum() or char in "-." else "_" for char in text) or "client"


async def ensure_certificate(certificate: Path, private_key: Path, application_uri: str, host: str,
                             client: bool = False) -> None:
    """Create a self-signed application certificate and key where they do not exist yet (asyncua's
    generator: RSA 2048, SHA-256, one year, ``application_uri`` and ``host`` as subject alternative
    names); an existing pair is kept as it is (it may be signed by the site's CA): an expired one is a
    SecurityError, one that expires within 30 days a warning."""
    if certificate.exists() != private_key.exists():
        present, missing = (certificate, private_key) if certificate.exists() else (private_key, certificate)
        raise SecurityError(f"{present} exists but {missing} does not: give both files of a pair, or neither to have a "
                            "new self-signed pair created (an existing file is never overwritten)")
    if certificate.exists():
        try:
            expires = load_certificate(certificate).not_valid_after_utc
        except ValueError as exc:
            raise SecurityError(f"{certificate}: not a certificate ({exc})") from None
        left = expires - dt.datetime.now(dt.timezone.utc)
        if left <= dt.timedelta(0):
            raise SecurityError(f"{certificate} expired on {expires:%Y-%m-%d}: replace it, or delete it and its key "
                                f"{private_key} to have a new self-signed one created")
        if left < dt.timedelta(days=30):
            log.warning("%s expires on %s (in %d days)", certificate, f"{expires:%Y-%m-%d}", left.days)
        return
    certificate.parent.mkdir(parents=True, exist_ok=True)
    private_key.parent.mkdir(parents=True, exist_ok=True)
    use = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
    await setup_self_signed_certificate(private_key, certificate, application_uri, host, use,
                                        {"commonName": application_uri, "organizationName": "twinbridge"})
    log.info("created a self-signed certificate %s (key %s) for %s", certificate, private_key, application_uri)


async def secure_server(server: Server, security: ServerSecurity, application_uri: str, endpoint: str) -> None:
    """Apply ``security`` to an initialised asyncua server before it starts."""
    await server.set_application_uri(application_uri)
    tokens = [ua.UserNameIdentityToken] if security.users else []
    if security.anonymous != "none":
        tokens.insert(0, ua.AnonymousIdentityToken)
    server.set_identity_tokens(tokens)
    trusted = TrustedFolder(security.trusted_clients) if security.trusted_clients is not None else None
    internals = AsyncuaInternals(server)
    internals.set_user_manager(BridgeUserManager(security, trusted))
    check_passwords_before_activation(BridgeUserManager)
    server.set_security_policy([_policy_type(policy) for policy in security.policies], permission_ruleset=RoleRuleset())
    if security.secure:
        host = urlparse(endpoint).hostname
        host = socket.gethostname() if host in (None, "", "0.0.0.0", "::") else host  # a wildcard is no name
        await ensure_certificate(security.certificate, security.private_key, application_uri, host)
        try:
            await server.load_certificate(security.certificate, format=file_format(security.certificate))
            await server.load_private_key(security.private_key, format=file_format(security.private_key))
        except (OSError, ValueError) as exc:
            raise SecurityError(f"cannot load the server certificate {security.certificate} or key "
                                f"{security.private_key}: {exc}") from None
        fingerprint = internals.certificate().fingerprint(hashes.SHA1())
        log.info("OPC UA security: policies %s, certificate %s (SHA-1 thumbprint %s)", ", ".join(security.policies),
                 security.certificate, fingerprint.hex())
    if trusted is not None:
        security.trusted_clients.mkdir(parents=True, exist_ok=True)
        server.set_certificate_validator(trusted)
        log.info("OPC UA security: only client certificates in %s are trusted", security.trusted_clients)
    elif security.secure:
        log.warning("OPC UA security: no trusted_clients folder: any client certificate is accepted "
                    "(the channel is encrypted, the client application is not authenticated)")
    log.info("OPC UA users: %d account(s); anonymous clients: %s", len(security.users), security.anonymous)
