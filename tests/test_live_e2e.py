"""Two real bridges on loopback: a "live" Small Office bridge whose cooling setpoint a client writes, and a
twin bridge (the Small Office on EnergyPlus, paced) whose campus file mirrors that setpoint
(``[buildings.live]``). The live bridge is absent when the twin starts, comes up, drops and comes back."""

import asyncio
import sqlite3

from asyncua import Client, ua

from bridge.server import NAMESPACE
from conftest import SIMS, TAGMAPS, free_port, run_bridge, wait_until

MAX_AGE_S = 2.0


def campus_files(tmp_path, live_port: int):
    text = (SIMS / "small_office.toml").read_text().replace('"../tagmaps/', f'"{TAGMAPS}/')
    live = tmp_path / "live.toml"
    live.write_text(text.replace('name = "TestSite"', 'name = "Live"'))
    twin = tmp_path / "twin.toml"
    twin.write_text(text.replace('name = "TestSite"', 'name = "Twin"') + f'''
[buildings.live]
endpoint = "opc.tcp://127.0.0.1:{live_port}"
max_age_s = {MAX_AGE_S}
request_timeout_s = 0.5
backoff_min_s = 0.2
backoff_max_s = 0.5
publishing_interval_ms = 50

[[buildings.live.inputs]]
input = "CoolingSetpoint"
node = "/Live/SmallOffice/Inputs/CoolingSetpoint"
unit = "degC->degC"
''')
    return twin, live


async def read(client: Client, path: str):
    idx = await client.get_namespace_index(NAMESPACE)
    return await client.get_node(ua.NodeId(path, idx)).read_value()


async def write(client: Client, path: str, value: float) -> None:
    idx = await client.get_namespace_index(NAMESPACE)
    await client.get_node(ua.NodeId(path, idx)).write_value(ua.DataValue(ua.Variant(value, ua.VariantType.Double)))


async def until_value(client: Client, path: str, expected, timeout_s: float = 20.0) -> None:
    async def reached():
        return await read(client, path) == expected
    await wait_until(reached, timeout_s, 0.05)


def test_twin_mirrors_the_live_setpoint_through_absence_drop_and_return(tmp_path):
    live_port = free_port()
    twin_toml, live_toml = campus_files(tmp_path, live_port)
    cooling, stale = "Twin.SmallOffice.Inputs.CoolingSetpoint", "Twin.SmallOffice.Control.LiveStale"
    live_cooling = "Live.SmallOffice.Inputs.CoolingSetpoint"
    followed_at = {}
    with run_bridge(twin_toml, tmp_path, "--clock", "paced", "--speed", "600") as twin:

        async def absent_then_live() -> None:
            async with Client(twin.endpoint, timeout=10) as client:
                await asyncio.sleep(MAX_AGE_S + 1)  # nobody at the live endpoint: defaults, stale flag
                assert await read(client, stale) is True and await read(client, cooling) == 24.0
                with run_bridge(live_toml, tmp_path, "--wait-for-start", port=live_port) as live:
                    async with Client(live.endpoint, timeout=10) as operator:
                        await write(operator, live_cooling, 26.5)
                        await until_value(client, cooling, 26.5)
                        followed_at["first"] = await read(client, "Twin.SmallOffice.Control.Step")
                        await until_value(client, stale, False)
                        try:  # a controller may not write the mirrored input, but the other one
                            await write(client, cooling, 23.0)
                            raise AssertionError("write to a mirrored input accepted")
                        except ua.UaStatusCodeError as refused:
                            assert refused.code == ua.StatusCodes.BadNotWritable
                        await write(client, "Twin.SmallOffice.Inputs.HeatingSetpoint", 20.0)
                # dropped: the value is held, the flag goes up, the twin runs on
                await until_value(client, stale, True, MAX_AGE_S + 10)
                assert await read(client, cooling) == 26.5
                step = await read(client, "Twin.SmallOffice.Control.Step")
                await wait_until(lambda: _later(client, step), 10)
                with run_bridge(live_toml, tmp_path, "--wait-for-start", port=live_port) as live:
                    async with Client(live.endpoint, timeout=10) as operator:
                        await write(operator, live_cooling, 25.0)
                        await until_value(client, cooling, 25.0)
                        await until_value(client, stale, False)
                        followed_at["second"] = await read(client, "Twin.SmallOffice.Control.Step")
                        await wait_until(lambda: _later(client, followed_at["second"] + 2), 10)
                assert await read(client, "Twin.SmallOffice.Control.Status") == "Running"

        asyncio.run(absent_then_live())
        assert "Traceback" not in twin.log
        assert "live inputs stale" in twin.log and "live inputs current again" in twin.log
        historian = twin.historian()
    with sqlite3.connect(historian) as db:
        applied = dict(db.execute("SELECT step, CoolingSetpoint FROM SmallOffice ORDER BY step"))
    # Each new live value drives the steps from the one after the twin's tag showed it (within one step).
    assert applied[followed_at["first"] + 2] == 26.5 and applied[followed_at["second"] + 2] == 25.0


async def _later(client: Client, step: int) -> bool:
    return await read(client, "Twin.SmallOffice.Control.Step") > step
