"""Interoperability: an independent OPC UA stack (node-opcua, from npm) sees a real building."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import REPO, run_bridge, secured_config, write_users

INTEROP = REPO / "tests" / "interop"
pytestmark = [pytest.mark.engine, pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")]


@pytest.fixture(scope="module")
def node_client() -> list[str]:
    if not (INTEROP / "node_modules" / "node-opcua-client").is_dir():
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=INTEROP, check=True,
                       timeout=600)
    return ["node", str(INTEROP / "scada_client.js")]


def test_node_opcua_browses_reads_writes_and_reads_history(node_client, small_office_config, tmp_path):
    with run_bridge(small_office_config, tmp_path) as bridge:  # runs to the end, then keeps serving
        for _ in range(600):
            if "run finished" in bridge.log:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        result = subprocess.run([*node_client, bridge.endpoint, "TestSite", "SmallOffice"], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        seen = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
        assert "refused write of 99.0 to SmallOffice.CoolingSetpoint" in bridge.log
    assert seen["folders"] == ["Control", "Inputs", "KPIs", "Outputs"]  # KPIs: the run has ended
    assert seen["inputs"] == ["CoolingSetpoint", "HeatingSetpoint"]
    assert seen["euRange"] == [18.0, 32.0] and seen["units"] == "degC"
    assert seen["powerType"] == "Double" and seen["powerTime"] == "2025-07-04T00:00:00.000Z"
    assert seen["writeInRange"] == "Good" and seen["writeOutOfRange"] == "BadOutOfRange"
    assert seen["setpointAfter"] == 26.5
    assert seen["historyStatus"] == "Good" and seen["historyValues"] == 432


def test_node_opcua_signs_encrypts_and_logs_in(node_client, small_office_config, tmp_path, monkeypatch):
    """The same SCADA session over Basic256Sha256 SignAndEncrypt with a user name: node-opcua's own
    certificate, the bridge's self-signed one, the password encrypted for the server."""
    write_users(tmp_path / "users.toml", {"scada": ("operator", "scada-pw")})
    config = secured_config(tmp_path, "\n".join([
        'security_policies = ["Basic256Sha256_SignAndEncrypt"]', 'certificate = "pki/server.der"',
        'private_key = "pki/server_key.pem"', 'users = "users.toml"']))
    monkeypatch.setenv("TWINBRIDGE_OPCUA_PASSWORD", "scada-pw")
    monkeypatch.setenv("TWINBRIDGE_NODE_PKI", str(tmp_path / "node_pki"))
    with run_bridge(config, tmp_path) as bridge:
        result = subprocess.run([*node_client, bridge.endpoint, "TestSite", "SmallOffice", "Basic256Sha256",
                                 "SignAndEncrypt", "scada"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        seen = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
        refused = subprocess.run([*node_client, bridge.endpoint, "TestSite", "SmallOffice", "None", "None", "scada"],
                                 capture_output=True, text=True, timeout=120)
        log = bridge.log
    assert seen["securityMode"] == "SignAndEncrypt"
    assert seen["writeInRange"] == "Good" and seen["setpointAfter"] == 26.5
    # the right password over an unsecured channel: node-opcua finds no such endpoint on the server (the
    # server's own refusal of an unsecured channel is tested with asyncua in test_security.py)
    assert refused.returncode != 0 and "End point must exist" in refused.stderr, refused.stderr[-2000:]
    assert "refused write" in log
