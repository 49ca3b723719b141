"""Shared fixtures and helpers: a real bridge daemon (devtools.launcher), paths, polling with a timeout."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.security import hash_password
from devtools.launcher import BridgeProcess, free_port, run_bridge  # noqa: F401 (used by the test modules)

REPO = Path(__file__).resolve().parent.parent
SIMS = REPO / "sims"
TAGMAPS = REPO / "tagmaps"
FAST_HASH = 1000  # PBKDF2 iterations in test accounts (the default, 600,000, costs 0.2 s per login)


def run_cli(*args: str, timeout_s: float = 300.0, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``twinbridge <args>`` in a process of its own, from the repository folder; output captured."""
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout_s, input=stdin)


async def wait_until(predicate, timeout_s: float = 60.0, interval_s: float = 0.05):
    """Await ``predicate()`` (an async callable) until it returns a truthy value; fail after timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


@pytest.fixture
def small_office_config() -> Path:
    return SIMS / "small_office.toml"


@pytest.fixture
def test_campus_config() -> Path:
    return SIMS / "test_campus.toml"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Share one dictionary cache across the session, away from the user's home."""
    cache = tmp_path_factory.getbasetemp() / "twinbridge-cache"
    monkeypatch.setenv("TWINBRIDGE_CACHE", str(cache))
    yield


def write_users(path: Path, accounts: dict[str, tuple[str, str]]) -> Path:
    path.write_text("".join(f'[[user]]\nname = "{name}"\nrole = "{role}"\npassword_hash = "{hash_password(pw, FAST_HASH)}"\n'
                            for name, (role, pw) in accounts.items()))
    return path


def secured_config(tmp_path: Path, server: str) -> Path:
    """The small office test building with a ``[server]`` table."""
    text = (SIMS / "small_office.toml").read_text().replace('"../tagmaps/', f'"{SIMS.parent}/tagmaps/')
    path = tmp_path / "secured.toml"
    path.write_text(text.replace("[run]", f"[server]\n{server}\n\n[run]"))
    return path
