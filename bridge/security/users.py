"""User accounts of the OPC UA server: name, role and a salted PBKDF2-HMAC-SHA256 password hash.

A users file (TOML)::

    [[user]]
    name = "operator1"
    role = "operator"            # "viewer": read, browse, subscribe, history; "operator": also write and call
    password_hash = "pbkdf2_sha256$600000$<salt hex>$<hash hex>"   # from `twinbridge hash-password`

Only hashes are stored, never passwords. The iteration count follows OWASP's 2023 recommendation
for PBKDF2-HMAC-SHA256 (600,000).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import TwinbridgeError
from bridge.tomlfile import Table, read_toml

ROLES = ("viewer", "operator")
SCHEME = "pbkdf2_sha256"
ITERATIONS = 600_000


class SecurityError(TwinbridgeError, ValueError):
    """A security setting or file that cannot be used; the message names file and entry."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str


def hash_password(password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`` of ``password`` (16-byte random salt)."""
    if not password:
        raise SecurityError("an empty password cannot be hashed")
    salt = os.urandom(16) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{SCHEME}${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches a ``hash_password`` string (constant-time comparison)."""
    try:
        scheme, iterations, salt, digest = password_hash.split("$")
        if scheme != SCHEME:
            return False
        candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
        return hmac.compare_digest(candidate.hex(), digest)
    except ValueError:
        return False


def load_users(path: Path) -> dict[str, User]:
    """The accounts of a users file by name; SecurityError naming the file and entry when one is wrong."""
    data = Table(read_toml(path, SecurityError), str(path), SecurityError)
    data.check_keys({"user"})
    users: dict[str, User] = {}
    for entry in data.tables("user"):
        where = entry.where
        if set(entry.values) != {"name", "role", "password_hash"}:
            raise SecurityError(f"{where}: needs exactly 'name', 'role' and 'password_hash', "
                                f"got {sorted(entry.values)}")
        user = User(entry.text("name"), entry.text("role"), entry.text("password_hash"))
        if user.role not in ROLES:
            raise SecurityError(f"{where}: role must be one of {ROLES}, got {user.role!r}")
        parts = user.password_hash.split("$")
        if len(parts) != 4 or parts[0] != SCHEME or not parts[1].isdigit():
            raise SecurityError(f"{where}: password_hash must be a '{SCHEME}$...' string from "
                                "`twinbridge hash-password`")
        if user.name in users:
            raise SecurityError(f"{where}: user {user.name!r} is listed twice")
        users[user.name] = user
    if not users:
        raise SecurityError(f"{path}: no [[user]] accounts")
    return users
