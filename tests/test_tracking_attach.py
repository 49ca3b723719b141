"""attach_tracking on an in-process bridge TagServer: the Tracking node and its status follow the alerts."""

import asyncio
import datetime as dt
import math
import socket
from pathlib import Path

import pytest
from asyncua import Client, ua

from bridge.protocol import METHODS, NAMESPACE
from bridge.server import TagServer
from bridge.tagmap import load_tagmap
from bridge.tracking.anomalies import AnomalyLog
from bridge.tracking.attach import attach_tracking
from bridge.tracking.config import TrackingConfigError, load_tracking_config
from conftest import TAGMAPS, wait_until

START = dt.datetime(2025, 7, 22)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tracking_file(tmp_path, endpoint: str, twin_endpoint: str = "opc.tcp://127.0.0.1:1", tracking_keys: str = "") -> str:
    """Tracking TOML; its [twin] endpoint is a dead one: attach_tracking must use the bridge's own."""
    path = tmp_path / "tracking.toml"
    path.write_text(f"""
[tracking]
anomaly_db = "anomalies.sqlite"
pair_timeout_s = 5
stale_after_s = 60
{tracking_keys}

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

    async def exchange() -> tuple[int, list[float], bool]:
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


def test_calibration_view_tags_appear_and_update_each_completed_hour(tmp_path):
    """Half-hour steps, window 3 h, figures from 2 h: Tracking.FacilityPower.* follow the hand-computed view."""
    async def main():
        endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
        server = TagServer(endpoint, "C")
        await server.init()
        for name in ("Office", "Meter"):
            await add_building(server, name)
        await server.listen()
        keys = "calibration_window_h = 3\ncalibration_min_hours = 2"
        task = await attach_tracking(server, "C", "Office", tracking_file(tmp_path, endpoint, tracking_keys=keys), 1800)
        step = 0

        async def publish_step(meter_kw: float) -> None:  # the twin is 10 kW throughout
            nonlocal step
            step += 1
            stamp = START + dt.timedelta(minutes=30 * step)
            await server.publish_outputs("Meter", {"FacilityPower": meter_kw}, stamp)
            await server.publish_outputs("Office", {"FacilityPower": 10.0}, stamp)

        try:
            async with Client(endpoint, timeout=5) as client:
                idx = await client.get_namespace_index(NAMESPACE)
                nodes = {name: client.get_node(ua.NodeId(f"C.Office.Tracking.FacilityPower.{name}", idx))
                         for name in ("HourlyCvRmsePct", "HourlyNmbePct", "HoursInWindow", "Guideline14Pass")}

                async def view():
                    return {name: await node.read_value() for name, node in nodes.items()}

                first = await view()
                assert math.isnan(first["HourlyCvRmsePct"]) and first["HoursInWindow"] == 0
                assert first["Guideline14Pass"] is False
                await asyncio.sleep(1.0)  # let the link subscribe to both buildings
                expected = [  # (hours, CV(RMSE) %, NMBE %, pass) after each completed hour; twin 10 kW
                    (1, math.nan, math.nan, False),  # meter 11: under the 2 hours needed
                    (2, 100 * math.sqrt(2) / 10, 0.0, True),  # 11, 9
                    (3, 100 * math.sqrt(6 / 2) / (32 / 3), 100 * 2 / (2 * 32 / 3), True),  # 11, 9, 12
                    (3, 100 * math.sqrt(21 / 2) / (35 / 3), 100 * 5 / (2 * 35 / 3), False),  # 9, 12, 14 (11 evicted)
                ]
                meters = [11.0, 9.0, 12.0, 14.0, 14.0]  # kW, one per hour
                await publish_step(meters[0])
                for hour, (hours, cv, nmbe, passes) in enumerate(expected):
                    await publish_step(meters[hour])  # the hour's second step
                    await publish_step(meters[hour + 1])  # the next hour's first step completes the hour

                    async def view_is_expected():
                        got = await view()
                        same = (got["HoursInWindow"] == hours and got["Guideline14Pass"] is passes
                                and math.isclose(got["HourlyCvRmsePct"], cv, rel_tol=1e-9)
                                and math.isclose(got["HourlyNmbePct"], nmbe, rel_tol=1e-9, abs_tol=1e-9))
                        return same or (math.isnan(cv) and got["HoursInWindow"] == hours
                                        and math.isnan(got["HourlyCvRmsePct"]) and math.isnan(got["HourlyNmbePct"]))
                    await wait_until(view_is_expected, timeout_s=20)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await server.stop()
        latest = AnomalyLog(tmp_path / "anomalies.sqlite", "ro").latest_calibration()
        assert [(v.signal, v.hours_in_window, v.passes) for v in latest] == [("FacilityPower", 3, False)]

    asyncio.run(main())


@pytest.mark.parametrize("old, new, message", [
    ("[thresholds]\n", "[thresholds.hour]\n",
     "[thresholds]: unknown keys ['hour'] (allowed: ['alert_pct', 'alert_steps', 'clear_steps', 'daily'"),
    ("[live]\n", "[tracker]\nstale_after_s = 5\n\n[live]\n", "unknown keys ['tracker']"),
    ("publishing_interval_ms = 20\n\n[twin]", "publishing_intervall_ms = 20\n\n[twin]",
     "[live]: unknown keys ['publishing_intervall_ms']"),
    ("stale_after_s = 60", 'stale_after_s = "60"', "[tracking]: 'stale_after_s' must be a number, got '60'"),
    ('unit = "kW"', 'unit = "kW"\nscale = "0.001"', "pairs[0]: 'scale' must be a number, got '0.001'"),
    ("warning_steps = 2", "warning_steps = 2.5", "[thresholds]: 'warning_steps' must be an integer, got 2.5"),
    ('anomaly_db = "anomalies.sqlite"', "anomaly_db = 1", "[tracking]: 'anomaly_db' must be text, got 1"),
    ("publishing_interval_ms = 20\n\n[twin]", "publishing_interval_ms = 20\nutc_offset_h = -60\n\n[twin]",
     "[live]: utc_offset_h must be within -14 .. 14 hours, got -60"),
])
def test_tracking_file_refuses_unknown_keys_and_quoted_numbers(tmp_path, old, new, message):
    path = Path(tracking_file(tmp_path, "opc.tcp://127.0.0.1:1"))
    text = path.read_text()
    path.write_text(text.replace("[live]\n", "[thresholds.hourly]\nwarning_pct = 20\nalert_pct = 40\n\n[live]\n"))
    config = load_tracking_config(path)
    assert config.thresholds["hourly"].warning_pct == 20 and config.stale_after_s == 60.0
    assert old in text
    path.write_text(text.replace(old, new))
    with pytest.raises(TrackingConfigError) as error:
        load_tracking_config(path)
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
