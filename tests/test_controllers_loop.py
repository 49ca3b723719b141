"""The control loop's bounded waits and options (fast: no bridge, nothing listening)."""

from __future__ import annotations

import asyncio
import time
import subprocess
import sys

import pytest

from conftest import REPO, free_port
from controllers.base import ControllerError
from controllers.loop import LoopOptions, run_controller
from controllers.schedule import ScheduleController, load_schedule

SCHEDULE = REPO / "controllers" / "examples" / "small_office_schedule.toml"


def test_unreachable_bridge_gives_up_after_the_reconnect_timeout():
    controller = ScheduleController(load_schedule(SCHEDULE))
    options = LoopOptions(reconnect_timeout_s=0.5, backoff_initial_s=0.1)
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
    with pytest.raises(ControllerError, match=rf"cannot reach building 'SmallOffice' at {endpoint} within 0.5 s"):
        asyncio.run(run_controller(controller, endpoint, "SmallOffice", options=options))


@pytest.mark.parametrize("changes", [{"mode": "fastest"}, {"poll_s": 0.0}, {"step_timeout_s": -1.0}])
def test_options_are_checked(changes):
    with pytest.raises(ValueError):
        LoopOptions(**changes)


def test_cli_reports_a_bad_file_before_connecting(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[setback]\nCoolingSetpoint = 28.0\n[[occupied]]\ndays = ['mon']\nstart = '6am'\nend = '18:00'\n"
                   "setpoints = { CoolingSetpoint = 24.0 }\n")
    result = subprocess.run([sys.executable, "-m", "bridge.cli", "controller", "schedule", "--endpoint",
                             f"opc.tcp://127.0.0.1:{free_port()}", "--building", "SmallOffice", "--config", str(bad)],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 2
    assert f"{bad}: occupied[0].start: expected a time of day 'HH:MM', got '6am'" in result.stderr


def test_poll_interval_is_checked_against_its_ceiling():
    with pytest.raises(ValueError, match="poll_max_s"):
        LoopOptions(poll_s=0.1, poll_max_s=0.01)


def test_waiting_reads_back_off_to_the_ceiling():
    """A wait of 0.6 s costs about 50 fast reads + 0.55 / 0.05, not ~600 (fake client: loop logic only)."""
    from controllers.client import StepState
    from controllers.loop import LoopReport, _next_step

    class SlowBridge:
        reads = 0

        async def read_state(self):
            self.reads += 1
            ready = time.monotonic() >= ready_at
            return StepState(status="Running", step=1 if ready else 0, sim_time=None, output_ready=ready, outputs={})

    bridge = SlowBridge()
    ready_at = time.monotonic() + 0.6
    _, state = asyncio.run(_next_step(bridge, LoopOptions(), LoopReport()))
    assert state.step == 1 and state.output_ready
    assert 10 <= bridge.reads <= 100


@pytest.mark.parametrize("values, message", [
    ({"CoolingSetpiont": 26.0, "HeatingSetpoint": 20.0}, r"no input tags \['CoolingSetpiont'\]"),
    ({"CoolingSetpoint": 35.0, "HeatingSetpoint": 20.0}, r"out of range: CoolingSetpoint=35.0 \(range 18..30\)"),
])
def test_exchange_names_an_unknown_tag_or_a_value_out_of_range_before_calling(values, message):
    """Exchange sends values by position: a misspelt tag used to be dropped silently and a value out of
    range came back as a bare BadOutOfRange (no session here: the check happens before any call)."""
    from controllers.base import InputRange
    from controllers.client import BridgeClient

    client = BridgeClient("opc.tcp://127.0.0.1:1", "SmallOffice")
    client._input_nodes = {"CoolingSetpoint": None, "HeatingSetpoint": None}
    client.inputs = {"CoolingSetpoint": InputRange("CoolingSetpoint", 18.0, 30.0, "C"),
                     "HeatingSetpoint": InputRange("HeatingSetpoint", 15.0, 24.0, "C")}
    with pytest.raises(ControllerError, match=message):
        asyncio.run(client.exchange(values))


def test_exchange_loop_warns_when_the_bridge_did_not_apply_a_decision(caplog):
    """A late Exchange (Applied false): the loop names the step whose decision was not applied and goes on."""
    import datetime as dt

    from asyncua import ua

    from controllers.client import ExchangeRefused, StepState
    from controllers.loop import LoopReport, _exchange

    class LateBridge:
        building, has_exchange, step = "SmallOffice", True, 0
        answers = [(1, True), (3, False), (4, True)]

        async def read_inputs(self) -> dict[str, float]:
            return {}

        async def read_state(self) -> StepState:
            return StepState("Running" if self.answers else "Finished", self.step,
                             dt.datetime(2026, 7, 1) + self.step * dt.timedelta(minutes=10), True, {})

        async def exchange(self, values):
            if not self.answers:
                raise ExchangeRefused(self.building, ua.StatusCodes.BadInvalidState, "BadInvalidState")
            self.step, applied = self.answers.pop(0)
            return self.step, {}, applied

    class Hold:
        def decide(self, sim_time, outputs) -> dict[str, float]:
            return {}

    report = LoopReport()
    with caplog.at_level("WARNING", logger="controllers.loop"):
        status = asyncio.run(_exchange(LateBridge(), Hold(), LoopOptions(mode="exchange"), report))
    assert (status, report.last_step) == ("Finished", 3)  # decided on steps 0, 1 and 3
    assert (report.actions, report.not_applied) == (3, 1)
    assert [r.getMessage() for r in caplog.records] == [
        "SmallOffice: the inputs decided on step 1 were not applied (the bridge answered with step 3 without them)"]


@pytest.mark.parametrize("status", ["Paused", "Idle"])
def test_paced_loop_gives_up_when_a_bridge_that_is_not_running_shows_no_new_step(status):
    """--step-timeout in paced mode: a bridge that stays Paused (or Idle) at one step is given up on
    like in lockstep; the deadline used to be pushed back at every read because only a Running step
    was remembered (fake client: loop logic only)."""
    from controllers.client import StepState
    from controllers.loop import LoopReport, _paced

    class StuckBridge:
        building = "SmallOffice"

        async def read_state(self) -> StepState:
            return StepState(status, 7, None, False, {})

    class Hold:
        def decide(self, sim_time, outputs) -> dict[str, float]:
            return {}

    options = LoopOptions(mode="paced", period_s=0.02, step_timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(ControllerError, match=rf"simulation did not advance within 0.2 s \(status {status}, step 7\)"):
        asyncio.run(asyncio.wait_for(_paced(StuckBridge(), Hold(), options, LoopReport()), 5.0))
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("mode, clock, outcome", [
    ("lockstep", "paced", "refused"), ("lockstep", "fast", "refused"), ("lockstep", "lockstep", "quiet"),
    ("exchange", "paced", "quiet"), ("paced", "paced", "quiet"), ("paced", "lockstep", "warned"),
    ("lockstep", None, "quiet")])  # None: a bridge without Control.Clock
def test_the_loop_checks_the_bridges_clock_at_connect(mode, clock, outcome, caplog):
    from types import SimpleNamespace

    from controllers.loop import _check_clock

    client = SimpleNamespace(building="SmallOffice", endpoint="opc.tcp://127.0.0.1:1", clock=clock)
    if outcome == "refused":
        with pytest.raises(ControllerError, match=f"runs a {clock} clock.*use --mode paced or exchange"):
            _check_clock(client, mode)
        return
    with caplog.at_level("WARNING", logger="controllers.loop"):
        _check_clock(client, mode)
    assert bool(caplog.records) == (outcome == "warned")


def test_time_rat_counts_the_controller_and_leaves_the_bridges_step_out():
    """BOPTEST's time ratio from the controller's side (LoopReport.time_rat): in exchange mode the time
    from one Exchange answer to the next call (the controller's decision), per 600-s control step; the
    Exchange call itself, which waits for the bridge's simulation, is not counted (fake client)."""
    import datetime as dt
    import time

    from asyncua import ua

    from controllers.client import ExchangeRefused, StepState
    from controllers.loop import LoopReport, _exchange

    class SlowBridge:
        building, has_exchange, step = "SmallOffice", True, 0

        async def read_inputs(self) -> dict[str, float]:
            return {}

        async def read_state(self) -> StepState:
            return StepState("Running" if self.step < 4 else "Finished", self.step,
                             dt.datetime(2026, 1, 5) + self.step * dt.timedelta(minutes=10), True, {})

        async def exchange(self, values):
            if self.step >= 4:
                raise ExchangeRefused(self.building, ua.StatusCodes.BadInvalidState, "BadInvalidState")
            time.sleep(0.06)  # the bridge simulating the step
            self.step += 1
            return self.step, {}, True

    class Thinker:
        def decide(self, sim_time, outputs) -> dict[str, float]:
            time.sleep(0.02)
            return {}

    report = LoopReport()
    asyncio.run(_exchange(SlowBridge(), Thinker(), LoopOptions(mode="exchange"), report))
    assert report.actions == 4 and report.step_s == 600.0
    assert all(0.02 <= t < 0.05 for t in report.control_times_s), report.control_times_s
    assert all(t >= 0.08 for t in report.handle_times_s)  # the whole call, the simulation included
    assert report.time_rat == pytest.approx(sum(report.control_times_s) / 4 / 600.0)
    assert LoopReport().time_rat is None
