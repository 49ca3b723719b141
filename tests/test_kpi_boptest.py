"""BOPTEST's core KPIs (bridge/kpi.py) against BOPTEST's own calculator on a shared example, the
occupied/unoccupied comfort bands, and the tag map keys that declare them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boptest_kpi_calculator import KPI_Calculator
from bridge.comfort import ComfortBands, Occupancy, read_occupancy
from bridge.historian import Historian
from bridge.kpi import TimeOfUse, compute_kpis
from bridge.protocol import BoptestKpi
from bridge.tagmap import OutputTag, TagMap, TagMapError, load_tagmap
from bridge.tomlfile import Table
from controllers.loop import LoopReport

OFFICE_HOURS = Occupancy((6.0, 22.0), (6.0, 18.0), None)  # the shipped tag maps' (and the DOE models') hours
BANDS = ComfortBands((20.0, 24.0), (12.0, 30.0), OFFICE_HOURS)
AREA_M2 = 250.0
STEP_S = 600
START = dt.datetime(2025, 1, 10)  # a Friday: a weekday, then a Saturday (shorter occupancy)
STEPS = 2 * 24 * 6
TAGMAP = TagMap("Shared", (), (
    OutputTag("Facility", "kW", meter="Electricity:Facility", role="electric_power"),
    OutputTag("Hvac", "kW", meter="Electricity:HVAC", role="hvac_electric_power"),
    OutputTag("Gas", "kW", meter="NaturalGas:HVAC", role="hvac_gas_power"),
    OutputTag("Z1", "degC", key="Z1", variable="Zone Mean Air Temperature", role="zone_temperature",
              comfort=(20.0, 25.0), bands=BANDS),
    OutputTag("Z2", "degC", key="Z2", variable="Zone Mean Air Temperature", role="zone_temperature",
              comfort=(20.0, 25.0), bands=BANDS)), floor_area_m2=AREA_M2)
DYNAMIC = TimeOfUse(((8.0, 17.0, 0.3),), default=0.1, weekdays_only=False)  # BOPTEST's generate_prices defaults
GAS_PRICE, ELECTRIC_FACTOR, GAS_FACTOR = 0.07, 0.5, 0.2  # BOPTEST's generate_prices / generate_emissions defaults


def shared_example() -> dict[str, np.ndarray]:
    """Step values of the example: zones that float down to about 15 degC at night (a setback) and
    overshoot the occupied band by day; HVAC power and gas with a morning start-up peak."""
    rng = np.random.default_rng(7)
    starts = [START + dt.timedelta(seconds=STEP_S * k) for k in range(STEPS)]
    occupied = np.array([OFFICE_HOURS.occupied(t) for t in starts])
    hour = np.array([t.hour + t.minute / 60 for t in starts])
    z1 = np.where(occupied, 22.0 + 2.5 * np.sin((hour - 9) / 24 * 2 * np.pi), 15.0 + rng.normal(0, 0.5, STEPS))
    z2 = np.where(occupied, 19.5 + rng.normal(0, 1.0, STEPS), 31.0 - 0.1 * hour)
    morning = (hour >= 5) & (hour < 7)
    hvac = np.where(occupied, 20.0, 2.0) + np.where(morning, 35.0, 0.0) + rng.uniform(0, 5, STEPS)
    gas = np.where(morning, 60.0, np.where(occupied, 12.0, 0.0)) + rng.uniform(0, 3, STEPS)
    return {"Facility": hvac + 30.0, "Hvac": hvac, "Gas": gas, "Z1": z1, "Z2": z2}


def write_historian(path, values: dict[str, np.ndarray]):
    historian = Historian(path, {"Shared": TAGMAP})
    for k in range(STEPS):
        end = START + dt.timedelta(seconds=STEP_S * (k + 1))
        historian.record([("Shared", k + 1, STEP_S * (k + 1.0), end, {tag: float(v[k]) for tag, v in values.items()})])
    historian.close()
    return path


class _BoptestCase:
    """The parts of BOPTEST's TestCase its KPI calculator reads: y_store (the signals sampled every
    second, SI units), kpi_json, the data manager's boundary-condition time series, the floor area."""

    def __init__(self, values: dict[str, np.ndarray], ratios: list[float]):
        year_s = (START - dt.datetime(START.year, 1, 1)).total_seconds()
        seconds = np.arange(STEPS * STEP_S + 1)
        step = np.minimum(seconds // STEP_S, STEPS - 1)  # each second holds its step's value (the last: the end)
        self.times = [START + dt.timedelta(seconds=int(s)) for s in seconds[::STEP_S]]
        self.y_store = {"time": year_s + seconds.astype(float), "hvac_el_y": 1000 * values["Hvac"][step],
                        "gas_y": 1000 * values["Gas"][step], "z1_TZon_y": 273.15 + values["Z1"][step],
                        "z2_TZon_y": 273.15 + values["Z2"][step]}
        self.kpi_json = {"ElectricPower": ["hvac_el_y"], "GasPower": ["gas_y"],
                         "AirZoneTemperature[z1]": ["z1_TZon_y"], "AirZoneTemperature[z2]": ["z2_TZon_y"]}
        self.initial_time, self.ratios = year_s, ratios
        low, high = BANDS.limits([START + dt.timedelta(seconds=STEP_S * int(k)) for k in range(STEPS)])
        price = np.array([DYNAMIC(START + dt.timedelta(seconds=STEP_S * int(k))) for k in range(STEPS)])
        self.series = {"LowerSetp[z1]": 273.15 + low[step], "UpperSetp[z1]": 273.15 + high[step],
                       "LowerSetp[z2]": 273.15 + low[step], "UpperSetp[z2]": 273.15 + high[step],
                       "PriceElectricPowerDynamic": price[step], "PriceGasPower": np.full(len(step), GAS_PRICE),
                       "EmissionsElectricPower": np.full(len(step), ELECTRIC_FACTOR),
                       "EmissionsGasPower": np.full(len(step), GAS_FACTOR)}
        self.data_manager = self

    def get_data(self, index, variables):
        first = len(self.y_store["time"]) - len(index)
        return {name: self.series[name][first:] for name in variables}

    def _get_area(self):
        return AREA_M2

    def _get_elapsed_control_time_ratio(self):
        return self.ratios


def test_kpis_equal_boptests_own_calculator_on_a_shared_example(tmp_path):
    """tdis_tot, ener_tot, cost_tot (dynamic scenario), emis_tot, pele_tot, pgas_tot and time_rat as
    BOPTEST's KPI_Calculator computes them (a verbatim copy, tests/boptest_kpi_calculator.py) from the
    same signals: BOPTEST integrates per-second samples with the trapezoid rule, twinbridge the step
    values with the rectangle rule, which differ by half a second at each step's jump (< 0.1 %)."""
    values = shared_example()
    control_s = [0.02, 0.5, 1.3, 0.04]
    report = LoopReport(control_times_s=control_s, step_s=float(STEP_S))
    ours = compute_kpis(write_historian(tmp_path / "historian.sqlite", values), {"Shared": TAGMAP}, price=DYNAMIC,
                        emissions=ELECTRIC_FACTOR, gas_price=GAS_PRICE, gas_emissions=GAS_FACTOR,
                        time_rat=report.time_rat)["buildings"]["Shared"]
    boptest = KPI_Calculator(_BoptestCase(values, [t / STEP_S for t in control_s]))
    reference = {BoptestKpi.TDIS_TOT: boptest.get_thermal_discomfort(), BoptestKpi.ENER_TOT: boptest.get_energy(),
                 BoptestKpi.COST_TOT: boptest.get_cost("Dynamic"), BoptestKpi.EMIS_TOT: boptest.get_emissions(),
                 BoptestKpi.PELE_TOT: boptest.get_peak_electricity(), BoptestKpi.PGAS_TOT: boptest.get_peak_gas(),
                 BoptestKpi.TIME_RAT: boptest.get_computational_time_ratio()}
    assert reference[BoptestKpi.TDIS_TOT] > 1.0 and reference[BoptestKpi.PGAS_TOT] > 0  # the example is not trivial
    for name, value in reference.items():
        assert ours[name] == pytest.approx(value, rel=1e-3), name
    assert ours[BoptestKpi.PDIH_TOT] is None and ours[BoptestKpi.IDIS_TOT] is None
    # The facility-level figures of the same run differ: whole-facility electricity, no gas, a fixed band.
    assert ours["energy_total_kwh_per_m2"] != pytest.approx(ours[BoptestKpi.ENER_TOT], rel=0.05)
    assert ours["thermal_discomfort_kh_per_zone"] > 2 * ours[BoptestKpi.TDIS_TOT]


def test_night_and_weekend_setbacks_are_not_discomfort_under_occupied_and_unoccupied_bands(tmp_path):
    """A zone held at 21 degC while occupied and left at 15 degC (a setback) on nights and the weekend:
    no discomfort with BOPTEST's bands (12-30 degC unoccupied); the fixed band [20, 25] counts 5 K for
    every unoccupied hour."""
    path = tmp_path / "historian.sqlite"
    historian = Historian(path, {"Shared": TAGMAP})
    start, unoccupied_h = dt.datetime(2025, 1, 10), 0.0  # Friday to Sunday
    for k in range(3 * 24 * 6):
        begin = start + dt.timedelta(minutes=10 * k)
        temp = 21.0 if OFFICE_HOURS.occupied(begin) else 15.0
        unoccupied_h += 0.0 if OFFICE_HOURS.occupied(begin) else 1 / 6
        historian.record([("Shared", k + 1, 600.0 * (k + 1), begin + dt.timedelta(minutes=10),
                           {"Facility": 1.0, "Hvac": 1.0, "Gas": 0.0, "Z1": temp, "Z2": temp})])
    historian.close()
    kpis = compute_kpis(path, {"Shared": TAGMAP})["buildings"]["Shared"]
    assert kpis[BoptestKpi.TDIS_TOT] == 0.0
    assert kpis["thermal_discomfort_kh_per_zone"] == pytest.approx(5.0 * unoccupied_h)
    assert unoccupied_h == pytest.approx(72 - 16 - 12)


def test_tdis_tot_needs_every_zone_banded(tmp_path):
    """BOPTEST averages over every zone: a zone temperature without bands leaves tdis_tot out (None), named."""
    values = shared_example()
    partial = TagMap("Shared", (), (*TAGMAP.outputs[:4], OutputTag("Z2", "degC", key="Z2", variable="T",
                                                                     role="zone_temperature")), floor_area_m2=AREA_M2)
    kpis = compute_kpis(write_historian(tmp_path / "h.sqlite", values), {"Shared": partial})["buildings"]["Shared"]
    assert kpis[BoptestKpi.TDIS_TOT] is None and kpis["tdis_unbanded_zones"] == ["Z2"]
    assert kpis[BoptestKpi.ENER_TOT] is not None


def test_shipped_tagmaps_band_every_zone_and_declare_gas(tmp_path):
    from conftest import TAGMAPS

    for name, zones in (("small_office", 5), ("large_office", 16)):
        tagmap = load_tagmap(TAGMAPS / f"{name}.toml")
        temps = [o for o in tagmap.outputs if o.role == "zone_temperature"]
        assert len(temps) == zones and all(o.bands and o.comfort for o in temps), name
        assert any(o.role == "hvac_gas_power" for o in tagmap.outputs), name


@pytest.mark.parametrize("extra, message", [
    ("comfort_occupied = [20.0, 24.0]\n", "give both 'comfort_occupied' and 'comfort_unoccupied'"),
    ("comfort_occupied = [20.0, 24.0]\ncomfort_unoccupied = [12.0, 30.0]\n", "comfort bands need an occupancy"),
    ("comfort_occupied = [24.0, 20.0]\ncomfort_unoccupied = [12.0, 30.0]\n", "'comfort_occupied' must be [low, high]"),
    ("occupancy = { weekdays = [6.0, 22.0] }\n", "'occupancy' needs 'comfort_occupied'"),
    ("comfort_occupied = [20.0, 24.0]\ncomfort_unoccupied = [12.0, 30.0]\noccupancy = { weekdays = [22.0, 6.0] }\n",
     "'weekdays' must be [start_hour, end_hour]"),
])
def test_bad_comfort_bands_are_refused_naming_the_entry(tmp_path, extra, message):
    path = tmp_path / "map.toml"
    path.write_text('[[outputs]]\ntag = "Z"\nkey = "Z"\nvariable = "Zone Mean Air Temperature"\nunit = "degC"\n'
                    + extra)
    with pytest.raises(TagMapError, match=r"map\.toml: outputs\[0\] \(Z\)") as error:
        load_tagmap(path)
    assert message in str(error.value)


def test_a_zone_may_have_its_own_occupancy(tmp_path):
    path = tmp_path / "map.toml"
    path.write_text('[occupancy]\nweekdays = [6.0, 22.0]\n'
                    '[[outputs]]\ntag = "A"\nkey = "A"\nvariable = "T"\ncomfort_occupied = [20, 24]\n'
                    'comfort_unoccupied = [12, 30]\n'
                    '[[outputs]]\ntag = "B"\nkey = "B"\nvariable = "T"\ncomfort_occupied = [20, 24]\n'
                    'comfort_unoccupied = [12, 30]\noccupancy = { sunday = [0, 24] }\n')
    a, b = load_tagmap(path).outputs
    monday, sunday = dt.datetime(2025, 1, 6, 12), dt.datetime(2025, 1, 12, 12)
    assert (a.bands.occupancy.occupied(monday), a.bands.occupancy.occupied(sunday)) == (True, False)
    assert (b.bands.occupancy.occupied(monday), b.bands.occupancy.occupied(sunday)) == (False, True)


def test_a_tagmap_keeps_its_files_occupancy_and_an_extending_file_inherits_it(tmp_path):
    base, child = tmp_path / "base.toml", tmp_path / "child.toml"
    base.write_text('[occupancy]\nweekdays = [6.0, 22.0]\n[[outputs]]\ntag = "A"\nkey = "A"\nvariable = "T"\n')
    child.write_text('extends = "base.toml"\n[[outputs]]\ntag = "B"\nkey = "B"\nvariable = "T"\n')
    monday_noon = dt.datetime(2025, 1, 6, 12)
    assert load_tagmap(base).occupancy.occupied(monday_noon)
    assert load_tagmap(child).occupancy == load_tagmap(base).occupancy
    base.write_text('[[outputs]]\ntag = "A"\nkey = "A"\nvariable = "T"\n')
    assert load_tagmap(child).occupancy is None


def test_occupancy_follows_the_buildings_clock_under_daylight_saving():
    dst = Occupancy((6.0, 22.0), None, None, ("2nd Sunday in March", "1st Sunday in November"))
    july = dt.datetime(2025, 7, 1, 5, 30)  # standard time 05:30 is 06:30 on the building's clock
    assert dst.occupied(july) and not Occupancy((6.0, 22.0), None, None).occupied(july)
    assert not dst.occupied(dt.datetime(2025, 1, 7, 5, 30))


@settings(max_examples=50, deadline=None)
@given(start=st.integers(0, 23), length=st.integers(1, 24), minute=st.integers(0, 24 * 60 - 1),
       day=st.integers(0, 6))
def test_occupancy_tables_mean_start_inclusive_end_exclusive(start, length, minute, day):
    end = min(start + length, 24)
    hours = [float(start), float(end)]
    occupancy = read_occupancy(Table({"weekdays": hours, "saturday": hours, "sunday": []}, "map.toml: [occupancy]",
                                     TagMapError))
    time = dt.datetime(2025, 1, 6) + dt.timedelta(days=day, minutes=minute)
    assert occupancy.occupied(time) == (day < 6 and start <= minute / 60 < end)
