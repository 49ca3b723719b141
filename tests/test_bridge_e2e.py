"""End to end: the real bridge daemon, real EnergyPlus, a real OPC UA client on loopback."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asyncua import Client, ua

from conftest import REPO, SIMS, TAGMAPS, free_port, run_bridge, run_cli, wait_until
from bridge.historian import buildings_in, load_history
from bridge.protocol import NAMESPACE, BoptestKpi

pytestmark = pytest.mark.engine


async def node(client: Client, path: str):
    idx = await client.get_namespace_index(NAMESPACE)
    return client.get_node(ua.NodeId(path, idx))


async def lockstep_turn(client: Client, prefix: str, last_step: int, timeout_s: float = 60.0) -> int:
    """Wait until the bridge hands over a step newer than ``last_step``; return it."""
    ready, step = await node(client, f"{prefix}.Control.OutputReady"), await node(client, f"{prefix}.Control.Step")

    async def handed_over():
        is_ready, current = await client.read_values([ready, step])
        return (current,) if is_ready and current > last_step else None  # a tuple: step 0 counts as handed over

    (current,) = await wait_until(handed_over, timeout_s, 0.002)
    return current


def one_day(tmp_path: Path, name: str = "small_office.toml") -> Path:
    """A copy of a sims/ file whose run is its first day (144 steps)."""
    text = (SIMS / name).read_text().replace('"../tagmaps/', f'"{TAGMAPS}/')
    text = re.sub(r'end = "[0-9-]+"', 'end = "07-01"', text)
    path = tmp_path / name
    path.write_text(text)
    return path


def double(value) -> ua.Variant:
    return ua.Variant(value, ua.VariantType.Double)


def test_browse_watch_and_control_the_small_office(small_office_config, tmp_path):
    """A SCADA client browses the tree, sees SimTime and outputs advance, and writes a cooling
    setpoint that the zone temperature follows."""

    async def scenario(endpoint: str) -> dict[str, list[float]]:
        async with Client(endpoint, timeout=10) as client:
            idx = await client.get_namespace_index(NAMESPACE)
            campus = await client.nodes.objects.get_child([f"{idx}:TestSite"])
            building = await campus.get_child([f"{idx}:SmallOffice"])
            folders = {(await c.read_browse_name()).Name for c in await building.get_children()}
            assert folders == {"Inputs", "Outputs", "Control"}
            setpoint = await building.get_child([f"{idx}:Inputs", f"{idx}:CoolingSetpoint"])
            assert setpoint.nodeid == ua.NodeId("TestSite.SmallOffice.Inputs.CoolingSetpoint", idx)
            assert await setpoint.read_type_definition() == ua.NodeId(ua.ObjectIds.AnalogItemType)
            eu_range = await (await setpoint.get_child(["0:EURange"])).read_value()
            assert (eu_range.Low, eu_range.High) == (18.0, 32.0)
            units = await (await setpoint.get_child(["0:EngineeringUnits"])).read_value()
            assert units.DisplayName.Text == "degC"
            zone = await building.get_child([f"{idx}:Outputs", f"{idx}:CoreZoneTemp"])
            access = (await zone.read_attribute(ua.AttributeIds.UserAccessLevel)).Value.Value
            assert not ua.ua_binary.test_bit(access, ua.AccessLevel.CurrentWrite)
            assert ua.ua_binary.test_bit(access, ua.AccessLevel.HistoryRead)
            access = (await setpoint.read_attribute(ua.AttributeIds.UserAccessLevel)).Value.Value
            assert ua.ua_binary.test_bit(access, ua.AccessLevel.HistoryRead)
            total = await node(client, "TestSite.Outputs.TotalElectricPower")  # not recorded: no history offered
            access = (await total.read_attribute(ua.AttributeIds.UserAccessLevel)).Value.Value
            assert not ua.ua_binary.test_bit(access, ua.AccessLevel.HistoryRead)
            input_ready = await node(client, "TestSite.SmallOffice.Control.InputReady")
            sim_time = await node(client, "TestSite.SmallOffice.Control.SimTime")
            # Day 1 (a Tuesday): default setpoint until 08:00, 22 degC until 14:00, 29 degC until 20:00.
            temps: dict[str, list[float]] = {"22": [], "29": []}
            seen_times, step = [], -1  # the first turn hands over step 0
            while True:
                step = await lockstep_turn(client, "TestSite.SmallOffice", step)
                now = await sim_time.read_value()
                seen_times.append(now)
                hour = (now.hour + now.minute / 60) if now.day == 1 else 24
                if hour >= 20:
                    break
                target = 24.0 if hour < 8 else 22.0 if hour < 14 else 29.0
                if 12 <= hour < 14:
                    temps["22"].append(await zone.read_value())
                if 16 <= hour < 20:
                    temps["29"].append(await zone.read_value())
                await client.write_values([setpoint, input_ready], [target, True])
            assert seen_times == sorted(seen_times) and len(set(seen_times)) == len(seen_times)
            assert seen_times[1] - seen_times[0] == dt.timedelta(minutes=10)
            data_value = await zone.read_data_value()
            assert data_value.SourceTimestamp.replace(tzinfo=None) == seen_times[-1].replace(tzinfo=None)
            return temps

    with run_bridge(small_office_config, tmp_path, "--clock", "lockstep", "--lockstep-timeout", "30") as bridge:
        temps = asyncio.run(scenario(bridge.endpoint))
    cool, warm = temps["22"], temps["29"]
    assert max(cool) < 22.6, cool  # the zone is held at the 22 degC setpoint
    assert min(warm) > max(cool) + 1.5, (cool, warm)  # and floats up at 29 degC


def test_out_of_range_write_is_refused(small_office_config, tmp_path):
    async def scenario(endpoint: str) -> None:
        async with Client(endpoint, timeout=10) as client:
            setpoint = await node(client, "TestSite.SmallOffice.Inputs.CoolingSetpoint")
            before = await setpoint.read_value()
            with pytest.raises(ua.UaStatusCodeError) as refused:
                await setpoint.write_value(ua.DataValue(ua.Variant(45.0, ua.VariantType.Double)))
            assert refused.value.code == ua.StatusCodes.BadOutOfRange
            assert await setpoint.read_value() == before
            await setpoint.write_value(ua.DataValue(ua.Variant(25.5, ua.VariantType.Double)))
            assert await setpoint.read_value() == 25.5
            power = await node(client, "TestSite.SmallOffice.Outputs.FacilityPower")
            with pytest.raises(ua.UaStatusCodeError):
                await power.write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))

    with run_bridge(small_office_config, tmp_path, "--wait-for-start") as bridge:
        asyncio.run(scenario(bridge.endpoint))
        assert "refused write of 45.0 to SmallOffice.CoolingSetpoint" in bridge.log


def test_a_bad_status_write_is_refused_and_the_campus_runs_on(small_office_config, tmp_path):
    """Issue 13 defect 1: an anonymous Write of a setpoint with a Bad (or Uncertain) StatusCode was
    answered Good, left the tag null and faulted the campus at its next step. Refused with
    BadWriteNotSupported, the tag keeps its value and the campus goes on Running."""

    async def scenario(endpoint: str) -> None:
        async with Client(endpoint, timeout=10) as client:
            setpoint = await node(client, "TestSite.SmallOffice.Inputs.CoolingSetpoint")
            step = await node(client, "TestSite.SmallOffice.Control.Step")
            status = await node(client, "TestSite.Control.Status")
            await wait_until(lambda: _at_least(step, 2), 120)
            before = await setpoint.read_value()
            for code in (ua.StatusCodes.BadSensorFailure, ua.StatusCodes.UncertainLastUsableValue):
                with pytest.raises(ua.UaStatusCodeError) as refused:
                    await setpoint.write_value(ua.DataValue(double(25.0), StatusCode=ua.StatusCode(code)))
                assert refused.value.code == ua.StatusCodes.BadWriteNotSupported
            assert await setpoint.read_value() == before
            written = await step.read_value()
            await wait_until(lambda: _at_least(step, written + 3), 60)
            assert await status.read_value() == "Running"
            assert await (await node(client, "TestSite.SmallOffice.Control.Fault")).read_value() == ""

    with run_bridge(small_office_config, tmp_path, "--clock", "paced", "--speed", "3000") as bridge:
        asyncio.run(scenario(bridge.endpoint))
        log = bridge.log
    assert "refused write to TestSite.SmallOffice.Inputs.CoolingSetpoint: a value with status BadSensorFailure " \
           "(by anonymous)" in log and "faulted" not in log


def test_campus_lockstep_history_and_history_read(test_campus_config, tmp_path):
    """Three buildings stay in step at every read; the historian has one row per step per building;
    HistoryRead on an output tag answers from it; the run's KPIs land in kpis.json and on KPIs tags."""
    names = ["SmallOffice", "Warehouse", "RetailStore"]

    async def scenario(endpoint: str) -> tuple[list[list[int]], list, tuple[float, float]]:
        async with Client(endpoint, timeout=10) as client:
            steps = [await node(client, f"TestCampus.{n}.Control.Step") for n in names]
            status = await node(client, "TestCampus.Control.Status")
            reads = []
            while await status.read_value() in ("Idle", "Running"):
                reads.append(await client.read_values(steps))
            assert await status.read_value() == "Finished"
            power = await node(client, "TestCampus.Warehouse.Outputs.FacilityPower")
            history = await power.read_raw_history(dt.datetime(2025, 7, 1, 0), dt.datetime(2025, 7, 1, 12), 1000)
            total = await (await node(client, "TestCampus.Outputs.TotalElectricPower")).read_value()
            last = [await (await node(client, f"TestCampus.{n}.Outputs.FacilityPower")).read_value() for n in names]
            assert total == pytest.approx(sum(last))
            energy = await (await node(client, "TestCampus.KPIs.energy_total_kwh")).read_value()
            peak = await (await node(client, "TestCampus.Warehouse.KPIs.peak_electric_kw")).read_value()
            ener_tot = await (await node(client, f"TestCampus.SmallOffice.KPIs.{BoptestKpi.ENER_TOT}")).read_value()
            return reads, history, (energy, peak, ener_tot)

    with run_bridge(test_campus_config, tmp_path, "--clock", "fast") as bridge:
        reads, history, kpi_tags = asyncio.run(scenario(bridge.endpoint))
        historian = bridge.historian()
    kpis = json.loads((historian.parent / "kpis.json").read_text())
    assert kpi_tags == pytest.approx((kpis["campus"]["energy_total_kwh"], kpis["buildings"]["Warehouse"]["peak_electric_kw"],
                                      kpis["buildings"]["SmallOffice"]["ener_tot"]))  # BOPTEST's, under its name
    office = kpis["buildings"]["SmallOffice"]
    assert office["ener_tot"] == pytest.approx((office["energy_hvac_kwh"] + office["energy_hvac_gas_kwh"]) / 511.2)
    assert kpis["period"]["steps"] == 288
    assert len(reads) > 10
    assert all(len(set(read)) == 1 for read in reads), [r for r in reads if len(set(r)) > 1][:5]
    assert buildings_in(historian) == names
    for name in names:
        frame = load_history(historian, name)
        assert len(frame) == 288 and list(frame["step"]) == list(range(1, 289))
    warehouse = load_history(historian, "Warehouse")
    first_half_day = warehouse[warehouse.index <= "2025-07-01 12:00"]
    assert [dv.Value.Value for dv in history] == pytest.approx(list(first_half_day["FacilityPower"]))


def test_history_read_pages_through_the_whole_run(small_office_config, tmp_path):
    """A client asking for 100 values per request gets the rest through continuation points, forward and
    backward (StartTime later than EndTime: newest first, OPC UA Part 11); input tags have history too."""

    async def pages_of(power, start: dt.datetime, end: dt.datetime) -> list[list[float]]:
        details = ua.ReadRawModifiedDetails(IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=100)
        pages, continuation = [], None
        while not pages or continuation:
            result = await power.history_read(details, continuation)
            result.StatusCode.check()
            pages.append([value.Value.Value for value in result.HistoryData.DataValues])
            continuation = result.ContinuationPoint
        return pages

    async def scenario(endpoint: str) -> tuple[list[list[float]], ...]:
        async with Client(endpoint, timeout=10) as client:
            status = await node(client, "TestSite.Control.Status")
            await wait_until(lambda: _equals(status, "Finished"), 120)
            power = await node(client, "TestSite.SmallOffice.Outputs.FacilityPower")
            earlier, later = dt.datetime(2025, 1, 1), dt.datetime(2026, 1, 1)
            reads = [await power.read_raw_history(earlier, later), await power.read_raw_history(later, earlier),
                     await power.read_raw_history(endtime=later, numvalues=5)]
            cooling = await node(client, "TestSite.SmallOffice.Inputs.CoolingSetpoint")
            reads.append(await cooling.read_raw_history(earlier, later))
            values = [[value.Value.Value for value in read] for read in reads]
            return await pages_of(power, earlier, later), await pages_of(power, later, earlier), *values

    with run_bridge(small_office_config, tmp_path, "--clock", "fast") as bridge:
        pages, back_pages, everything, newest_first, last_five, setpoints = asyncio.run(scenario(bridge.endpoint))
        recorded = list(load_history(bridge.historian())["FacilityPower"])
        recorded_setpoints = list(load_history(bridge.historian())["CoolingSetpoint"])
    assert setpoints == recorded_setpoints  # input tags are historized too (the value that drove each step)
    assert [len(page) for page in pages] == [len(page) for page in back_pages] == [100, 100, 100, 100, 32]
    assert [value for page in pages for value in page] == recorded == everything
    assert [value for page in back_pages for value in page] == recorded[::-1] == newest_first
    assert last_five == recorded[:-6:-1]


def test_killed_engine_faults_its_building_and_nothing_hangs(test_campus_config, tmp_path):
    async def scenario(bridge) -> None:
        async with Client(bridge.endpoint, timeout=10) as client:
            step = await node(client, "TestCampus.Warehouse.Control.Step")
            await wait_until(lambda: _at_least(step, 5), 120)
            for pid in bridge.engine_pids("Warehouse"):
                os.kill(pid, signal.SIGKILL)
            status = await node(client, "TestCampus.Warehouse.Control.Status")
            await wait_until(lambda: _equals(status, "Faulted"), 20)
            fault = await (await node(client, "TestCampus.Warehouse.Control.Fault")).read_value()
            assert "Warehouse" in fault and "EnergyPlus" in fault
            others = [await node(client, f"TestCampus.{n}.Control.Status") for n in ("SmallOffice", "RetailStore")]
            campus = await node(client, "TestCampus.Control.Status")
            await wait_until(lambda: _equals(campus, "Faulted"), 180)  # a real fault shows on the campus
            assert [await o.read_value() for o in others] == ["Finished", "Finished"]

    # Paced so that the kill lands mid-run (2 days at 20,000x: about 9 s of wall time).
    with run_bridge(test_campus_config, tmp_path, "--clock", "paced", "--speed", "20000") as bridge:
        asyncio.run(scenario(bridge))
        assert "Warehouse faulted" in bridge.log
    frame = load_history(bridge.historian(), "SmallOffice")
    assert len(frame) == 288


async def _at_least(var, value) -> bool:
    return await var.read_value() >= value


async def _equals(var, value) -> bool:
    return await var.read_value() == value


def test_unknown_variable_fails_validate_and_run(tmp_path):
    tagmap = (REPO / "tagmaps" / "small_office.toml").read_text().replace(
        'variable = "Site Outdoor Air Relative Humidity"', 'variable = "Site Outdoor Air Relative Humidty"')
    (tmp_path / "bad.toml").write_text(tagmap)
    campus = (REPO / "sims" / "small_office.toml").read_text().replace(
        'tagmap = "../tagmaps/small_office.toml"', f'tagmap = "{tmp_path / "bad.toml"}"')
    (tmp_path / "bad_campus.toml").write_text(campus)
    for command in (["validate", str(tmp_path / "bad_campus.toml")],
                    ["run", str(tmp_path / "bad_campus.toml"), "--endpoint", "opc.tcp://127.0.0.1:1", "--run-dir",
                     str(tmp_path / "runs")]):
        result = run_cli(*command)
        assert result.returncode == 2, result.stderr
        assert "outputs[3] (OutdoorHumidity)" in result.stderr
        assert "'Site Outdoor Air Relative Humidty' does not exist" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_export_csv_and_parquet(small_office_config, tmp_path):
    result = run_cli("run", str(small_office_config), "--endpoint", f"opc.tcp://127.0.0.1:{free_port()}", "--run-dir",
                  str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    historian = next((tmp_path / "runs").glob("*/historian.sqlite"))
    for fmt in ("csv", "parquet"):
        exported = run_cli("export", str(historian), "--format", fmt, "--out", str(tmp_path / fmt))
        assert exported.returncode == 0, exported.stderr
    import pandas as pd

    csv = pd.read_csv(tmp_path / "csv" / "SmallOffice.csv", index_col="time", parse_dates=True)
    parquet = pd.read_parquet(tmp_path / "parquet" / "SmallOffice.parquet")
    assert len(csv) == len(parquet) == 432
    assert csv["FacilityPower [kW]"].to_numpy() == pytest.approx(parquet["FacilityPower [kW]"].to_numpy())


def test_exchange_method_drives_a_lockstep_building(small_office_config, tmp_path):
    """Control.Exchange: one call per step carries the inputs in and the next step's outputs out; the
    historian shows each call's inputs applied during the step the call returned, and each answer says so
    (Applied). Its output arguments are Step, Outputs and Applied."""

    async def scenario(endpoint: str) -> list[tuple[int, float]]:
        async with Client(endpoint, timeout=60) as client:
            control = await node(client, "TestSite.SmallOffice.Control")
            exchange = await node(client, "TestSite.SmallOffice.Control.Exchange")
            inputs = await (await node(client, "TestSite.SmallOffice.Control.InputTags")).read_value()
            outputs = await (await node(client, "TestSite.SmallOffice.Control.OutputTags")).read_value()
            assert inputs == ["CoolingSetpoint", "HeatingSetpoint"] and outputs[0] == "FacilityPower"
            arguments = await (await exchange.get_child("0:OutputArguments")).read_value()
            assert [(a.Name, a.DataType) for a in arguments] == [
                ("Step", ua.NodeId(ua.ObjectIds.Int64)), ("Outputs", ua.NodeId(ua.ObjectIds.Double)),
                ("Applied", ua.NodeId(ua.ObjectIds.Boolean))]
            with pytest.raises(ua.UaStatusCodeError) as refused:
                await control.call_method(exchange, ua.Variant([99.0, 20.0], ua.VariantType.Double))
            assert refused.value.code == ua.StatusCodes.BadOutOfRange
            sent = []
            while True:
                cooling = 22.0 + (len(sent) % 5)
                try:
                    step, values, applied = await control.call_method(exchange, double([cooling, 18.0]))
                except ua.UaStatusCodeError as exc:
                    assert exc.code == ua.StatusCodes.BadInvalidState
                    return sent
                assert len(values) == len(outputs) and applied is True, (step, applied)
                sent.append((step, cooling))

    with run_bridge(small_office_config, tmp_path, "--clock", "lockstep", "--lockstep-timeout", "30",
                    keep_serving=False) as bridge:
        sent = asyncio.run(scenario(bridge.endpoint))
        bridge.wait(60)
        historian = bridge.historian()
    frame = load_history(historian).set_index("step")
    assert [step for step, _ in sent] == list(range(1, 433))
    assert [frame.loc[step, "CoolingSetpoint"] for step, _ in sent] == [cooling for _, cooling in sent]
    assert set(frame["HeatingSetpoint"]) == {18.0}


def test_control_methods_start_pause_resume_reset_stop(small_office_config, tmp_path):
    async def scenario(endpoint: str) -> None:
        async with Client(endpoint, timeout=30) as client:
            control = await node(client, "TestSite.Control")
            method = lambda name: node(client, f"TestSite.Control.{name}")  # noqa: E731
            status = await node(client, "TestSite.Control.Status")
            code = await node(client, "TestSite.Control.StatusCode")
            step = await node(client, "TestSite.SmallOffice.Control.Step")
            assert (await status.read_value(), await code.read_value()) == ("Idle", 0)
            with pytest.raises(ua.UaStatusCodeError) as refused:
                await control.call_method(await method("Resume"))
            assert refused.value.code == ua.StatusCodes.BadInvalidState
            assert await control.call_method(await method("Start")) == "started"
            await wait_until(lambda: _at_least(step, 20), 120)
            assert await control.call_method(await method("Pause")) == "paused"
            assert (await status.read_value(), await code.read_value()) == ("Paused", 5)
            held = await step.read_value()
            await asyncio.sleep(1.0)  # paced at 3,000x: five steps would pass if the pause did not hold
            assert await step.read_value() == held
            assert await control.call_method(await method("Resume")) == "resumed"
            await wait_until(lambda: _at_least(step, held + 5), 60)
            assert await control.call_method(await method("Reset")) == "reset"
            await wait_until(lambda: _equals(status, "Running"), 60)
            assert await step.read_value() < held
            assert await control.call_method(await method("Stop")) == "campus stopped"
            assert (await status.read_value(), await code.read_value()) == ("Stopped", 4)

    with run_bridge(small_office_config, tmp_path, "--clock", "paced", "--speed", "3000", "--wait-for-start") as bridge:
        asyncio.run(scenario(bridge.endpoint))
    historians = sorted(bridge.run_dir.glob("*/historian.sqlite"))
    assert len(historians) == 2  # the reset started a new run file


def _engine_children(pid: int) -> list[int]:
    """PIDs of the EnergyPlus processes that process ``pid`` started."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and b"bridge.engines.eplus_child" in cmdline:
            found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("command, sig", [("run", signal.SIGTERM), ("run", signal.SIGINT),
                                          ("validate", signal.SIGTERM)])
def test_a_signal_during_validation_stops_its_energyplus_run(tmp_path, command, sig):
    """Validating a model the first time runs EnergyPlus for its variable dictionary. A signal then
    ends the command at once, that EnergyPlus process first, and nothing is started."""
    env = dict(os.environ, TWINBRIDGE_CACHE=str(tmp_path / "cache"))  # no dictionary yet
    args = [sys.executable, "-m", "bridge.cli", command, str(REPO / "sims" / "large_office.toml")]
    if command == "run":
        args += ["--endpoint", f"opc.tcp://127.0.0.1:{free_port()}", "--run-dir", str(tmp_path / "runs")]
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (children := _engine_children(process.pid)):
            assert process.poll() is None and time.monotonic() < deadline, "no dictionary run was started"
            time.sleep(0.05)
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 1, stderr
    assert not [pid for pid in children if _running(pid)], "EnergyPlus outlived the command"
    assert "Traceback" not in stderr
    assert not (tmp_path / "runs").exists()
async def _ended(var) -> bool:
    return await var.read_value() in ("Finished", "Stopped", "Faulted")


def test_stopping_one_building_lets_the_others_finish(test_campus_config, tmp_path):
    """Control.Stop on a building: it is Stopped (no fault), its last step is the one on its tags when
    Stop returned, the others run to the end, and the campus ends Finished."""
    names = ["SmallOffice", "Warehouse", "RetailStore"]

    async def scenario(endpoint: str) -> tuple[int, int, list[str], str, str]:
        async with Client(endpoint, timeout=30) as client:
            step = await node(client, "TestCampus.Warehouse.Control.Step")
            await wait_until(lambda: _at_least(step, 5), 120)
            control = await node(client, "TestCampus.Warehouse.Control")
            stop = await node(client, "TestCampus.Warehouse.Control.Stop")
            assert await control.call_method(stop) == "Warehouse stopped"
            stopped_at = await step.read_value()
            campus = await node(client, "TestCampus.Control.Status")
            await wait_until(lambda: _ended(campus), 180)
            statuses = [await (await node(client, f"TestCampus.{n}.Control.Status")).read_value() for n in names]
            fault = await (await node(client, "TestCampus.Warehouse.Control.Fault")).read_value()
            return stopped_at, await step.read_value(), statuses, fault, await campus.read_value()

    with run_bridge(test_campus_config, tmp_path, "--clock", "paced", "--speed", "20000") as bridge:
        stopped_at, last_step, statuses, fault, campus = asyncio.run(scenario(bridge.endpoint))
        log = bridge.log
    assert (statuses, fault, campus) == (["Finished", "Stopped", "Finished"], "", "Finished")
    assert "faulted" not in log and "Warehouse stopped at step" in log
    assert last_step == stopped_at == len(load_history(bridge.historian(), "Warehouse"))
    assert len(load_history(bridge.historian(), "SmallOffice")) == 288


def test_reset_starts_a_new_run_and_keeps_the_daemon(small_office_config, tmp_path):
    """Reset without --keep-serving: the new run steps, the daemon stays; both runs keep their KPIs."""

    async def scenario(endpoint: str) -> None:
        async with Client(endpoint, timeout=30) as client:
            control = await node(client, "TestSite.Control")
            step = await node(client, "TestSite.SmallOffice.Control.Step")
            await wait_until(lambda: _at_least(step, 10), 120)
            assert await control.call_method(await node(client, "TestSite.Control.Reset")) == "reset"
            assert await step.read_value() == 0
            await wait_until(lambda: _at_least(step, 3), 120)  # the new run steps
            assert await control.call_method(await node(client, "TestSite.Control.Stop")) == "campus stopped"

    with run_bridge(small_office_config, tmp_path, "--clock", "paced", "--speed", "3000", keep_serving=False) as bridge:
        asyncio.run(scenario(bridge.endpoint))
        bridge.wait(60)
        log = bridge.log
    assert "faulted" not in log and "run stopped after" in log
    runs = sorted(path.parent for path in bridge.run_dir.glob("*/historian.sqlite"))
    assert len(runs) == 2 and all((run / "kpis.json").is_file() for run in runs)


def test_sigterm_keeps_the_kpis_of_the_steps_run(small_office_config, tmp_path):
    async def scenario(endpoint: str) -> None:
        async with Client(endpoint, timeout=30) as client:
            step = await node(client, "TestSite.SmallOffice.Control.Step")
            await wait_until(lambda: _at_least(step, 5), 120)

    with run_bridge(small_office_config, tmp_path, "--clock", "paced", "--speed", "3000") as bridge:
        asyncio.run(scenario(bridge.endpoint))
        bridge.process.send_signal(signal.SIGTERM)
        assert bridge.wait(60) == 0  # stopped on purpose: not a failure
    historian = bridge.historian()
    kpis = json.loads((historian.parent / "kpis.json").read_text())
    assert kpis["period"]["steps"] == len(load_history(historian, "SmallOffice")) >= 5


def test_an_answer_during_a_pause_stands(small_office_config, tmp_path):
    """Lockstep: a controller answers the step handed to it while the campus is paused. The step waits
    for Resume (a setpoint written during the pause drives it) and goes at once: the bridge does not
    hand the same step over again."""

    async def scenario(endpoint: str) -> int:
        async with Client(endpoint, timeout=30) as client:
            control = await node(client, "TestSite.Control")
            held = await lockstep_turn(client, "TestSite.SmallOffice", -1)
            assert await control.call_method(await node(client, "TestSite.Control.Pause")) == "paused"
            await (await node(client, "TestSite.SmallOffice.Control.InputReady")).write_value(True)
            await asyncio.sleep(1.0)  # time for a step the pause did not hold
            await (await node(client, "TestSite.SmallOffice.Inputs.CoolingSetpoint")).write_value(double(27.0))
            assert await control.call_method(await node(client, "TestSite.Control.Resume")) == "resumed"
            await lockstep_turn(client, "TestSite.SmallOffice", held)  # well within the lockstep timeout
            return held

    with run_bridge(small_office_config, tmp_path, "--clock", "lockstep", "--lockstep-timeout", "300") as bridge:
        held = asyncio.run(scenario(bridge.endpoint))
        log = bridge.log
    assert "no InputReady" not in log
    frame = load_history(bridge.historian()).set_index("step")
    assert frame.loc[held + 1, "CoolingSetpoint"] == 27.0


def test_setpoints_stay_in_order(small_office_config, tmp_path):
    """Heating must stay 1 K under cooling (tag map ``below``): both tags' Descriptions say so; a write
    or an Exchange breaking it is refused with BadOutOfRange, judged on all the values of the request,
    whatever their order."""

    async def scenario(endpoint: str) -> None:
        async with Client(endpoint, timeout=10) as client:
            cooling = await node(client, "TestSite.SmallOffice.Inputs.CoolingSetpoint")
            heating = await node(client, "TestSite.SmallOffice.Inputs.HeatingSetpoint")
            assert (await heating.read_description()).Text.endswith("must stay at least 1 degC below CoolingSetpoint")
            assert (await cooling.read_description()).Text.endswith("must stay at least 1 degC above HeatingSetpoint")
            with pytest.raises(ua.UaStatusCodeError) as refused:
                await cooling.write_value(double(18.0))
            assert refused.value.code == ua.StatusCodes.BadOutOfRange
            assert await client.read_values([cooling, heating]) == [24.0, 21.0]
            for nodes, values in (([cooling, heating], [18.0, 16.0]), ([heating, cooling], [21.0, 24.0])):
                codes = await client.write_values(nodes, [double(v) for v in values], raise_on_partial_error=False)
                assert all(code.is_good() for code in codes), codes
                assert await client.read_values(nodes) == values
            control = await node(client, "TestSite.SmallOffice.Control")
            with pytest.raises(ua.UaStatusCodeError) as refused:
                await control.call_method(await node(client, "TestSite.SmallOffice.Control.Exchange"),
                                          ua.Variant([18.0, 21.0], ua.VariantType.Double))
            assert refused.value.code == ua.StatusCodes.BadOutOfRange
            assert await client.read_values([cooling, heating]) == [24.0, 21.0]

    with run_bridge(small_office_config, tmp_path, "--wait-for-start") as bridge:
        asyncio.run(scenario(bridge.endpoint))
        log = bridge.log
    assert "refused write to SmallOffice of CoolingSetpoint: HeatingSetpoint = 21 must stay at least 1 degC below " \
           "CoolingSetpoint = 18" in log
    assert "refused Exchange on SmallOffice: HeatingSetpoint = 21 must stay at least 1 degC below CoolingSetpoint = 18" in log


def test_exchange_refuses_wrong_argument_types(small_office_config, tmp_path):
    async def scenario(endpoint: str) -> None:
        async with Client(endpoint, timeout=10) as client:
            control = await node(client, "TestSite.SmallOffice.Control")
            exchange = await node(client, "TestSite.SmallOffice.Control.Exchange")
            for arguments, code in (([ua.Variant(["a", "b"], ua.VariantType.String)], ua.StatusCodes.BadTypeMismatch),
                                    ([double(24.0)], ua.StatusCodes.BadTypeMismatch),
                                    ([], ua.StatusCodes.BadArgumentsMissing),
                                    ([double([24.0])], ua.StatusCodes.BadInvalidArgument)):
                with pytest.raises(ua.UaStatusCodeError) as refused:
                    await control.call_method(exchange, *arguments)
                assert refused.value.code == code, arguments

    with run_bridge(small_office_config, tmp_path, "--wait-for-start") as bridge:
        asyncio.run(scenario(bridge.endpoint))
        log = bridge.log
    assert "Traceback" not in log and "refused Exchange on SmallOffice: Inputs must be an array of numbers" in log


def test_a_late_exchange_does_not_drive_the_next_step(tmp_path):
    """A controller slower than the lockstep timeout: its late call is answered at once with the step the
    bridge is at and Applied false, and its stale inputs drive no step. Each call's cooling setpoint
    encodes the step it was computed from, so every historian row shows where its setpoint came from.
    The second late call comes when the bridge has moved on by one step only: its Step is the one an
    in-time answer would carry, and only Applied tells them apart."""

    def setpoint(seen: int) -> float:
        return 20.0 + 0.05 * seen

    async def scenario(endpoint: str) -> tuple[list[int], list[bool]]:
        async with Client(endpoint, timeout=30, watchdog_intervall=60) as client:
            control = await node(client, "TestSite.SmallOffice.Control")
            exchange = await node(client, "TestSite.SmallOffice.Control.Exchange")
            answered, applied = [0], []  # the first call waits for step 0
            while True:
                if len(answered) in (4, 8):  # one decision longer than the 1 s timeout: 2 steps, then 1
                    await asyncio.sleep(2.5 if len(answered) == 4 else 1.5)
                try:
                    step, _, done = await control.call_method(exchange, double([setpoint(answered[-1]), 15.0]))
                except ua.UaStatusCodeError as exc:
                    assert exc.code == ua.StatusCodes.BadInvalidState
                    return answered, applied
                answered.append(step)
                applied.append(done)

    with run_bridge(one_day(tmp_path), tmp_path, "--clock", "lockstep", "--lockstep-timeout", "1",
                    keep_serving=False) as bridge:
        answered, applied = asyncio.run(scenario(bridge.endpoint))
        bridge.wait(60)
        historian, log = bridge.historian(), bridge.log
    assert answered == sorted(set(answered)) and answered[-1] == 144
    assert (applied[0], applied[3], applied[4], applied[7]) == (True, False, True, False)  # calls 3 and 7 late
    assert answered[8] == answered[7] + 1
    assert "not applied" in log
    frame = load_history(historian).set_index("step")
    for seen, step, done in zip(answered, answered[1:], applied):  # Applied: the call's setpoint drove its step
        assert (frame.loc[step, "CoolingSetpoint"] == setpoint(seen)) == done, (seen, step, done)
    held = 24.0  # the tag map's default
    for step, value in frame["CoolingSetpoint"].items():
        assert value == held or value == setpoint(step - 1), (step, value)  # held over a timeout, or decided on step - 1
        held = value


def test_a_replacement_controllers_first_exchange_is_taken_for_the_current_step(tmp_path):
    """A controller dies after three Exchange calls; the bridge goes on over lockstep timeouts; the
    controller that replaces it (a new session) has its first call taken for the step the bridge is at
    (Applied true, as docs/protocol.md says), not refused as late for its predecessor's step."""

    async def calls(endpoint: str, count: int) -> list[tuple[int, bool]]:
        async with Client(endpoint, timeout=30, watchdog_intervall=60) as client:
            control = await node(client, "TestSite.SmallOffice.Control")
            exchange = await node(client, "TestSite.SmallOffice.Control.Exchange")
            answers = []
            for _ in range(count):
                step, _, applied = await control.call_method(exchange, double([25.0, 15.0]))
                answers.append((step, applied))
            return answers

    async def scenario(endpoint: str) -> tuple[list, list]:
        first = await calls(endpoint, 3)
        await asyncio.sleep(2.5)  # the bridge times out on the dead controller at least twice
        return first, await calls(endpoint, 2)

    with run_bridge(one_day(tmp_path), tmp_path, "--clock", "lockstep", "--lockstep-timeout", "1") as bridge:
        first, second = asyncio.run(scenario(bridge.endpoint))
        log = bridge.log
    assert [applied for _, applied in first] == [True] * 3
    assert second[0][0] >= first[-1][0] + 2  # the bridge went on without a controller
    assert [applied for _, applied in second] == [True, True], (first, second, log[-2000:])
    assert "not applied" not in log
