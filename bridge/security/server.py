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
  ``"none"`` with one.

Roles: a viewer may read, browse, subscribe and read history; an operator may also write inputs and
call the control methods (Start, Pause, Reset, Exchange, ...). Anything else (adding or deleting
nodes) is refused to every network client.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import USER_TYPES, PermissionRuleset
from asyncua.crypto.permission_rules import User as UaUser
from asyncua.crypto.permission_rules import UserRole
from asyncua.server.user_managers import UserManager
from asyncua.common.utils import ServiceError
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from bridge.security.settings import ServerSecurity
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


class BridgeUserManager(UserManager):
    """Admits a session at its activation: over the channel the server offers, from a trusted client
    application, with a valid user name and password (or anonymously, as configured).

    The channel and trust checks are made here, on the certificate of the secure channel itself,
    because asyncua 2.1 keeps an unsecured channel when a client asks for policy None and the
    server does not offer it, and validates client certificates only when CreateSession carries
    one. A successful password check is remembered (as an HMAC under a key of this process, never
    the password) so that reconnecting clients do not cost another 0.2 s PBKDF2 each; an unknown
    user name costs the same PBKDF2 as a wrong password, so timing does not tell which names exist."""

    def __init__(self, security: ServerSecurity, trusted: "TrustedFolder | None" = None):
        self.security, self.trusted = security, trusted
        self._key = os.urandom(32)
        self._verified: set[bytes] = set()
        self._dummy_hash = hash_password(os.urandom(16).hex()) if security.users else ""

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
        token = hmac.new(self._key, f"{username}\0{password}".encode(), hashlib.sha256).digest()
        if account is not None and token in self._verified:
            return _ua_user(username, account.role)
        # an unknown name is checked against a dummy hash: every refusal costs the same PBKDF2
        matches = verify_password(password or "", account.password_hash if account else self._dummy_hash)
        if account is not None and matches:
            self._verified.add(token)
            return _ua_user(username, account.role)
        log.warning("refused a session: wrong user name or password for %r", username)
        return None


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
            log.warning("refused client %s: certificate not trusted; cannot store it in %s (%s)", uri, self.rejected, exc)
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
    return x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_certificate(data)


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
    server.iserver.set_user_manager(BridgeUserManager(security, trusted))
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
        fingerprint = server.iserver.certificate.fingerprint(hashes.SHA1())
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
