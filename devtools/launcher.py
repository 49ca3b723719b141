"""Start a ``twinbridge run`` daemon in a child process on a free loopback port, and stop it again.

Used by the end-to-end tests and the benchmarks, which treat the bridge as the separate process a
SCADA client or a controller would see.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # the daemon runs from the repository folder, as a user would


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bridge exited with code {process.returncode} before serving")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"bridge did not serve port {port} within {timeout_s} s")


class BridgeProcess:
    """A ``twinbridge run`` daemon in a child process."""

    def __init__(self, process: subprocess.Popen, endpoint: str, run_dir: Path, log_path: Path):
        self.process, self.endpoint, self.run_dir, self.log_path = process, endpoint, run_dir, log_path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def historian(self) -> Path:
        found = sorted(self.run_dir.glob("*/historian.sqlite"))
        assert found, f"no historian under {self.run_dir}"
        return found[-1]

    def engine_pids(self, building: str) -> list[int]:
        """PIDs of the EnergyPlus child processes working for ``building`` in this run."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "bridge.engines.eplus_child" in cmdline and f"{self.run_dir}/" in cmdline and f"/{building}/" in cmdline:
                pids.append(int(entry.name))
        return pids

    def wait(self, timeout_s: float = 180.0) -> int:
        return self.process.wait(timeout=timeout_s)


@contextmanager
def run_bridge(config: Path, tmp_path: Path, *extra: str, keep_serving: bool = True,
               port: int | None = None) -> Iterator[BridgeProcess]:
    """Start ``twinbridge run config`` on ``port`` (default: a free one); stop it (SIGTERM, then kill) on exit."""
    port = port or free_port()
    endpoint = f"opc.tcp://127.0.0.1:{port}"
    run_dir = tmp_path / f"runs-{port}"
    log_path = tmp_path / f"bridge-{port}.log"
    args = [sys.executable, "-m", "bridge.cli", "run", str(config), "--endpoint", endpoint, "--run-dir", str(run_dir),
            *extra]
    if keep_serving:
        args.append("--keep-serving")
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO)
    bridge = BridgeProcess(process, endpoint, run_dir, log_path)
    try:
        wait_for_port(port, process)
        yield bridge
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
