"""Measure how EnergyPlus's ``Weather Data`` EMS actuators act (docs/bridge.md, "Weather inputs").

For the DOE Small Office (Chicago TMY3, 6 steps per hour, a few days in July and in January), through
the in-process API: one run without override, then one run per (calling point, actuator) that sets the
actuator from run-period step ``FROM_STEP`` on. For each run it records, per zone timestep, site weather
outputs, surface solar, infiltration and facility power, and reports:

- ``first_site_step``: the first step whose site output shows the override (FROM_STEP = same step);
- ``first_zone_step``: the first step whose zone/surface quantities differ from the baseline;
- the values seen at FROM_STEP (site, humidity ratio, incident solar ...).

Each simulation runs in its own child process (EnergyPlus states in one process are not independent).
Run: ``PYTHONPATH=$PWD python -m bench.bench_weather_actuators``; writes
bench/results/weather_actuators.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.results_io import figure, write_results
from bridge.config import RunPeriod, month_day, reference_model, reference_weather
from bridge.cosim_files import prepare_model
from bridge.idf import Idf
from bridge.tagmap import OutputTag, TagMap

FROM_STEP = 60  # run-period step (10:00 of day 1 at 6 steps per hour) from which the override acts
CALLING_POINTS = ("callback_begin_zone_timestep_before_set_current_weather",
                  "callback_begin_zone_timestep_before_init_heat_balance",
                  "callback_begin_zone_timestep_after_init_heat_balance",
                  "callback_begin_system_timestep_before_predictor")
OVERRIDES = {  # control type -> value set
    "Outdoor Dry Bulb": 35.0,
    "Outdoor Dew Point": 2.0,
    "Outdoor Relative Humidity": 20.0,
    "Direct Solar": 0.0,
    "Diffuse Solar": 400.0,
    "Wind Speed": 15.0,
    "Wind Direction": 0.0,
}
VARIABLES = [  # (key, variable)
    ("Environment", "Site Outdoor Air Drybulb Temperature"),
    ("Environment", "Site Outdoor Air Dewpoint Temperature"),
    ("Environment", "Site Outdoor Air Relative Humidity"),
    ("Environment", "Site Outdoor Air Humidity Ratio"),
    ("Environment", "Site Wind Speed"),
    ("Environment", "Site Wind Direction"),
    ("Environment", "Site Direct Solar Radiation Rate per Area"),
    ("Environment", "Site Diffuse Solar Radiation Rate per Area"),
    ("Environment", "Site Sky Temperature"),
    ("Perimeter_ZN_1_wall_south", "Surface Outside Face Incident Solar Radiation Rate per Area"),
    ("Perimeter_ZN_1_wall_south", "Surface Outside Face Incident Sky Diffuse Solar Radiation Rate per Area"),
    ("Perimeter_ZN_1_wall_south", "Surface Outside Face Temperature"),
    ("Perimeter_ZN_1_wall_south", "Surface Outside Face Convection Heat Transfer Coefficient"),
    ("Perimeter_ZN_1", "Zone Infiltration Sensible Heat Loss Energy"),
    ("Perimeter_ZN_1", "Zone Infiltration Sensible Heat Gain Energy"),
    ("Perimeter_ZN_1", "Zone Infiltration Latent Heat Gain Energy"),
    ("Perimeter_ZN_1", "Zone Mean Air Temperature"),
    ("Whole Building", "Facility Total Electricity Demand Rate"),
]
SITE = {"Outdoor Dry Bulb": "Site Outdoor Air Drybulb Temperature",
        "Outdoor Dew Point": "Site Outdoor Air Dewpoint Temperature",
        "Outdoor Relative Humidity": "Site Outdoor Air Relative Humidity",
        "Direct Solar": "Site Direct Solar Radiation Rate per Area",
        "Diffuse Solar": "Site Diffuse Solar Radiation Rate per Area",
        "Wind Speed": "Site Wind Speed", "Wind Direction": "Site Wind Direction"}
PERIODS = {"july": ("07-01", "07-02"), "january": ("01-10", "01-11")}


def column(key: str, variable: str) -> str:
    return f"{key}:{variable}"


def simulate(season: str, point: str | None, control: str | None, workdir: Path) -> list[dict[str, float]]:
    """One simulation in this process: the rows of VARIABLES per run-period zone timestep."""
    from pyenergyplus.api import EnergyPlusAPI

    start, end = PERIODS[season]
    period = RunPeriod(month_day(start, 2025, season), month_day(end, 2025, season), 6)
    outputs = tuple(OutputTag(tag=f"v{i}", unit="", key=k, variable=v) for i, (k, v) in enumerate(VARIABLES))
    idf = prepare_model(Idf.read(reference_model("small_office")), TagMap("m", (), outputs), period)
    idf.write(workdir / "model.idf")
    api = EnergyPlusAPI()
    state = api.state_manager.new_state()
    api.runtime.set_console_output_status(state, False)
    ex = api.exchange
    rows: list[dict[str, float]] = []
    handles: dict[str, int] = {}

    def in_period(s) -> bool:
        return ex.kind_of_sim(s) == 3 and not ex.warmup_flag(s)

    def actuate(s) -> None:
        if not in_period(s) or len(rows) < FROM_STEP:
            return
        handle = ex.get_actuator_handle(s, "Weather Data", control, "Environment")
        assert handle >= 0, control
        ex.set_actuator_value(s, handle, OVERRIDES[control])

    def record(s) -> None:
        if not in_period(s):
            return
        if not handles:
            handles.update({column(k, v): ex.get_variable_handle(s, v, k) for k, v in VARIABLES})
            missing = [c for c, h in handles.items() if h < 0]
            assert not missing, missing
        rows.append({c: ex.get_variable_value(s, h) for c, h in handles.items()})

    if point is not None:
        getattr(api.runtime, point)(state, actuate)
    api.runtime.callback_end_zone_timestep_after_zone_reporting(state, record)
    code = api.runtime.run_energyplus(state, ["-w", str(reference_weather("usa_il_chicago")), "-d",
                                              str(workdir / "out"), str(workdir / "model.idf")])
    assert code == 0, (workdir / "out" / "eplusout.err").read_text()[-2000:]
    return rows


def run_child(season: str, point: str | None, control: str | None) -> list[dict[str, float]]:
    """``simulate`` in a child process."""
    args = [sys.executable, "-m", "bench.bench_weather_actuators", "--child", season, point or "", control or ""]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def first_step(rows: list[dict], test) -> int | None:
    return next((k for k, row in enumerate(rows) if test(row)), None)


def compare(base: list[dict], over: list[dict], control: str) -> dict:
    """When the override shows in the site output, when it changes zone and surface quantities, and the
    values at FROM_STEP with and without it."""
    site = column("Environment", SITE[control])
    zone = [c for c in base[0] if not c.startswith("Environment:")]
    value = OVERRIDES[control]
    at = FROM_STEP
    return {
        "first_site_step": first_step(over[FROM_STEP:], lambda r: abs(r[site] - value) < 1e-6) + FROM_STEP
        if first_step(over[FROM_STEP:], lambda r: abs(r[site] - value) < 1e-6) is not None else None,
        "first_zone_step": first_step(list(zip(base, over)), lambda p: any(p[0][c] != p[1][c] for c in zone)),
        "first_changed": sorted(c for c in base[0] if base[at][c] != over[at][c]),
        "at_from_step": {c: [round(base[at][c], 4), round(over[at][c], 4)] for c in base[0]
                         if base[at][c] != over[at][c]},
        "next_step": {c: [round(base[at + 1][c], 4), round(over[at + 1][c], 4)] for c in base[0]
                      if base[at + 1][c] != over[at + 1][c]},
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        season, point, control = sys.argv[2], sys.argv[3] or None, sys.argv[4] or None
        with tempfile.TemporaryDirectory(prefix="tb-weather-") as work:
            print(json.dumps(simulate(season, point, control, Path(work))))
        return
    findings: dict = {"from_step": FROM_STEP}
    figures = {}
    for season in PERIODS:
        base = run_child(season, None, None)
        findings[season] = {}
        for point in CALLING_POINTS:
            controls = OVERRIDES if point == CALLING_POINTS[0] else ["Outdoor Dry Bulb"]
            for control in controls:
                result = compare(base, run_child(season, point, control), control)
                findings[season][f"{point} / {control}"] = result
                print(season, point, control, "site", result["first_site_step"], "zone", result["first_zone_step"],
                      flush=True)
                if control == "Outdoor Dry Bulb" and result["first_zone_step"] is not None:
                    name = f"{season} {point.removeprefix('callback_')} dry-bulb steps late"
                    figures[name] = figure(result["first_zone_step"] - FROM_STEP, "steps", "0")
    out = Path(__file__).parent / "results" / "weather_actuators_details.json"
    out.write_text(json.dumps(findings, indent=1))
    write_results("weather_actuators", figures, "steps from the step an Outdoor Dry Bulb override is set for to the "
                  "first step whose zone quantities it changes; details in weather_actuators_details.json")


if __name__ == "__main__":
    main()
