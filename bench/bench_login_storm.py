"""A login storm against a paced, secured bridge: do stepping and the other clients notice?

A real ``twinbridge run`` daemon (devtools/launcher.py) paces the DOE Small Office at one simulated
step (10 min) per wall second, over Basic256Sha256 SignAndEncrypt with a users file (PBKDF2,
600,000 iterations, as `twinbridge hash-password` makes them). A SCADA reader, logged in before the
storm, reads Step and two outputs every 50 ms (request timeout and connection probe 120 s, so that
it sees the steps through a stall); four more clients (asyncua's defaults: 4 s request timeout, a
connection probe every second that must be answered within one) stay connected with a subscription
to Step. Then a separate process (so that its own RSA work does not run in the reader's event
loop; at nice 19, as an attacker's machine would not share the bridge's cores) opens ``--logins``
sessions at once, all with a wrong password. Figures: largest step interval during the storm
against the nominal 1 s (target within 10 %), the reader's read latency p95 during the storm
(target < 50 ms), connected clients dropped (target 0), and how long the storm took and what it
was answered.

    PYTHONPATH=$PWD python bench/bench_login_storm.py [--logins 40] [--before REV]

``--before REV`` also measures the bridge of git revision REV (exported with ``git archive`` into a
temporary folder, this file copied in), and puts its figures beside this tree's as ``before_*``.
Writes bench/results/login_storm.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from asyncua import Client, ua

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script (also by tests/test_security.py)

from bench.results_io import figure, write_results  # noqa: E402
from bridge.protocol import NAMESPACE  # noqa: E402
from bridge.security import hash_password  # noqa: E402
from bridge.security.client import configure_client  # noqa: E402
from bridge.security.settings import PASSWORD_VARIABLE, ClientSecurity  # noqa: E402
from devtools.launcher import run_bridge  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOMINAL_STEP_S = 1.0  # speed 600 s/s, 6 steps per hour
READ_EVERY_S = 0.05
IDLE_CLIENTS = 4
PREFIX = "TestSite.SmallOffice"


def secured_small_office(folder: Path) -> Path:
    """sims/small_office.toml paced at one step per second, SignAndEncrypt only, two users, no anonymous."""
    users = "".join(f'[[user]]\nname = "{name}"\nrole = "operator"\npassword_hash = "{hash_password(pw)}"\n'
                    for name, pw in (("scada", "scada-pw"), ("bench", "bench-pw")))
    (folder / "users.toml").write_text(users)
    text = (ROOT / "sims/small_office.toml").read_text().replace('"../tagmaps/', f'"{ROOT}/tagmaps/')
    text = text.replace('clock = "fast"', f'clock = "paced"\nspeed = {600 / NOMINAL_STEP_S}')
    server = ('[server]\nsecurity_policies = ["Basic256Sha256_SignAndEncrypt"]\ncertificate = "pki/server.der"\n'
              'private_key = "pki/server_key.pem"\nusers = "users.toml"\nanonymous = "none"\n\n')
    path = folder / "secured.toml"
    path.write_text(text.replace("[run]", server + "[run]"))
    return path


def security_string(pki: Path) -> str:
    return f"Basic256Sha256,SignAndEncrypt,{pki}/client.der,{pki}/client_key.pem"


async def connected(endpoint: str, pki: Path, user: str, lost: set, patient: bool = False) -> Client:
    """A logged-in client that adds itself to ``lost`` when its connection watchdog declares the
    connection lost (asyncua then reconnects by itself). asyncua's defaults (4 s request timeout,
    a probe every 1 s answered within 1 s), or, ``patient``, 120 s for both."""
    client = Client(endpoint, timeout=120, watchdog_intervall=120) if patient else Client(endpoint)
    await configure_client(client, ClientSecurity(security_string(pki), user))
    await client.connect()

    async def on_lost(_: Exception) -> None:
        lost.add(id(client))

    client.connection_lost_callback = on_lost
    return client


async def wrong_login(endpoint: str, pki: Path) -> tuple[str, float]:
    """One session attempt with a wrong password: (what it was answered, seconds)."""
    client = Client(endpoint, timeout=60)
    await configure_client(client, ClientSecurity(security_string(pki), "bench"))
    began = time.monotonic()
    try:
        await client.connect()
        await client.disconnect()
        return "accepted", time.monotonic() - began
    except ua.UaStatusCodeError as exc:
        return type(exc).__name__, time.monotonic() - began
    except Exception as exc:  # a timeout or a dropped connection is an answer too
        return type(exc).__name__, time.monotonic() - began


async def storm(endpoint: str, pki: Path, logins: int) -> dict:
    """``logins`` wrong-password sessions at once; monotonic start and end, and each attempt's answer."""
    began = time.monotonic()
    answers = await asyncio.gather(*(wrong_login(endpoint, pki) for _ in range(logins)))
    return {"began": began, "ended": time.monotonic(), "answers": answers}


async def run_storm_process(endpoint: str, pki: Path, logins: int) -> dict:
    """The storm in a process of its own (same monotonic clock), with the wrong password in its environment."""
    env = dict(os.environ, **{PASSWORD_VARIABLE: "wrong-pw"})
    process = await asyncio.create_subprocess_exec(sys.executable, str(Path(__file__).resolve()), "--storm", endpoint,
                                                   "--pki", str(pki), "--logins", str(logins), env=env,
                                                   stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(process.communicate(), 300)
    return json.loads(out.decode().strip().splitlines()[-1])


async def read_loop(client: Client, nodes: list, samples: list, stop: asyncio.Event) -> None:
    """Read ``nodes`` (Step first) every READ_EVERY_S until ``stop``; samples of (monotonic end,
    seconds, step or None when the read failed, as while the client reconnects)."""
    while not stop.is_set():
        began = time.monotonic()
        try:
            step = (await client.read_values(nodes))[0]
        except Exception:
            step = None
        ended = time.monotonic()
        samples.append((ended, ended - began, step))
        await asyncio.sleep(max(0.0, READ_EVERY_S - (ended - began)))


def step_intervals(samples: list, start: float, end: float) -> list[float]:
    """Wall seconds between successive new steps first seen within [start, end]."""
    seen, previous = [], None
    for ended, _, step in samples:
        if step is not None and previous is not None and step != previous:
            seen.append(ended)
        previous = step
    return [b - a for a, b in zip(seen, seen[1:]) if start <= b <= end]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else (values[0] if values else float("nan"))


def with_omitted(latencies: list[float], interval_s: float) -> list[float]:
    """Latencies with the reads a stall kept from being sent (a read that took L s delayed those due
    every ``interval_s`` behind it, by L - interval, L - 2 interval, ...): coordinated omission corrected."""
    full = []
    for latency in latencies:
        full.append(latency)
        full.extend(latency - k * interval_s for k in range(1, int(latency / interval_s)))
    return full


async def measure(endpoint: str, pki: Path, logins: int, quiet_s: float, after_s: float) -> dict:
    lost: set[int] = set()
    reader = await connected(endpoint, pki, "scada", lost, patient=True)  # it keeps watching Step through a stall
    idle = [await connected(endpoint, pki, "scada", lost) for _ in range(IDLE_CLIENTS)]
    idx = await reader.get_namespace_index(NAMESPACE)
    step_id = ua.NodeId(f"{PREFIX}.Control.Step", idx)
    outputs = [ua.NodeId(f"{PREFIX}.Outputs.{tag}", idx) for tag in ("FacilityPower", "OutdoorTemp")]
    nodes = [reader.get_node(node_id) for node_id in (step_id, *outputs)]
    for client in idle:
        subscription = await client.create_subscription(500, None)
        await subscription.subscribe_data_change(client.get_node(step_id))
    deadline = time.monotonic() + 300
    while await nodes[0].read_value() < 3:  # the engine is warmed up and pacing
        if time.monotonic() > deadline:
            raise TimeoutError("the bridge did not step within 300 s")
        await asyncio.sleep(0.2)
    samples: list = []
    stop = asyncio.Event()
    reading = asyncio.create_task(read_loop(reader, nodes, samples, stop))
    await asyncio.sleep(quiet_s)
    quiet_end = time.monotonic()
    result = await run_storm_process(endpoint, pki, logins)
    await asyncio.sleep(after_s)
    stop.set()
    await reading
    for client in (reader, *idle):
        try:
            await client.disconnect()
        except Exception:
            pass
    quiet = [seconds for ended, seconds, _ in samples if ended <= quiet_end]
    stormy = with_omitted([seconds for ended, seconds, _ in samples
                           if result["began"] <= ended <= result["ended"] + NOMINAL_STEP_S], READ_EVERY_S)
    answers = [answer for answer, _ in result["answers"]]
    refused_in = [seconds for answer, seconds in result["answers"] if answer == "BadUserAccessDenied"]
    storm_steps = step_intervals(samples, result["began"], result["ended"] + 2 * NOMINAL_STEP_S)
    quiet_steps = step_intervals(samples, 0.0, quiet_end)
    return {
        "step_interval_max_storm": figure(max(storm_steps, default=float("nan")), "s (nominal 1 s)",
                                          "<= 1.1 s (within 10 % of nominal)"),
        "step_interval_max_quiet": figure(max(quiet_steps, default=float("nan")), "s, before the storm"),
        "read_latency_p95_storm": figure(p95(stormy) * 1000, "ms (Step + 2 outputs, SignAndEncrypt; coordinated "
                                         "omission corrected)", "< 50 ms"),
        "read_latency_max_storm": figure(max(stormy, default=float("nan")) * 1000, "ms"),
        "read_latency_p95_quiet": figure(p95(quiet) * 1000, "ms, before the storm"),
        "read_failures_storm": figure(sum(step is None for ended, _, step in samples if ended > quiet_end), "reads"),
        "connected_clients_dropped": figure(len(lost), f"of {IDLE_CLIENTS + 1} (the reader and {IDLE_CLIENTS} "
                                            "subscribed clients: connection declared lost)", "0"),
        "storm_duration": figure(result["ended"] - result["began"], f"s until all {logins} wrong logins were answered"),
        "storm_refused_access_denied": figure(len(refused_in), f"of {logins} (BadUserAccessDenied)", str(logins)),
        "storm_refusal_median": figure(statistics.median(refused_in) * 1000 if refused_in else float("nan"), "ms"),
        "storm_answers_other": figure(len(answers) - len(refused_in), f"other answers: {sorted(set(answers))}", "0"),
    }


def measure_before(revision: str, logins: int) -> dict:
    """This benchmark run against the bridge of git ``revision``, in a temporary export of that tree."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        shutil.copy(Path(__file__), tree / "bench" / Path(__file__).name)
        env = dict(os.environ, PYTHONPATH=str(tree))
        out = subprocess.run([sys.executable, str(tree / "bench" / Path(__file__).name), "--logins", str(logins),
                              "--figures-only"], cwd=tree, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def measured(logins: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = secured_small_office(folder)
        os.environ[PASSWORD_VARIABLE] = "scada-pw"
        with run_bridge(config, folder) as bridge:
            return asyncio.run(measure(bridge.endpoint, folder / "client_pki", logins, quiet_s=5.0, after_s=3.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=40)
    parser.add_argument("--before", metavar="REV", help="also measure the bridge of this git revision")
    parser.add_argument("--storm", metavar="ENDPOINT", help=argparse.SUPPRESS)  # the storm's own process
    parser.add_argument("--pki", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--figures-only", action="store_true", help=argparse.SUPPRESS)  # for --before
    args = parser.parse_args()
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    if args.storm:
        os.nice(19)  # the attacker's client-side RSA work would run on its own machine, not beside the bridge
        print(json.dumps(asyncio.run(storm(args.storm, args.pki, args.logins))))
        return
    load_before = os.getloadavg()
    figures = measured(args.logins)
    if args.figures_only:
        print(json.dumps(figures))
        return
    if args.before:
        figures.update({f"before_{name}": value for name, value in measure_before(args.before, args.logins).items()})
    notes = (f"Paced DOE Small Office (1 step per wall second), Basic256Sha256 SignAndEncrypt, PBKDF2 600,000 "
             f"iterations; {args.logins} concurrent wrong-password logins from one process on loopback; a reader "
             f"every {READ_EVERY_S * 1000:.0f} ms and {IDLE_CLIENTS} subscribed clients logged in before. "
             f"before_*: the bridge of {args.before or '(not measured)'}. Load average before {load_before}, "
             f"after {os.getloadavg()}.")
    write_results("login_storm", figures, notes)


if __name__ == "__main__":
    main()
