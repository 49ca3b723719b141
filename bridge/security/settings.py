"""Security settings of the bridge's OPC UA server and of its clients (plain data, no asyncua import,
so that reading a configuration stays fast). Applied by bridge.security.server and .client."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from bridge.security.users import SecurityError, User, load_users
from bridge.tomlfile import Table, file_path

# OPC UA security policies offered; Basic128Rsa15 and Basic256 are deprecated by the OPC Foundation
# (SHA-1) and refused.
POLICIES = ("None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt", "Aes128Sha256RsaOaep_Sign",
            "Aes128Sha256RsaOaep_SignAndEncrypt", "Aes256Sha256RsaPss_Sign", "Aes256Sha256RsaPss_SignAndEncrypt")
ANONYMOUS = ("operator", "viewer", "none")
PASSWORD_VARIABLE = "TWINBRIDGE_OPCUA_PASSWORD"
LOGIN_KEYS = {"login_backoff_s": "backoff_s", "login_backoff_max_s": "backoff_max_s",
              "login_max_failures": "max_failures", "login_window_s": "window_s"}
SERVER_KEYS = {"security_policies", "certificate", "private_key", "trusted_clients", "users", "anonymous", *LOGIN_KEYS}


def _check_policies(policies: tuple[str, ...], where: str) -> None:
    unknown = [policy for policy in policies if policy not in POLICIES]
    if unknown or not policies:
        raise SecurityError(f"{where}: security policies must be a non-empty list of {list(POLICIES)}, got "
                            f"{unknown or list(policies)}")


@dataclass(frozen=True)
class LoginPolicy:
    """Throttling of failed logins per client address (``[server]`` keys ``login_*``; docs/security.md).

    After the n-th failed login within ``window_s`` seconds, the address is refused for
    ``min(backoff_s * 2**(n-1), backoff_max_s)`` seconds; after ``max_failures`` within the window,
    until the oldest of them is ``window_s`` old."""

    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    max_failures: int = 10
    window_s: float = 600.0

    def delay_s(self, failures: int) -> float:
        """Seconds an address is refused after its ``failures``-th failure within the window (0 for none)."""
        doublings = min(failures - 1, 64)  # beyond 2**64 the cap has long been reached (and 2.0**1100 overflows)
        return 0.0 if failures <= 0 else min(self.backoff_s * 2.0 ** doublings, self.backoff_max_s)


def login_policy(table: Table) -> LoginPolicy:
    """``LoginPolicy`` from the ``login_*`` keys of a ``[server]`` table; SecurityError (the table's error for a
    value of the wrong type) naming the table and the key."""
    values = {}
    for key, name in LOGIN_KEYS.items():
        if key not in table.values:
            continue
        if name == "max_failures":
            value = table.integer(key)
            if value < 1:
                raise SecurityError(f"{table.where}: {key} must be a whole number of at least 1, got {value!r}")
        else:
            value = table.number(key)
            if not 0 < value < math.inf:
                raise SecurityError(f"{table.where}: {key} must be a positive number of seconds, got {value!r}")
        values[name] = value
    policy = LoginPolicy(**values)
    if policy.backoff_max_s < policy.backoff_s:
        raise SecurityError(f"{table.where}: login_backoff_max_s ({policy.backoff_max_s}) must not be below "
                            f"login_backoff_s ({policy.backoff_s})")
    return policy


@dataclass(frozen=True)
class ServerSecurity:
    """The ``[server]`` security settings; the default is an open server (policy None, anonymous operator)."""

    policies: tuple[str, ...] = ("None",)
    certificate: Path | None = None
    private_key: Path | None = None
    trusted_clients: Path | None = None
    users: dict[str, User] = field(default_factory=dict)
    anonymous: str = "operator"
    login: LoginPolicy = field(default_factory=LoginPolicy)

    @property
    def secure(self) -> bool:
        """Whether an endpoint with signing (and maybe encryption) is offered."""
        return any(policy != "None" for policy in self.policies)

    def check(self, where: str) -> None:
        """Raise SecurityError (naming ``where``) for settings that cannot work together."""
        _check_policies(self.policies, where)
        if self.anonymous not in ANONYMOUS:
            raise SecurityError(f"{where}: anonymous must be one of {list(ANONYMOUS)}, got {self.anonymous!r}")
        if self.secure and (self.certificate is None or self.private_key is None):
            raise SecurityError(f"{where}: a secure policy needs 'certificate' and 'private_key' (created if missing)")
        if self.anonymous == "none" and not self.users:
            raise SecurityError(f"{where}: anonymous = 'none' needs a 'users' file, or nobody could connect")
        if self.users and not self.secure:
            raise SecurityError(f"{where}: users need a secure policy in security_policies: over policy None alone "
                                "passwords would travel in clear text")
        if self.trusted_clients is not None and not self.secure:
            raise SecurityError(f"{where}: trusted_clients needs a secure policy (with policy None clients send "
                                "no certificate)")


def server_security(table: Table, base: Path) -> ServerSecurity:
    """``ServerSecurity`` from a ``[server]`` table (paths relative to ``base``); SecurityError (the table's error
    for a value of the wrong type) naming the table."""
    def path(key: str) -> Path | None:
        return file_path(table.text(key), base, table.error, f"{table.where}: {key}") if key in table.values else None

    users = load_users(path("users")) if "users" in table.values else {}
    security = ServerSecurity(tuple(str(p) for p in table.array("security_policies", ["None"])), path("certificate"),
                              path("private_key"), path("trusted_clients"), users,
                              table.text("anonymous", "none" if users else "operator"), login_policy(table))
    security.check(table.where)
    return security


@dataclass(frozen=True)
class ClientSecurity:
    """How a client connects. ``security`` is asyncua's security string,
    ``"<policy>,<mode>,<certificate>,<private key>[,<server certificate>]"`` (e.g.
    ``"Basic256Sha256,SignAndEncrypt,client.der,client_key.pem"``; empty: policy None); a missing
    certificate and key are created, self-signed; a given server certificate is pinned. ``user``'s
    password comes from the environment variable ``password_env``, never a file or the command line."""

    security: str = ""
    user: str = ""
    password_env: str = PASSWORD_VARIABLE

    def parts(self) -> tuple[str, str, Path, Path, Path | None]:
        """(policy, mode, certificate, private key, server certificate or None); SecurityError if malformed."""
        fields = [part.strip() for part in self.security.split(",")]
        if len(fields) not in (4, 5):
            raise SecurityError(f"security string must be 'policy,mode,certificate,private_key[,server_certificate]', "
                                f"got {self.security!r}")
        policy, mode = fields[:2]
        _check_policies((f"{policy}_{mode}",), "security string")
        if f"{policy}_{mode}" == "None":
            raise SecurityError("security string: leave it empty for policy None")
        return policy, mode, Path(fields[2]), Path(fields[3]), Path(fields[4]) if len(fields) == 5 else None

    def check(self) -> None:
        """SecurityError for a malformed security string or a user without a password, before any connection."""
        if self.security:
            self.parts()
        if self.user:
            self.password()

    def password(self) -> str:
        """The user's password from the environment; SecurityError naming the variable when unset."""
        value = os.environ.get(self.password_env, "")
        if not value:
            raise SecurityError(f"user {self.user!r} needs a password in the environment variable {self.password_env}")
        return value
