"""The GP twin behind the bridge: same tags as the EnergyPlus building (plus <Tag>Std), over OPC UA."""

import asyncio
from pathlib import Path

import numpy as np
import pytest
from asyncua import Client, ua

from bridge.protocol import NAMESPACE
from conftest import TAGMAPS, run_bridge
# session fixtures: a short excited run (historian file, loaded), a twin trained on it
from test_twin_model import small_office, small_office_db, trained  # noqa: F401

pytestmark = pytest.mark.engine


def twin_campus(tmp_path: Path, model_path: Path) -> Path:
    path = tmp_path / "twin_campus.toml"
    path.write_text(f'[campus]\nname = "TwinSite"\n\n[run]\nstart = "07-07"\nend = "07-07"\n'
                    f'timesteps_per_hour = 6\n\n[[buildings]]\nname = "SmallOffice"\nengine = "twin"\n'
                    f'twin_model = "{model_path}"\nweather = "ref:usa_il_chicago"\n'
                    f'tagmap = "{TAGMAPS / "small_office.toml"}"\n')
    return path


def occupied_power_kw(endpoint: str, cooling_c: float) -> tuple[float, list[str], float, np.ndarray]:
    """Drive a lockstep twin for its day with Control.Exchange; mean power 09-17, output tags, a std,
    and per step (meter kWh, power kW of the step before)."""

    async def run():
        async with Client(endpoint, timeout=60, watchdog_intervall=60) as client:
            idx = await client.get_namespace_index(NAMESPACE)
            control = client.get_node(ua.NodeId("TwinSite.SmallOffice.Control", idx))
            exchange = ua.NodeId("TwinSite.SmallOffice.Control.Exchange", idx)
            outputs = await client.get_node(ua.NodeId("TwinSite.SmallOffice.Control.OutputTags", idx)).read_value()
            power, rows = outputs.index("FacilityPower"), []
            while True:
                try:
                    step, values, _ = await control.call_method(exchange, ua.Variant([cooling_c, 18.0],
                                                                                       ua.VariantType.Double))
                except ua.UaStatusCodeError:
                    break
                rows.append((step, values))
            occupied = [values[power] for step, values in rows if 9 * 6 < step <= 17 * 6]
            std = rows[60][1][outputs.index("FacilityPowerStd")]
            meter = outputs.index("ElectricityEnergy")
            lag = np.array([(now[meter], before[power]) for (_, before), (_, now) in zip(rows, rows[1:])])
            return float(np.mean(occupied)), outputs, std, lag

    return asyncio.run(run())


def test_twin_serves_tags_and_answers_setpoints_like_a_building(trained, tmp_path):  # noqa: F811
    _, model_path = trained
    campus = twin_campus(tmp_path, model_path)
    results = {}
    for cooling_c in (22.0, 27.0):
        with run_bridge(campus, tmp_path, "--clock", "lockstep", keep_serving=False) as bridge:
            results[cooling_c] = occupied_power_kw(bridge.endpoint, cooling_c)
            bridge.wait(60)
    (cool_kw, outputs, std, lag), (warm_kw, _, _, _) = results[22.0], results[27.0]
    assert {"FacilityPower", "FacilityPowerStd", "CoreZoneTemp", "CoreZoneTempStd"} <= set(outputs)
    # the meter carries the previous step's energy, as EnergyPlus 25.2's meter tags do
    np.testing.assert_allclose(lag[1:, 0], lag[1:, 1] / 6, rtol=1e-12)
    assert std > 0
    assert warm_kw < cool_kw  # raising the cooling setpoint in July lowers the predicted power
