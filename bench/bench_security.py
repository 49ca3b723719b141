"""What OPC UA security costs a SCADA client of the bridge, measured side by side in one run.

One bridge serves the DOE Large Office (idle, ``--wait-for-start``: the address space without a
running engine) on one endpoint URL with four security policies. One client per policy, all open
at once, does a SCADA poll cycle: one Read of every output tag and one Write of the four setpoints
(two round trips). The clients take turns in rounds of ``--per-round`` cycles, so that load changes
on this shared machine hit every policy alike. Also measured: session set-up (endpoint lookup,
secure channel, session, activation) with and without a user name (PBKDF2 check, 600,000
iterations; the bridge remembers a verified login, so only the first one pays).

    /work/venv/bin/python bench/bench_security.py [--rounds 10] [--per-round 100]

Writes bench/results/opcua_security.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from asyncua import Client, ua

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from bench.results_io import figure, write_results  # noqa: E402
from bridge.config import load_config  # noqa: E402
from bridge.protocol import NAMESPACE  # noqa: E402
from bridge.security import hash_password  # noqa: E402
from bridge.security.client import CLIENT_URI, configure_client  # noqa: E402
from bridge.security.server import ensure_certificate  # noqa: E402
from bridge.security.settings import PASSWORD_VARIABLE, ClientSecurity  # noqa: E402
from devtools.launcher import run_bridge  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
POLICIES = {  # client security string per policy (certificate files are created on first use)
    "None": "",
    "Basic256Sha256_Sign": "Basic256Sha256,Sign,{pki}/client.der,{pki}/client_key.pem",
    "Basic256Sha256_SignAndEncrypt": "Basic256Sha256,SignAndEncrypt,{pki}/client.der,{pki}/client_key.pem",
    "Aes256Sha256RsaPss_SignAndEncrypt": "Aes256Sha256RsaPss,SignAndEncrypt,{pki}/client.der,{pki}/client_key.pem",
}


def secured_large_office(folder: Path) -> Path:
    """sims/large_office.toml with every benchmarked policy, anonymous operators and one user."""
    (folder / "users.toml").write_text(f'[[user]]\nname = "bench"\nrole = "operator"\n'
                                      f'password_hash = "{hash_password("bench-pw")}"\n')
    policies = ", ".join(f'"{name}"' for name in POLICIES)
    text = (ROOT / "sims/large_office.toml").read_text().replace('"../tagmaps/', f'"{ROOT}/tagmaps/')
    server = (f'[server]\nsecurity_policies = [{policies}]\ncertificate = "pki/server.der"\n'
              f'private_key = "pki/server_key.pem"\nusers = "users.toml"\nanonymous = "operator"\n\n')
    path = folder / "secured.toml"
    path.write_text(text.replace("[run]", server + "[run]"))
    return path


async def session(endpoint: str, security: str, user: str = "") -> tuple[Client, float]:
    """A connected client and the seconds its session set-up took."""
    client = Client(endpoint, timeout=30)
    began = time.perf_counter()
    await configure_client(client, ClientSecurity(security, user))
    await client.connect()
    return client, time.perf_counter() - began


async def poll_cycle_nodes(client: Client, campus: str, building: str, tagmap) -> tuple[list, list]:
    idx = await client.get_namespace_index(NAMESPACE)
    outputs = [client.get_node(ua.NodeId(f"{campus}.{building}.Outputs.{o.tag}", idx)) for o in tagmap.outputs]
    inputs = [client.get_node(ua.NodeId(f"{campus}.{building}.Inputs.{i.tag}", idx)) for i in tagmap.inputs]
    return outputs, inputs


async def measure(endpoint: str, pki: Path, rounds: int, per_round: int, campus: str, building: str,
                  tagmap) -> dict[str, dict]:
    # the client's certificate first, so that no set-up below includes making an RSA key
    await ensure_certificate(pki / "client.der", pki / "client_key.pem", CLIENT_URI, socket.gethostname(), client=True)
    clients, setup_s, nodes = {}, {}, {}
    for name, template in POLICIES.items():
        clients[name], setup_s[name] = await session(endpoint, template.format(pki=pki))
        nodes[name] = await poll_cycle_nodes(clients[name], campus, building, tagmap)
    login_first = (await session(endpoint, POLICIES["Basic256Sha256_SignAndEncrypt"].format(pki=pki), "bench"))
    login_again = (await session(endpoint, POLICIES["Basic256Sha256_SignAndEncrypt"].format(pki=pki), "bench"))
    anonymous_again = (await session(endpoint, POLICIES["Basic256Sha256_SignAndEncrypt"].format(pki=pki)))
    for client, _ in (login_first, login_again, anonymous_again):
        await client.disconnect()
    cycle_ms: dict[str, list[float]] = {name: [] for name in POLICIES}
    values = [ua.Variant(v, ua.VariantType.Double) for v in (24.0, 21.0, 12.8, 6.7)][:len(tagmap.inputs)]
    for _ in range(rounds):
        for name, client in clients.items():
            outputs, inputs = nodes[name]
            began = time.perf_counter()
            for _ in range(per_round):
                await client.read_values(outputs)
                await client.write_values(inputs, values)
            cycle_ms[name].append((time.perf_counter() - began) / per_round * 1000)
    for client in clients.values():
        await client.disconnect()
    figures = {}
    base = statistics.median(cycle_ms["None"])
    for name, samples in cycle_ms.items():
        median = statistics.median(samples)
        figures[f"poll_cycle_{name}"] = figure(median, "ms (read all outputs + write 4 inputs)")
        figures[f"poll_cycle_ratio_{name}_to_None"] = figure(median / base, "ratio")
        figures[f"session_setup_{name}"] = figure(setup_s[name] * 1000, "ms (anonymous)")
    figures["session_setup_user_first_login"] = figure(login_first[1] * 1000, "ms (Basic256Sha256 SignAndEncrypt, PBKDF2 600k)")
    figures["session_setup_user_again"] = figure(login_again[1] * 1000, "ms (verified login remembered)")
    figures["session_setup_anonymous_same_policy"] = figure(anonymous_again[1] * 1000, "ms")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=100)
    args = parser.parse_args()
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config_path = secured_large_office(folder)
        config = load_config(config_path)
        building = config.buildings[0]
        os.environ[PASSWORD_VARIABLE] = "bench-pw"
        with run_bridge(config_path, folder, "--wait-for-start") as bridge:
            figures = asyncio.run(measure(bridge.endpoint, folder / "client_pki", args.rounds, args.per_round,
                                          config.name, building.name, building.tagmap))
    notes = (f"DOE Large Office tag map ({len(building.tagmap.outputs)} outputs, {len(building.tagmap.inputs)} inputs), "
             f"bridge idle; {args.rounds} rounds x {args.per_round} cycles per policy, policies interleaved; medians "
             f"over rounds. Load average before {load_before}, after {os.getloadavg()}.")
    write_results("opcua_security", figures, notes)


if __name__ == "__main__":
    main()
