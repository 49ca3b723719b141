"""Facility-level KPIs beside BOPTEST's core KPI definitions, on a January week of the DOE Small Office.

Period (chosen before any result was seen, never changed after): 2025-01-06 to 2025-01-12, Monday to
Sunday, Chicago TMY3, 6 steps per hour (1,008 steps), the one week run. The building is driven in
lockstep by the schedule controller of controllers/examples/small_office_schedule.toml (occupied
21/24 degC weekdays 06-22 and Saturdays 06-18, setback 15.6/29 degC otherwise: the model's own
night and weekend setbacks) in exchange mode, in this process, so that BOPTEST's time ratio
(controller-plus-exchange time per control step) is measured from the controller's side.

Both sets of figures come from the same historian (bridge.kpi.compute_kpis): twinbridge's
facility-level figures (one fixed comfort band per zone; whole-facility electricity, no gas) and
BOPTEST's definitions (occupied/unoccupied bands over every zone; HVAC electricity plus gas;
per-vector prices and emission factors). Writes bench/results/boptest_kpis.json.

    nice -n 5 python bench/bench_boptest_kpis.py
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.results_io import figure, write_results  # noqa: E402
from bridge.historian import load_history  # noqa: E402
from bridge.kpi import compute_kpis  # noqa: E402
from bridge.protocol import BoptestKpi  # noqa: E402
from bridge.tagmap import load_tagmap  # noqa: E402
from controllers.loop import LoopOptions, run_controller  # noqa: E402
from controllers.schedule import ScheduleController, load_schedule  # noqa: E402
from devtools.launcher import free_port  # noqa: E402

START, END = "01-06", "01-12"
TAGMAP = REPO / "tagmaps" / "small_office.toml"
SCHEDULE = REPO / "controllers" / "examples" / "small_office_schedule.toml"


def run_week(folder: Path) -> tuple[Path, object, float]:
    """Run the week in lockstep with the schedule controller (exchange mode); (historian, report, wall s)."""
    config = folder / "small_office_january.toml"
    config.write_text(f'[campus]\nname = "Bench"\n[run]\nstart = "{START}"\nend = "{END}"\ntimesteps_per_hour = 6\n'
                      f'[[buildings]]\nname = "SmallOffice"\nmodel = "ref:small_office"\n'
                      f'weather = "ref:usa_il_chicago"\ntagmap = "{TAGMAP}"\n')
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
    log_path = folder / "bridge.log"
    began = time.monotonic()
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "bridge.cli", "run", str(config), "--endpoint", endpoint,
                                    "--clock", "lockstep", "--lockstep-timeout", "30", "--run-dir",
                                    str(folder / "runs")], stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        report = asyncio.run(run_controller(ScheduleController(load_schedule(SCHEDULE)), endpoint, "SmallOffice",
                                            options=LoopOptions(mode="exchange", step_timeout_s=300)))
        if process.wait(timeout=600) != 0:
            raise RuntimeError(f"bridge failed: {log_path.read_text()[-2000:]}")
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)
    wall_s = time.monotonic() - began
    return next((folder / "runs").rglob("historian*.sqlite")), report, wall_s


def main() -> int:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-boptest-kpis-") as tmp:
        historian, report, wall_s = run_week(Path(tmp))
        tagmap = load_tagmap(TAGMAP)
        kpis = compute_kpis(historian, {"SmallOffice": tagmap}, wall_time_s=wall_s, time_rat=report.time_rat)
        frame = load_history(historian, "SmallOffice")
    got = kpis["buildings"]["SmallOffice"] | {"time_ratio": kpis["campus"]["time_ratio"]}
    area = tagmap.floor_area_m2
    hvac_peak = got[BoptestKpi.PELE_TOT] * area
    figures = {
        "facility_discomfort_kh_per_zone": figure(got["thermal_discomfort_kh_per_zone"], "K.h/zone",
                                                  "fixed band [20, 25] degC, all hours"),
        "boptest_tdis_tot": figure(got[BoptestKpi.TDIS_TOT], "K.h/zone",
                                   "20-24 degC occupied, 12-30 degC unoccupied, every zone"),
        "facility_energy_kwh_per_m2": figure(got["energy_total_kwh_per_m2"], "kWh/m2", "whole-facility electricity"),
        "boptest_ener_tot": figure(got[BoptestKpi.ENER_TOT], "kWh/m2", "HVAC electricity + furnace gas"),
        "hvac_electric_kwh_per_m2": figure(got["energy_hvac_kwh_per_m2"], "kWh/m2"),
        "hvac_gas_kwh_per_m2": figure(got["energy_hvac_gas_kwh"] / area, "kWh/m2"),
        "facility_peak_kw_per_m2": figure(got["peak_electric_kw_per_m2"], "kW/m2", "whole-facility electricity"),
        "boptest_pele_tot": figure(got[BoptestKpi.PELE_TOT], "kW/m2", "HVAC electricity"),
        "boptest_pgas_tot": figure(got[BoptestKpi.PGAS_TOT], "kW/m2", "furnace gas"),
        "facility_cost_usd_per_m2": figure(got["cost_usd_per_m2"], "$/m2", "facility electricity at 0.12 $/kWh"),
        "boptest_cost_tot": figure(got[BoptestKpi.COST_TOT], "$/m2", "HVAC electricity 0.12, gas 0.024 $/kWh"),
        "facility_emissions_kg_per_m2": figure(got["emissions_kgco2_per_m2"], "kgCO2/m2", "0.40 kg/kWh"),
        "boptest_emis_tot": figure(got[BoptestKpi.EMIS_TOT], "kgCO2/m2", "electricity 0.40, gas 0.18108 kg/kWh"),
        "facility_time_ratio": figure(1e6 * got["time_ratio"], "us/s", "bridge run's wall time (start-up, simulation, "
                                      "controller, exchange) per simulated second"),
        "boptest_time_rat": figure(1e6 * got[BoptestKpi.TIME_RAT], "us/s", "controller time per 600-s control step, "
                                   "per simulated second (BOPTEST time_rat x 1e6)"),
        "controller_time_per_step_ms": figure(1000 * got[BoptestKpi.TIME_RAT] * 600.0, "ms/step",
                                              "BOPTEST t_c(k), mean"),
        "facility_to_boptest_energy": figure(got["energy_total_kwh_per_m2"] / got[BoptestKpi.ENER_TOT], "ratio"),
        "facility_to_hvac_electric_peak": figure(got["peak_electric_kw_per_m2"] * area / hvac_peak, "ratio"),
    }
    zones = {zone: round(value, 3) for zone, value in got["tdis_kh"].items()}
    notes = (f"DOE Small Office, Chicago, 2025-{START} to 2025-{END} (Mon-Sun), {len(frame)} steps of 600 s, "
             f"schedule controller (controllers/examples/small_office_schedule.toml) in exchange mode; "
             f"BOPTEST tdis per zone {zones}; price scenario {kpis['price_scenario']}; idis_tot and pdih_tot n/a "
             f"(no CO2 outputs, no district heating). Load average before {load_before}, after "
             f"{os.getloadavg()} (shared 2-core machine: time ratios are loaded figures).")
    write_results("boptest_kpis", figures, notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
