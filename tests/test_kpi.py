"""Run KPIs: a small hand-computed case, and a real run checked against its own historian."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from bridge.historian import Historian, load_history
from bridge.kpi import TimeOfUse, compute_kpis, summary, write_kpis_json
from bridge.tagmap import InputTag, OutputTag, TagMap, load_tagmap
from conftest import TAGMAPS, run_bridge

TAGMAP = TagMap("Tiny", (InputTag("CoolingSetpoint", "degC", 18.0, 32.0, 24.0, schedule="CLG"),),
                (OutputTag("Power", "kW", meter="Electricity:Facility", role="electric_power"),
                 OutputTag("Hvac", "kW", meter="Electricity:HVAC", role="hvac_electric_power"),
                 OutputTag("Z1", "degC", key="Z1", variable="Zone Mean Air Temperature", comfort=(20.0, 25.0)),
                 OutputTag("Z2", "degC", key="Z2", variable="Zone Mean Air Temperature", comfort=(20.0, 26.0))),
                floor_area_m2=100.0)


@pytest.fixture
def tiny_historian(tmp_path):
    """Six 10-minute steps from midnight: power 10..60 kW, HVAC 1..6 kW, one zone out of its band."""
    path = tmp_path / "historian.sqlite"
    historian = Historian(path, {"Tiny": TAGMAP})
    z1 = [19.0, 21.0, 26.0, 27.5, 25.0, 20.0]
    for k in range(1, 7):
        end = dt.datetime(2025, 7, 1) + dt.timedelta(minutes=10 * k)
        historian.record([("Tiny", k, 600.0 * k, end, {"CoolingSetpoint": 24.0, "Power": 10.0 * k, "Hvac": 1.0 * k,
                                                        "Z1": z1[k - 1], "Z2": 22.0})])
    historian.close()
    return path


def test_small_case_by_hand(tiny_historian, tmp_path):
    price = TimeOfUse(((0.0, 0.5, 0.2),), default=0.1, weekdays_only=False)
    kpis = compute_kpis(tiny_historian, {"Tiny": TAGMAP}, price=price, emissions=0.5, wall_time_s=36.0)
    tiny = kpis["buildings"]["Tiny"]
    # Energy: (10+20+...+60) kW x 1/6 h = 35 kWh; HVAC (1+...+6)/6 = 3.5 kWh.
    assert tiny["energy_total_kwh"] == pytest.approx(35.0)
    assert tiny["energy_total_kwh_per_m2"] == pytest.approx(0.35)
    assert tiny["energy_hvac_kwh_per_m2"] == pytest.approx(0.035)
    # 15-minute windows: (10*10+20*5)/15, (20*5+30*10)/15, (40*10+50*5)/15, (50*5+60*10)/15 = 56.67 kW at most.
    assert tiny["peak_electric_kw"] == pytest.approx(850.0 / 15.0)
    assert tiny["peak_electric_kw_per_m2"] == pytest.approx(850.0 / 15.0 / 100.0)
    # Cost: steps starting 0:00-0:20 at 0.2 $/kWh (10 kWh), 0:30-0:50 at 0.1 (25 kWh) = 4.5 $.
    assert tiny["cost_usd"] == pytest.approx(4.5)
    assert tiny["cost_usd_per_m2"] == pytest.approx(0.045)
    assert tiny["emissions_kgco2_per_m2"] == pytest.approx(0.175)
    # Z1 outside [20, 25] by 1, 0, 1, 2.5, 0, 0 K for 1/6 h each = 0.75 K.h; Z2 never: 0.375 K.h per zone.
    assert tiny["thermal_discomfort_kh"] == {"Z1": pytest.approx(0.75), "Z2": 0.0}
    assert tiny["thermal_discomfort_kh_per_zone"] == pytest.approx(0.375)
    assert kpis["campus"]["time_ratio"] == pytest.approx(36.0 / 3600.0)
    assert kpis["period"] == {"start": "2025-07-01T00:00:00", "end": "2025-07-01T01:00:00", "steps": 6,
                              "step_s": 600.0, "simulated_s": 3600.0}
    written = json.loads(write_kpis_json(tmp_path / "kpis.json", kpis).read_text())
    assert written["campus"]["cost_usd"] == pytest.approx(4.5)
    assert written["price_usd_per_kwh"]["kind"] == "time_of_use"


def test_missing_area_and_roles_give_none(tiny_historian):
    bare = TagMap("Tiny", TAGMAP.inputs, tuple(o for o in TAGMAP.outputs if o.role != "hvac_electric_power"))
    kpis = compute_kpis(tiny_historian, {"Tiny": bare})["buildings"]["Tiny"]
    assert kpis["energy_total_kwh"] == pytest.approx(35.0)
    assert kpis["energy_total_kwh_per_m2"] is None
    assert kpis["energy_hvac_kwh"] is None


@pytest.mark.engine
def test_kpis_of_a_real_run_equal_a_hand_computation(small_office_config, tmp_path):
    with run_bridge(small_office_config, tmp_path, "--clock", "fast", keep_serving=False) as bridge:
        assert bridge.wait() == 0, bridge.log
        path = bridge.historian()
    tagmap = load_tagmap(TAGMAPS / "small_office.toml")
    price = TimeOfUse(((12.0, 18.0, 0.30),), default=0.08)
    kpis = compute_kpis(path, {"SmallOffice": tagmap}, price=price, emissions=0.45, wall_time_s=10.0)
    got = kpis["buildings"]["SmallOffice"]

    frame = load_history(path, "SmallOffice")
    area, step_h = 511.2, 1 / 6
    assert len(frame) == 432 and (frame["sim_time_s"].diff().dropna() == 600.0).all()
    energy = frame["FacilityPower"].sum() * step_h
    assert got["energy_total_kwh_per_m2"] == pytest.approx(energy / area)
    assert got["energy_hvac_kwh_per_m2"] == pytest.approx(frame["HvacPower"].sum() * step_h / area)
    minutes = np.repeat(frame["FacilityPower"].to_numpy(), 10)  # one value per simulated minute
    assert got["peak_electric_kw_per_m2"] == pytest.approx(minutes.reshape(-1, 15).mean(axis=1).max() / area)
    cost = 0.0
    for end, power_kw in frame["FacilityPower"].items():
        start = end - dt.timedelta(minutes=10)
        rate = 0.30 if start.weekday() < 5 and 12 <= start.hour < 18 else 0.08
        cost += power_kw * step_h * rate
    assert got["cost_usd_per_m2"] == pytest.approx(cost / area)
    assert got["emissions_kgco2_per_m2"] == pytest.approx(energy * 0.45 / area)
    zones = {}
    for zone in ("CoreZoneTemp", *(f"PerimeterZone{i}Temp" for i in range(1, 5))):
        outside = [max(0.0, t - 25.0, 20.0 - t) for t in frame[zone]]
        zones[zone] = sum(outside) * step_h
    assert got["thermal_discomfort_kh"] == pytest.approx(zones)
    assert got["thermal_discomfort_kh_per_zone"] == pytest.approx(sum(zones.values()) / 5)
    assert kpis["campus"]["time_ratio"] == pytest.approx(10.0 / (432 * 600.0))
    # The integrated power agrees with the energy EnergyPlus metered (rectangle rule on step averages).
    assert energy == pytest.approx(frame["ElectricityEnergy"].sum(), rel=0.01)


def test_campus_sums_buildings_even_when_one_stopped_early(tmp_path):
    path = tmp_path / "historian.sqlite"
    historian = Historian(path, {"Tiny": TAGMAP, "Other": TAGMAP})
    for k in range(1, 7):
        end = dt.datetime(2025, 7, 1) + dt.timedelta(minutes=10 * k)
        rows = [("Tiny", k, 600.0 * k, end, {"Power": 10.0 * k, "Hvac": 1.0, "Z1": 22.0, "Z2": 27.0})]
        if k <= 3:  # Other faulted after three steps
            rows.append(("Other", k, 600.0 * k, end, {"Power": 100.0, "Hvac": 2.0, "Z1": 22.0, "Z2": 22.0}))
        historian.record(rows)
    historian.close()
    campus = compute_kpis(path, {"Tiny": TAGMAP, "Other": TAGMAP}, price=1.0)["campus"]
    assert campus["energy_total_kwh"] == pytest.approx(35.0 + 100.0 * 3 / 6)
    assert campus["energy_total_kwh_per_m2"] == pytest.approx(85.0 / 200.0)
    assert campus["cost_usd"] == pytest.approx(85.0)
    # 0:15-0:30: Tiny (20*5 + 30*10)/15 plus Other's 100 kW = 126.7 kW; later windows lack Other.
    assert campus["peak_electric_kw"] == pytest.approx(400.0 / 15.0 + 100.0)
    # Tiny's Z2 is 1 K above 26 for 1 h; four zones in all.
    assert campus["thermal_discomfort_kh_per_zone"] == pytest.approx(1.0 / 4)


def test_summary_shows_kpis_it_could_not_compute_as_na():
    """A run too short for a 15-minute window has no peak: the log says n/a, not 0.0 kW."""
    line = summary({"energy_total_kwh": 12.34, "peak_electric_kw": None, "thermal_discomfort_kh_per_zone": 0.0,
                        "time_ratio": 0.018})
    assert line == ("energy 12.3 kWh, peak n/a kW, discomfort 0.00 K.h/zone, time ratio 0.018; "
                    "BOPTEST tdis_tot n/a K.h/zone, ener_tot n/a kWh/m2, pele_tot n/a kW/m2")
