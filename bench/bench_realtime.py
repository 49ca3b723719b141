"""Realtime clock alignment: drift between simulated and wall-clock time, and CPU used while waiting.

The Small Office (Chicago) runs with ``clock = "realtime"`` at speed 1 with 1-minute steps
(timesteps_per_hour = 60) for ``--minutes`` minutes (10 by default) in a bridge daemon of its own. A
client subscribes to ``<Campus>.Control.SimTime``: the bridge writes it as it publishes a step, with
ServerTimestamp = the wall time of that write, so drift = ServerTimestamp - SimTime (true UTC), taken
by the bridge's own clock (no polling delay). CPU: user + system seconds of the bridge process and its
EnergyPlus child over the measured wall time (/proc), i.e. what waiting 60 s per step costs.

    PYTHONPATH=$PWD python bench/bench_realtime.py [--minutes 10]

Writes bench/results/realtime.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from asyncua import Client, ua

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_io import figure, write_results  # noqa: E402
from bridge.protocol import NAMESPACE  # noqa: E402
from devtools.launcher import run_bridge  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def campus_file(folder: Path) -> Path:
    path = folder / "realtime.toml"
    path.write_text('[campus]\nname = "RT"\n[run]\ntimesteps_per_hour = 60\nclock = "realtime"\nspeed = 1\n'
                    '[[buildings]]\nname = "SmallOffice"\nmodel = "ref:small_office"\nweather = "ref:usa_il_chicago"\n'
                    f'tagmap = "{ROOT}/tagmaps/small_office.toml"\n')
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its live children (one level: EnergyPlus)."""
    total = 0.0
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for process in [pid, *map(int, children)]:
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


class Drift:
    """Subscription handler: |ServerTimestamp - SimTime| (s) of every SimTime the bridge writes."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []  # (SimTime epoch s, drift s)

    def datachange_notification(self, node, value, data):
        data_value = data.monitored_item.Value
        sim, written = value.timestamp(), data_value.ServerTimestamp.timestamp()
        self.samples.append((sim, written - sim))


async def measure(endpoint: str, pid: int, minutes: float) -> dict:
    async with Client(endpoint, timeout=30) as client:
        idx = await client.get_namespace_index(NAMESPACE)
        sim_time = client.get_node(ua.NodeId("RT.Control.SimTime", idx))
        local = client.get_node(ua.NodeId("RT.Control.SimTimeLocal", idx))
        deadline = time.monotonic() + 300
        while await local.read_value() == "" and time.monotonic() < deadline:  # step 0 published
            await asyncio.sleep(0.2)
        handler = Drift()
        subscription = await client.create_subscription(100, handler)
        await subscription.subscribe_data_change(sim_time)
        await asyncio.sleep(1.0)
        handler.samples.clear()  # the initial notification (step 0) is not a paced step
        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(minutes * 60 + 2)
        cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - wall0
        await subscription.delete()
    drifts = [abs(d) for _, d in handler.samples]
    return {"steps": len(drifts), "max": max(drifts), "mean": statistics.fmean(drifts),
            "signed_mean": statistics.fmean(d for _, d in handler.samples), "cpu": cpu, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        with run_bridge(campus_file(Path(folder)), Path(folder)) as bridge:
            result = asyncio.run(measure(bridge.endpoint, bridge.process.pid, args.minutes))
    print(result)
    write_results("realtime", {
        "drift_max_ms": figure(result["max"] * 1000, "ms", "< 100"),
        "drift_mean_ms": figure(result["mean"] * 1000, "ms", "< 100"),
        "drift_signed_mean_ms": figure(result["signed_mean"] * 1000, "ms (publication after the simulated time)"),
        "steps_measured": figure(result["steps"], "steps of 60 s"),
        "cpu_while_waiting": figure(result["cpu"] / result["wall"], "CPU s per wall s (bridge + EnergyPlus)"),
    }, notes=f"Small Office, Chicago, clock realtime at speed 1, 1-minute steps, {args.minutes:g} min measured after "
             "step 0; drift = ServerTimestamp - SimTime of Control.SimTime as the bridge writes it (its own clock).")


if __name__ == "__main__":
    main()
