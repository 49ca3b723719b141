"""The in-process EnergyPlus engine: same outputs as ExternalInterface, served end to end, failures."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from asyncua import Client

from conftest import SIMS, TAGMAPS, run_bridge
from test_bridge_e2e import lockstep_turn, node
from bridge.config import ConfigError, RunPeriod, load_config
from bridge.engines.base import Engine, EngineFault, Sample
from bridge.engines.energyplus_api import EnergyPlusApiEngine
from bridge.engines.external_interface import ExternalInterfaceEngine
from bridge.tagmap import load_tagmap

pytestmark = pytest.mark.engine
TWO_DAYS = RunPeriod(dt.date(2025, 7, 1), dt.date(2025, 7, 2), 6)
ONE_DAY = RunPeriod(dt.date(2025, 7, 1), dt.date(2025, 7, 1), 6)


def small_office():
    return load_config(SIMS / "small_office.toml").buildings[0]


def engine(kind: type[Engine], workdir: Path, period: RunPeriod = TWO_DAYS, tagmap=None) -> Engine:
    building = small_office()
    return kind(building.name, building.model, building.weather, tagmap or building.tagmap, period, workdir)


def setpoints(step: int) -> dict[str, float]:
    """Cooling setpoint 24 degC, 22 degC from 08:00 and 28 degC from 14:00 of each day; heating 21 degC."""
    hour = (step % 144) / 6
    return {"CoolingSetpoint": 24.0 if hour < 8 else 22.0 if hour < 14 else 28.0, "HeatingSetpoint": 21.0}


async def trajectory(subject: Engine) -> list[tuple[float, dict[str, float]]]:
    samples = [await subject.start()]
    while (sample := await subject.step(setpoints(len(samples) - 1))) is not None:
        samples.append(sample)
    await subject.stop()
    return [(s.sim_time_s, dict(s.outputs)) for s in samples]


def test_api_engine_gives_the_outputs_of_the_external_interface_engine(tmp_path):
    """Step by step, the same times and values to 1e-9. Both engines run the same model copy with
    the same inputs at the same point of each timestep and report what EnergyPlus reports for the
    zone timestep (HVAC-timestep variables averaged over it), so they agree to the ~15 digits the
    packets carry; measured: 2e-14 at most."""
    external = asyncio.run(trajectory(engine(ExternalInterfaceEngine, tmp_path / "ei")))
    in_process = asyncio.run(trajectory(engine(EnergyPlusApiEngine, tmp_path / "api")))
    assert len(in_process) == len(external) == TWO_DAYS.steps + 1
    assert [t for t, _ in in_process] == [t for t, _ in external]
    for (time_s, ours), (_, theirs) in zip(in_process, external):
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-9), time_s
    core = [outputs["CoreZoneTemp"] for _, outputs in in_process]
    assert max(core[13 * 6:14 * 6]) < max(core[17 * 6:18 * 6]) - 1  # the setpoint moved the zone


def test_bridge_serves_the_api_engine_and_follows_a_setpoint(tmp_path):
    text = (SIMS / "small_office.toml").read_text().replace('tagmap = "../tagmaps/', f'engine = "energyplus-api"\n'
                                                                                      f'tagmap = "{TAGMAPS}/')
    (tmp_path / "api.toml").write_text(text.replace('end = "07-03"', 'end = "07-01"'))

    async def scenario(endpoint: str) -> dict[str, list[float]]:
        async with Client(endpoint, timeout=10) as client:
            setpoint = await node(client, "TestSite.SmallOffice.Inputs.CoolingSetpoint")
            zone = await node(client, "TestSite.SmallOffice.Outputs.CoreZoneTemp")
            power = await node(client, "TestSite.SmallOffice.Outputs.FacilityPower")
            input_ready = await node(client, "TestSite.SmallOffice.Control.InputReady")
            sim_time = await node(client, "TestSite.SmallOffice.Control.SimTime")
            temps: dict[str, list[float]] = {"22": [], "29": []}
            step = -1  # the first turn hands over step 0
            while True:
                step = await lockstep_turn(client, "TestSite.SmallOffice", step)
                now = await sim_time.read_value()
                hour = now.hour + now.minute / 60 if now.day == 1 else 24
                if hour >= 20:
                    break
                assert await power.read_value() > 0
                if 12 <= hour < 14:
                    temps["22"].append(await zone.read_value())
                if 16 <= hour < 20:
                    temps["29"].append(await zone.read_value())
                target = 24.0 if hour < 8 else 22.0 if hour < 14 else 29.0
                await client.write_values([setpoint, input_ready], [target, True])
            return temps

    with run_bridge(tmp_path / "api.toml", tmp_path, "--clock", "lockstep", "--lockstep-timeout", "10") as bridge:
        temps = asyncio.run(scenario(bridge.endpoint))
        assert "EnergyPlus started in-process" in bridge.log
    assert max(temps["22"]) < 22.6, temps
    assert min(temps["29"]) > max(temps["22"]) + 1.5, temps


def test_unknown_output_variable_is_a_fault_naming_it(tmp_path):
    tagmap = (TAGMAPS / "small_office.toml").read_text().replace(
        'variable = "Site Outdoor Air Relative Humidity"', 'variable = "Site Outdoor Air Relative Humidty"')
    (tmp_path / "bad.toml").write_text(tagmap)
    subject = engine(EnergyPlusApiEngine, tmp_path / "work", ONE_DAY, load_tagmap(tmp_path / "bad.toml"))
    with pytest.raises(EngineFault) as fault:
        asyncio.run(subject.start())
    message = str(fault.value)
    assert "outputs[3] (OutdoorHumidity)" in message
    assert "no output variable 'Site Outdoor Air Relative Humidty' for key 'Environment'" in message


def test_unknown_actuator_is_a_fault_naming_it(tmp_path):
    building = small_office()
    bad_input = dataclasses.replace(building.tagmap.inputs[0], schedule=None, component_type="Schedule:Compact",
                                    control_type="Schedule Value", key="NO_SUCH_SCH")
    tagmap = dataclasses.replace(building.tagmap, inputs=(bad_input, *building.tagmap.inputs[1:]))
    with pytest.raises(EngineFault) as fault:
        asyncio.run(engine(EnergyPlusApiEngine, tmp_path / "work", ONE_DAY, tagmap).start())
    assert "no actuator 'Schedule Value' of Schedule:Compact 'NO_SUCH_SCH'" in str(fault.value)


def test_broken_model_faults_with_energyplus_errors_and_the_process_survives(tmp_path):
    (tmp_path / "bad.epw").write_text("not a weather file\n")
    building = small_office()
    subject = EnergyPlusApiEngine(building.name, building.model, tmp_path / "bad.epw", building.tagmap, ONE_DAY,
                                  tmp_path / "work")
    with pytest.raises(EngineFault) as fault:
        asyncio.run(subject.start())
    assert "SmallOffice: EnergyPlus exited with code" in str(fault.value)
    assert any("Fatal" in line or "Severe" in line for line in fault.value.details), fault.value.details


def test_stop_mid_run_and_twice(tmp_path):
    async def scenario() -> None:
        subject = engine(EnergyPlusApiEngine, tmp_path / "work", ONE_DAY)
        await subject.start()
        for step in range(5):
            assert (await subject.step(setpoints(step))).sim_time_s == (step + 1) * ONE_DAY.step_s
        pending = subject.step(setpoints(5))
        await subject.stop()
        await subject.stop()
        outcome = (await asyncio.gather(pending, return_exceptions=True))[0]
        assert isinstance(outcome, (Sample, EngineFault)), outcome  # its answer, or the stop: never a hang
        with pytest.raises(EngineFault, match="not running"):
            await subject.step(setpoints(6))
        # stopped while sizing, before any step
        early = engine(EnergyPlusApiEngine, tmp_path / "early", ONE_DAY)
        await early.launch()
        await early.stop()
        await early.stop()

    asyncio.run(scenario())


def test_one_in_process_simulation_per_process(tmp_path):
    async def scenario() -> None:
        first = engine(EnergyPlusApiEngine, tmp_path / "first", ONE_DAY)
        await first.start()
        with pytest.raises(EngineFault, match="another in-process EnergyPlus simulation"):
            await engine(EnergyPlusApiEngine, tmp_path / "second", ONE_DAY).start()
        await first.stop()
        again = engine(EnergyPlusApiEngine, tmp_path / "again", ONE_DAY)
        await again.start()
        await again.stop()

    asyncio.run(scenario())


def test_a_campus_allows_one_api_building(tmp_path):
    text = (SIMS / "test_campus.toml").read_text().replace('tagmap = "../tagmaps/', f'engine = "energyplus-api"\n'
                                                                                      f'tagmap = "{TAGMAPS}/')
    (tmp_path / "campus.toml").write_text(text)
    with pytest.raises(ConfigError, match="only one building of a campus can use engine 'energyplus-api'"):
        load_config(tmp_path / "campus.toml")
