"""The command line as a user meets it (issue 13, defect 8 and item 12): a bad or busy endpoint is one
line and exit 2 before anything runs, Ctrl-C on a controller is one line and exit 130, exports carry
units, every command and option has its help."""

from __future__ import annotations

import datetime as dt
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from bridge.cli import build_parser, main
from bridge.config import ConfigError, load_config
from bridge.historian import Historian
from bridge.tagmap import load_tagmap
from conftest import REPO, SIMS, TAGMAPS, free_port, run_bridge, run_cli


def campus_file(tmp_path, server: str = "") -> str:
    text = (SIMS / "small_office.toml").read_text().replace('"../tagmaps/', f'"{REPO}/tagmaps/')
    path = tmp_path / "campus.toml"
    path.write_text(text.replace("[run]", f"[server]\n{server}\n\n[run]"))
    return str(path)


@pytest.mark.parametrize("endpoint, problem", [
    ("http://nowhere:80", "must start with opc.tcp://"),
    ("opc.tcp://:4840", "names no host"),
    ("opc.tcp://127.0.0.1", "needs a port 1-65535"),
    ("opc.tcp://127.0.0.1:0", "needs a port 1-65535"),
    ("opc.tcp://127.0.0.1:70000", "is not an opc.tcp://host:port URL"),
    ("opc.tcp://127.0.0.1:port", "is not an opc.tcp://host:port URL"),
])
def test_a_bad_endpoint_is_refused_in_the_file_and_on_the_command_line(tmp_path, endpoint, problem):
    with pytest.raises(ConfigError, match=f"endpoint '{endpoint}' {problem}"):
        load_config(campus_file(tmp_path, f'endpoint = "{endpoint}"'))
    with pytest.raises(ConfigError, match=problem):
        load_config(campus_file(tmp_path)).with_overrides(endpoint=endpoint)


def test_validate_refuses_a_bad_endpoint_in_one_line(tmp_path):
    result = run_cli("validate", campus_file(tmp_path, 'endpoint = "http://nowhere:80"'), timeout_s=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"twinbridge: error: {tmp_path / 'campus.toml'}: [server] endpoint 'http://nowhere:80' must start with "
        "opc.tcp:// (OPC UA binary over TCP)"]


def test_run_on_a_busy_port_is_one_line_and_records_nothing(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        endpoint = f"opc.tcp://127.0.0.1:{busy.getsockname()[1]}"
        began = time.monotonic()
        result = run_cli("run", campus_file(tmp_path), "--endpoint", endpoint, "--run-dir", str(tmp_path / "runs"),
                         timeout_s=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"twinbridge: error: cannot serve OPC UA at {endpoint}: "), result.stderr
    assert "address already in use" in lines[0]
    assert not (tmp_path / "runs").exists()  # no engine, no historian, no KPIs
    assert time.monotonic() - began < 30


def test_ctrl_c_stops_a_controller_in_one_line(tmp_path):
    args = [sys.executable, "-m", "bridge.cli", "controller", "schedule", "--endpoint", f"opc.tcp://127.0.0.1:{free_port()}",
            "--building", "SmallOffice", "--config", str(REPO / "controllers/examples/small_office_schedule.toml")]
    process = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = ""
        while "bridge not reachable" not in seen:  # the loop is waiting for the bridge, in asyncio
            line = process.stderr.readline()
            assert line, f"controller ended early: {seen}"
            seen += line
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130
    assert "Traceback" not in rest
    assert rest.strip().splitlines()[-1] == "twinbridge: interrupted"
    assert [line for line in rest.splitlines() if "controllers.loop" not in line] == ["twinbridge: interrupted"]


@pytest.mark.parametrize("form", ["csv", "parquet"])
def test_export_names_each_tags_unit(tmp_path, form):
    tagmap = load_tagmap(TAGMAPS / "small_office.toml")
    historian = Historian(tmp_path / "historian.sqlite", {"SmallOffice": tagmap})
    values = {tag.tag: 1.0 for tag in (*tagmap.inputs, *tagmap.outputs)}
    historian.record([("SmallOffice", 1, 600.0, dt.datetime(2025, 7, 1, 0, 10), values)])
    historian.close()
    assert main(["export", str(tmp_path / "historian.sqlite"), "--format", form, "--out", str(tmp_path)]) == 0
    target = tmp_path / f"SmallOffice.{form}"
    frame = pd.read_csv(target) if form == "csv" else pd.read_parquet(target)
    units = {tag.tag: tag.unit for tag in (*tagmap.inputs, *tagmap.outputs)}
    assert units["FacilityPower"] == "kW" and units["CoolingSetpoint"] == "degC"
    assert {f"{tag} [{unit}]" for tag, unit in units.items()} <= set(frame.columns)
    assert {"step", "sim_time_s"} <= set(frame.columns)
    if form == "csv":  # the tracking and M&V commands read it back under the tags' names
        from bridge.tracking.runfiles import load_run

        assert set(units) <= set(load_run(target).columns)


@pytest.mark.parametrize("argv, expected", [
    (["validate", "-h"], "Check a building or campus file"),
    (["hash-password", "-h"], "Print the PBKDF2 hash"),
    (["export", "-h"], "(default: csv)"),
    (["run", "-h"], "else 60)"),
    (["run", "-h"], "else 10)"),
])
def test_every_command_and_option_has_help(capsys, argv, expected):
    with pytest.raises(SystemExit):
        build_parser(argv).parse_args(argv)
    assert expected in " ".join(capsys.readouterr().out.split())


@pytest.mark.engine
def test_the_readmes_uals_command_lists_the_tags(tmp_path):
    command = re.search(r"`(uals [^`]+)`", (REPO / "README.md").read_text()).group(1)
    with run_bridge(SIMS / "small_office.toml", tmp_path, "--wait-for-start") as bridge:
        argv = shlex.split(command.replace("opc.tcp://127.0.0.1:4840", bridge.endpoint).replace("DemoCampus", "TestSite"))
        uals = "import sys; from asyncua.tools import uals; sys.argv[0] = 'uals'; uals()"
        result = subprocess.run([sys.executable, "-c", uals, *argv[1:]], capture_output=True, text=True, timeout=60)
    assert "Inputs.CoolingSetpoint" in result.stdout and "Outputs.FacilityPower" in result.stdout, result.stdout
