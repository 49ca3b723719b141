"""Controllers as separate processes against a real bridge and real EnergyPlus, on loopback.

Each test starts ``twinbridge run`` (devtools.launcher.run_bridge) in lockstep and one or more
``twinbridge controller ...`` processes, then checks the historian: the inputs of every step equal
what the controller's rules give for the start of that step.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.historian import load_history
from conftest import REPO, TAGMAPS, run_bridge, wait_until
from controllers.client import BridgeClient
from controllers.csv_trajectory import load_trajectory
from controllers.schedule import load_schedule
from devtools import launcher

pytestmark = pytest.mark.engine
STEP = dt.timedelta(minutes=10)
EXAMPLES = REPO / "controllers" / "examples"


class ControllerProcess:
    """``twinbridge controller <kind> ...`` in a child process, its output in a log file."""

    def __init__(self, kind: str, endpoint: str, building: str, config: Path, log_path: Path, *extra: str):
        self.log_path = log_path
        args = [sys.executable, "-m", "bridge.cli", "controller", kind, "--endpoint", endpoint,
                "--building", building, "--config", str(config), "--reconnect-timeout", "60", *extra]
        with open(log_path, "ab") as log_file:
            self.process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self, timeout_s: float = 180.0) -> int:
        return self.process.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def controllers():
    """Start controller processes; kill any still running at the end of the test."""
    started: list[ControllerProcess] = []

    def start(*args) -> ControllerProcess:
        started.append(ControllerProcess(*args))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def step_of(endpoint: str, building: str) -> int:
    """Current step the bridge shows for ``building`` (0 while it cannot be read)."""
    async def read() -> int:
        client = BridgeClient(endpoint, building)
        try:
            await client.connect()
            return (await client.read_state()).step
        except (OSError, TimeoutError, ConnectionError):
            return 0
        finally:
            await client.close()
    return asyncio.run(read())


def wait_for_step(endpoint: str, building: str, step: int, timeout_s: float = 120.0) -> None:
    async def reached() -> bool:
        return await asyncio.to_thread(step_of, endpoint, building) >= step
    asyncio.run(wait_until(reached, timeout_s, interval_s=0.2))


async def _contains(process, text: str) -> bool:
    return text in process.log


def wait_for_log(bridge, text: str, count: int, timeout_s: float = 60.0) -> None:
    async def seen() -> bool:
        return bridge.log.count(text) >= count
    asyncio.run(wait_until(seen, timeout_s, interval_s=0.2))


async def start_campus(endpoint: str, campus: str, building: str) -> None:
    """Call ``<Campus>.Control.Start`` on a bridge run with ``--wait-for-start``."""
    client = BridgeClient(endpoint, building)
    await client.connect()
    try:
        control = await client.session.nodes.objects.get_child([f"{client.ns}:{campus}", f"{client.ns}:Control"])
        await control.call_method(f"{client.ns}:Start")
    finally:
        await client.close()


def expected_inputs(frame, rule) -> list[dict[str, float]]:
    """The controller's values for each historian row: rows are stamped at the END of their step."""
    return [rule((time - STEP).to_pydatetime()) for time in frame.index]


def test_schedule_closed_loop_reaches_energyplus(small_office_config, tmp_path, controllers):
    config = tmp_path / "schedule.toml"
    config.write_text('[setback]\nCoolingSetpoint = 29.0\nHeatingSetpoint = 15.6\n'
                      '[[occupied]]\ndays = ["mon", "tue", "wed", "thu", "fri"]\nstart = "07:00"\nend = "19:00"\n'
                      'ramp_minutes = 60\nsetpoints = { CoolingSetpoint = 23.0, HeatingSetpoint = 21.0 }\n'
                      '[[events]]\nname = "DR"\ndates = ["07-02"]\nstart = "15:00"\nend = "17:00"\n'
                      'offsets = { CoolingSetpoint = 3.0 }\n')
    schedule = load_schedule(config)
    with run_bridge(small_office_config, tmp_path, "--clock", "lockstep", "--lockstep-timeout", "5",
                    keep_serving=False) as bridge:
        controller = controllers("schedule", bridge.endpoint, "SmallOffice", config, tmp_path / "controller.log")
        assert controller.wait() == 0, controller.log
        assert bridge.wait() == 0, bridge.log
        assert "no InputReady" not in bridge.log
        frame = load_history(bridge.historian(), "SmallOffice")

    assert len(frame) == 432
    expected = expected_inputs(frame, schedule.setpoints)
    assert frame[["CoolingSetpoint", "HeatingSetpoint"]].to_dict("records") == expected
    cooling = frame["CoolingSetpoint"]
    occupied = frame[(cooling == 23.0) & (frame.index.hour >= 8)]
    pinned = (occupied["CoreZoneTemp"] - 23.0).abs() < 0.3
    assert len(occupied) > 150 and pinned.mean() > 0.9, occupied["CoreZoneTemp"].describe()
    demand_response = frame[(cooling == 26.0) & (frame.index.hour == 16)]
    assert len(demand_response) == 6 and demand_response["CoreZoneTemp"].mean() > 25.0
    night = frame[frame.index.hour < 5]
    assert (night["CoolingSetpoint"] == 29.0).all()
    assert night["CoreZoneTemp"].mean() > occupied["CoreZoneTemp"].mean() + 0.3  # free-floating, not cooled


@pytest.mark.parametrize("mode", ["lockstep", "exchange"])
def test_csv_controller_replays_the_trajectory(small_office_config, tmp_path, controllers, mode):
    path = EXAMPLES / "small_office_trajectory.csv"
    trajectory = load_trajectory(path, "linear")
    with run_bridge(small_office_config, tmp_path, "--clock", "lockstep", "--lockstep-timeout", "5",
                    keep_serving=False) as bridge:
        controller = controllers("csv", bridge.endpoint, "SmallOffice", path, tmp_path / "controller.log",
                                 "--interpolation", "linear", "--mode", mode)
        assert controller.wait() == 0, controller.log
        assert bridge.wait() == 0, bridge.log
        assert "no InputReady" not in bridge.log
        frame = load_history(bridge.historian(), "SmallOffice")

    assert len(frame) == 432
    for row, expected in zip(frame[["CoolingSetpoint", "HeatingSetpoint"]].to_dict("records"),
                             expected_inputs(frame, trajectory.values_at)):
        assert row == pytest.approx(expected, abs=1e-12)


def test_two_controllers_drive_two_buildings_in_lockstep(tmp_path, controllers):
    campus = tmp_path / "two.toml"
    campus.write_text(f'[campus]\nname = "Pair"\n[run]\nstart = "07-01"\nend = "07-01"\ntimesteps_per_hour = 6\n'
                      f'[[buildings]]\nname = "SmallOffice"\nmodel = "ref:small_office"\n'
                      f'tagmap = "{TAGMAPS / "small_office.toml"}"\n'
                      f'[[buildings]]\nname = "Warehouse"\nmodel = "ref:warehouse"\n'
                      f'tagmap = "{TAGMAPS / "warehouse.toml"}"\n')
    schedule = load_schedule(EXAMPLES / "small_office_schedule.toml")
    trajectory = load_trajectory(EXAMPLES / "small_office_trajectory.csv", "step")
    with run_bridge(campus, tmp_path, "--clock", "lockstep", "--lockstep-timeout", "5", keep_serving=False) as bridge:
        office = controllers("schedule", bridge.endpoint, "SmallOffice", EXAMPLES / "small_office_schedule.toml",
                             tmp_path / "office.log")
        warehouse = controllers("csv", bridge.endpoint, "Warehouse", EXAMPLES / "small_office_trajectory.csv",
                                tmp_path / "warehouse.log")
        assert office.wait() == 0, office.log
        assert warehouse.wait() == 0, warehouse.log
        assert bridge.wait() == 0, bridge.log
        assert "no InputReady" not in bridge.log
        office_frame = load_history(bridge.historian(), "SmallOffice")
        warehouse_frame = load_history(bridge.historian(), "Warehouse")

    assert len(office_frame) == len(warehouse_frame) == 144
    tags = ["CoolingSetpoint", "HeatingSetpoint"]
    assert office_frame[tags].to_dict("records") == expected_inputs(office_frame, schedule.setpoints)
    assert warehouse_frame[tags].to_dict("records") == expected_inputs(warehouse_frame, trajectory.values_at)


def ramp_trajectory(tmp_path: Path) -> Path:
    """A cooling setpoint that changes every step, so a held value is told apart from a written one."""
    path = tmp_path / "ramp.csv"
    path.write_text("time,CoolingSetpoint,HeatingSetpoint\n2025-07-01 00:00,18.0,15.0\n2025-07-04 00:00,32.0,15.0\n")
    return path


def assert_held_then_resumed(frame, trajectory) -> None:
    """Rows differ from the trajectory in one block only, where they hold the value written just before."""
    written = frame["CoolingSetpoint"].to_numpy()
    expected = [v["CoolingSetpoint"] for v in expected_inputs(frame, trajectory.values_at)]
    off = [i for i, (w, e) in enumerate(zip(written, expected)) if abs(w - e) > 1e-9]
    # At least one held step; the first timed-out step may still carry values written just before the kill.
    assert off, "the controller's absence left no trace"
    assert off == list(range(off[0], off[-1] + 1)), f"more than one gap: {off}"
    assert off[0] > 0 and (written[off] == written[off[0] - 1]).all(), "the bridge did not hold the last inputs"
    assert off[-1] < len(written) - 10, "the loop did not resume after the restart"


def test_killed_controller_is_timed_out_and_resumes_after_restart(small_office_config, tmp_path, controllers):
    path = ramp_trajectory(tmp_path)
    with run_bridge(small_office_config, tmp_path, "--clock", "lockstep", "--lockstep-timeout", "2",
                    keep_serving=False) as bridge:
        first = controllers("csv", bridge.endpoint, "SmallOffice", path, tmp_path / "first.log",
                            "--interpolation", "linear")
        wait_for_step(bridge.endpoint, "SmallOffice", 60)
        first.kill()
        wait_for_log(bridge, "no InputReady", 2)  # the bridge times out and goes on
        second = controllers("csv", bridge.endpoint, "SmallOffice", path, tmp_path / "second.log",
                             "--interpolation", "linear")
        assert second.wait() == 0, second.log
        assert bridge.wait() == 0, bridge.log
        frame = load_history(bridge.historian(), "SmallOffice")

    assert len(frame) == 432
    assert_held_then_resumed(frame, load_trajectory(path, "linear"))


def test_controller_reconnects_after_the_bridge_drops(small_office_config, tmp_path, controllers, monkeypatch):
    port = launcher.free_port()
    monkeypatch.setattr(launcher, "free_port", lambda: port)  # both bridges serve the same endpoint
    path = ramp_trajectory(tmp_path)
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    with run_bridge(small_office_config, tmp_path / "first", "--clock", "lockstep", "--lockstep-timeout", "5") as first:
        controller = controllers("csv", first.endpoint, "SmallOffice", path, tmp_path / "controller.log",
                                 "--interpolation", "linear")
        wait_for_step(first.endpoint, "SmallOffice", 60)
        engines = first.engine_pids("SmallOffice")
        first.process.kill()  # the server vanishes without a word, as in a network or power loss
        first.process.wait(timeout=10)
        for pid in engines:
            subprocess.run(["kill", "-9", str(pid)], check=False)
    with run_bridge(small_office_config, tmp_path / "second", "--clock", "lockstep", "--lockstep-timeout", "5",
                    keep_serving=False) as second:
        assert controller.wait() == 0, controller.log
        assert second.wait() == 0, second.log
        frame = load_history(second.historian(), "SmallOffice")
    assert "lost the bridge" in controller.log and "connected to" in controller.log
    assert len(frame) == 432
    trajectory = load_trajectory(path, "linear")
    expected = [v["CoolingSetpoint"] for v in expected_inputs(frame, trajectory.values_at)]
    assert frame["CoolingSetpoint"].to_numpy()[-100:] == pytest.approx(expected[-100:], abs=1e-12)


def test_bad_configs_fail_before_the_run(small_office_config, tmp_path, controllers):
    out_of_range = tmp_path / "hot.csv"
    out_of_range.write_text("time,CoolingSetpoint,HeatingSetpoint\n2025-07-01 00:00,24,21\n2025-07-01 06:00,35,21\n")
    unknown = tmp_path / "fan.csv"
    unknown.write_text("time,CoolingSetpoint,HeatingSetpoint,FanSpeed\n2025-07-01 00:00,24,21,1\n")
    bad_time = tmp_path / "when.csv"
    bad_time.write_text("time,CoolingSetpoint,HeatingSetpoint\n2025-07-01 00:00,24,21\nnoon,24,21\n")
    schedule = tmp_path / "cold.toml"
    schedule.write_text("[setback]\nCoolingSetpoint = 29.0\nHeatingSetpoint = 5.0\n")
    cases = [("csv", out_of_range, "row 3, column 'CoolingSetpoint': 35 is outside the tag's EURange [18, 32]"),
             ("csv", unknown, "column 'FanSpeed' is not an input tag"),
             ("csv", bad_time, "row 3, column 'time': cannot read 'noon' as a time"),
             ("schedule", schedule, "[setback]: HeatingSetpoint = 5 is outside the tag's EURange [10, 24]")]
    with run_bridge(small_office_config, tmp_path, "--clock", "lockstep", "--wait-for-start") as bridge:
        for i, (kind, config, message) in enumerate(cases):
            process = controllers(kind, bridge.endpoint, "SmallOffice", config, tmp_path / f"bad{i}.log")
            assert process.wait(60) == 2, process.log
            assert "twinbridge: error: " in process.log and message in process.log, process.log

        async def inputs() -> dict:
            client = BridgeClient(bridge.endpoint, "SmallOffice")
            await client.connect()
            try:
                return await client.read_inputs()
            finally:
                await client.close()
        assert asyncio.run(inputs()) == {"CoolingSetpoint": 24.0, "HeatingSetpoint": 21.0}  # nothing written


def test_paced_controller_acts_on_its_period(tmp_path, controllers):
    campus = tmp_path / "day.toml"
    campus.write_text(f'[campus]\nname = "Paced"\n[run]\nstart = "07-01"\nend = "07-01"\ntimesteps_per_hour = 6\n'
                      f'[[buildings]]\nname = "SmallOffice"\nmodel = "ref:small_office"\n'
                      f'tagmap = "{TAGMAPS / "small_office.toml"}"\n')
    schedule = load_schedule(EXAMPLES / "small_office_schedule.toml")
    # 12,000 simulated seconds per wall second: a 10-minute step every 50 ms; the controller acts every 10 ms.
    with run_bridge(campus, tmp_path, "--clock", "paced", "--speed", "12000", "--wait-for-start") as bridge:
        controller = controllers("schedule", bridge.endpoint, "SmallOffice", EXAMPLES / "small_office_schedule.toml",
                                 tmp_path / "controller.log", "--mode", "paced", "--period", "0.01")
        wait_for_log(bridge, "waiting for a client", 1)
        asyncio.run(start_campus(bridge.endpoint, "Paced", "SmallOffice"))
        assert controller.wait() == 0, controller.log
        frame = load_history(bridge.historian(), "SmallOffice")

    assert len(frame) == 144
    rows = frame[["CoolingSetpoint", "HeatingSetpoint"]].to_dict("records")
    matches = sum(row == expected for row, expected in zip(rows, expected_inputs(frame, schedule.setpoints)))
    assert matches >= 0.9 * len(rows)  # a paced controller may be a step late where the schedule changes
    assert (frame["CoolingSetpoint"] != 24.0).any() and (frame["CoolingSetpoint"] == 24.0).any()


@pytest.mark.parametrize("mode", ["lockstep", "exchange"])
def test_missing_controller_does_not_starve_the_other_building(tmp_path, controllers, mode):
    campus = tmp_path / "half.toml"
    campus.write_text(f'[campus]\nname = "Half"\n[run]\nstart = "07-01"\nend = "07-01"\ntimesteps_per_hour = 1\n'
                      f'[[buildings]]\nname = "SmallOffice"\nmodel = "ref:small_office"\n'
                      f'tagmap = "{TAGMAPS / "small_office.toml"}"\n'
                      f'[[buildings]]\nname = "Warehouse"\nmodel = "ref:warehouse"\n'
                      f'tagmap = "{TAGMAPS / "warehouse.toml"}"\n')
    schedule = load_schedule(EXAMPLES / "small_office_schedule.toml")
    with run_bridge(campus, tmp_path, "--clock", "lockstep", "--lockstep-timeout", "0.3", "--wait-for-start",
                    keep_serving=False) as bridge:
        office = controllers("schedule", bridge.endpoint, "SmallOffice", EXAMPLES / "small_office_schedule.toml",
                             tmp_path / "office.log", "--mode", mode)  # the Warehouse has no controller at all
        asyncio.run(wait_until(lambda: _contains(office, "connected to"), 60, 0.1))
        asyncio.run(start_campus(bridge.endpoint, "Half", "SmallOffice"))  # the office controller is ready
        assert office.wait() == 0, office.log
        assert bridge.wait() == 0, bridge.log
        frame = load_history(bridge.historian(), "SmallOffice")
        warehouse = load_history(bridge.historian(), "Warehouse")

    assert "Warehouse: no InputReady" in bridge.log and "SmallOffice: no InputReady" not in bridge.log
    assert len(frame) == len(warehouse) == 24
    hour = dt.timedelta(hours=1)
    expected = [schedule.setpoints((time - hour).to_pydatetime()) for time in frame.index]
    assert frame[["CoolingSetpoint", "HeatingSetpoint"]].to_dict("records") == expected
    assert (warehouse["CoolingSetpoint"] == 24.0).all()  # the tag-map default, held throughout


def test_a_lockstep_controller_against_a_paced_bridge_says_what_to_do_at_once(small_office_config, tmp_path):
    """A paced bridge never raises OutputReady: a lockstep controller used to wait silently until its step
    timeout and then blame 'no new step'; it now reads Control.Clock at connect and says what to do."""
    from controllers.base import ControllerError
    from controllers.loop import LoopOptions, run_controller
    from controllers.schedule import ScheduleController

    controller = ScheduleController(load_schedule(EXAMPLES / "small_office_schedule.toml"))
    with run_bridge(small_office_config, tmp_path, "--clock", "paced", "--wait-for-start") as bridge:
        began = time.monotonic()
        with pytest.raises(ControllerError, match=r"SmallOffice: the bridge at .* runs a paced clock, which hands no "
                                                  r"step to controllers .*: use --mode paced or exchange"):
            asyncio.run(run_controller(controller, bridge.endpoint, "SmallOffice",
                                       options=LoopOptions(mode="lockstep", step_timeout_s=20)))
    assert time.monotonic() - began < 10
