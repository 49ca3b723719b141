"""attach_tracking on an in-process bridge TagServer: the Tracking node and its status follow the alerts."""

import asyncio
import datetime as dt
import socket

import pytest
from asyncua import Client, ua

from bridge.server import METHODS, NAMESPACE, TagServer
from bridge.tagmap import load_tagmap
from bridge.tracking.attach import attach_tracking
from bridge.tracking.config import TrackingConfigError
from conftest import TAGMAPS, wait_until

START = dt.datetime(2025, 7, 22)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tracking_file(tmp_path, endpoint: str, twin_endpoint: str = "opc.tcp://127.0.0.1:1") -> str:
    """Tracking TOML; its [twin] endpoint is a dead one: attach_tracking must use the bridge's own."""
    path = tmp_path / "tracking.toml"
    path.write_text(f"""
[tracking]
anomaly_db = "anomalies.sqlite"
pair_timeout_s = 5
stale_after_s = 60

[thresholds]
warning_steps = 2
alert_steps = 2

[live]
endpoint = "{endpoint}"
publishing_interval_ms = 20

[twin]
endpoint = "{twin_endpoint}"
publishing_interval_ms = 20

[[pairs]]
name = "FacilityPower"
twin = "C.Office.Outputs.FacilityPower"
live = "C.Meter.Outputs.FacilityPower"
unit = "kW"
""")
    return str(path)


async def add_building(server: TagServer, name: str) -> None:
    async def method() -> str:
        return "ok"

    async def exchange() -> tuple[int, list[float]]:
        raise ValueError("not used")

    await server.add_building(name, load_tagmap(TAGMAPS / "small_office.toml"), {m: method for m in METHODS},
                              lambda: None, exchange)


def test_attach_tracking_serves_status_under_the_building(tmp_path):
    async def main():
        endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
        server = TagServer(endpoint, "C")
        await server.init()
        for name in ("Office", "Meter"):  # the twin and a meter standing in for the live building
            await add_building(server, name)
        with pytest.raises(LookupError, match="C.Nowhere"):
            await attach_tracking(server, "C", "Nowhere", tracking_file(tmp_path, endpoint), 600)
        with pytest.raises(TrackingConfigError, match="not tags of C.Meter"):
            await attach_tracking(server, "C", "Meter", tracking_file(tmp_path, endpoint), 600)
        await server.listen()
        task = await attach_tracking(server, "C", "Office", tracking_file(tmp_path, endpoint), 600)
        try:
            async with Client(endpoint, timeout=5) as client:
                idx = await client.get_namespace_index(NAMESPACE)
                severity = client.get_node(ua.NodeId("C.Office.Tracking.Severity", idx))
                assert await severity.read_value() == "ok"
                await asyncio.sleep(1.0)  # let the link subscribe to both buildings
                for i, meter_kw in enumerate([10.0, 10.0, 13.0, 13.0, 13.0]):
                    stamp = START + dt.timedelta(minutes=10 * (i + 1))
                    await server.publish_outputs("Meter", {"FacilityPower": meter_kw}, stamp)
                    await server.publish_outputs("Office", {"FacilityPower": 10.0}, stamp)

                    async def severity_is_alert():
                        return await severity.read_value() == "alert"
                await wait_until(severity_is_alert, timeout_s=20)
                deviation = client.get_node(ua.NodeId("C.Office.Tracking.DeviationPct", idx))
                assert await deviation.read_value() == pytest.approx(30.0)
                assert "FacilityPower" in await client.get_node(ua.NodeId("C.Office.Tracking.LastAlert", idx)).read_value()
                assert await client.get_node(ua.NodeId("C.Office.Tracking.StaleData", idx)).read_value() is False
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()
        assert (tmp_path / "anomalies.sqlite").is_file()

    asyncio.run(main())
