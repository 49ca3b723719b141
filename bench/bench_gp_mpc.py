"""GP-MPC demand response in closed loop with EnergyPlus: the DOE Large Office, one afternoon event.

Four runs of the same two days (Jul 22-23, Chicago TMY3; lockstep bridge, the controller over
OPC UA with one Control.Exchange call per step), side by side:
- base: the base schedule (controllers/examples/large_office_base_schedule.toml), no event;
- rule: the same schedule plus the usual rule-based event, cooling setpoint +2 K during the event;
- GP-MPC: controllers/examples/large_office_gp_mpc.toml, curtail 150 kW below baseline from 14:00
  to 17:00 on Jul 23 (building clock: 13-16 h simulation time), deciding cooling, supply-air and chilled-water setpoints, comfort as a 95 %
  chance constraint on the modelled zone (CoreMidTemp, 20-26 degC);
- GP-MPC, minimum energy: the same with ``objective = "energy"`` (least predicted energy in the event).
The twin is the benchmark model of bench_twin_gp.py (trained on Jul 1-21 of another excitation
run; the event day is in its test week), recorded and trained if missing.

    /work/venv/bin/python -m bench.bench_gp_mpc

Writes bench/results/gp_mpc.json and bench/results/gp_mpc.png.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results_io import RESULTS, figure, pyplot, save_plot, write_results
from bridge.historian import load_history
from controllers.gp_mpc import GpMpcController, load_mpc
from controllers.loop import LoopOptions, run_controller
from controllers.schedule import ScheduleController, load_schedule
from devtools.launcher import run_bridge

ROOT = Path(__file__).resolve().parents[1]

EXAMPLES = ROOT / "controllers" / "examples"
MODEL = ROOT / "runs" / "bench_twin" / "large_office_twin.npz"
# The event is 14-17 h on the building's clock (the example files' daylight saving): 13-16 h simulation time.
EVENT = ("2025-07-23 13:00", "2025-07-23 16:00")
CURTAIL_KW = 150.0
COMFORT_HIGH_C = 26.0


def ensure_model() -> Path:
    """The twin saved by bench_twin_gp.py (power l = 4, CoreMidTemp l = 0), trained here if missing."""
    if not MODEL.exists():
        from bench.bench_twin_gp import GP, LAGS, TEST_START, ZONE_LAGS, history

        from bridge.config import load_config
        from bridge.twin.features import feature_sets_for
        from bridge.twin.gp import GPModel, TwinModel
        from bridge.twin.persist import save_model

        frame = history(MODEL.parent / "large_office_jul_clock.db")
        tagmap = load_config(ROOT / "sims/large_office.toml").buildings[0].tagmap
        power, = feature_sets_for(tagmap, ["FacilityPower"], **LAGS)
        zone, = feature_sets_for(tagmap, ["CoreMidTemp"], **ZONE_LAGS)
        train = frame[frame.index < TEST_START]
        save_model(TwinModel({"FacilityPower": GPModel(power, **GP).fit(train),
                              "CoreMidTemp": GPModel(zone, **GP).fit(train)}), MODEL, tagmap=tagmap)
    return MODEL


def files(folder: Path) -> dict[str, Path]:
    """The campus (two days, lockstep), the rule-based schedule and the GP-MPC file, in ``folder``."""
    campus = folder / "large_office_2days.toml"
    text = (ROOT / "sims/large_office.toml").read_text().replace('"../tagmaps/', f'"{ROOT}/tagmaps/')
    text = re.sub(r'(?m)^start = ".*"', 'start = "07-22"', text)
    campus.write_text(re.sub(r'(?m)^end = ".*"', 'end = "07-23"', text))
    base = EXAMPLES / "large_office_base_schedule.toml"
    rule = folder / "rule.toml"
    rule.write_text(base.read_text() + '\n[[events]]\nname = "DR"\ndates = ["2025-07-23"]\nstart = "14:00"\n'
                    'end = "17:00"\noffsets = { CoolingSetpoint = 2.0 }\n')
    mpc_text = ((EXAMPLES / "large_office_gp_mpc.toml").read_text()
                .replace('"large_office_base_schedule.toml"', f'"{base}"')
                .replace('"../../runs/large.npz"', f'"{ensure_model()}"')
                .replace('"../../tagmaps/large_office.toml"', f'"{ROOT}/tagmaps/large_office.toml"'))
    mpc, energy = folder / "mpc.toml", folder / "mpc_energy.toml"
    mpc.write_text(mpc_text)
    energy.write_text(mpc_text.replace('objective = "tracking"', 'objective = "energy"'))
    return {"campus": campus, "base": base, "rule": rule, "mpc": mpc, "mpc_energy": energy}


def closed_loop(campus: Path, folder: Path, controller) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    options = LoopOptions(mode="exchange", step_timeout_s=300)
    with run_bridge(campus, folder, "--clock", "lockstep", "--lockstep-timeout", "300", keep_serving=False) as bridge:
        report = asyncio.run(run_controller(controller, bridge.endpoint, "LargeOffice", None, options))
        if bridge.wait(600) != 0 or report.final_status != "Finished":
            raise RuntimeError(f"run did not finish ({report.final_status}):\n{bridge.log[-3000:]}")
        return load_history(bridge.historian(), "LargeOffice")



def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = files(folder)
        runs = {"base": closed_loop(paths["campus"], folder / "base", ScheduleController(load_schedule(paths["base"]))),
                "rule": closed_loop(paths["campus"], folder / "rule", ScheduleController(load_schedule(paths["rule"])))}
        mpc = GpMpcController(load_mpc(paths["mpc"]))
        runs["mpc"] = closed_loop(paths["campus"], folder / "mpc", mpc)
        runs["mpc_energy"] = closed_loop(paths["campus"], folder / "mpc_energy",
                                         GpMpcController(load_mpc(paths["mpc_energy"])))
    base = runs["base"]
    event = (base.index > EVENT[0]) & (base.index <= EVENT[1])
    after = (base.index > EVENT[1]) & (base.index <= pd.Timestamp(EVENT[1]) + pd.Timedelta(hours=1))
    zones = [c for c in base.columns if c.endswith("Temp") and c != "OutdoorTemp"]
    target = base.loc[event, "FacilityPower"] - CURTAIL_KW
    figures = {"base_event_power": figure(base.loc[event, "FacilityPower"].mean(), "kW (mean over the event, 14-17 h clock)")}
    for name in ("rule", "mpc", "mpc_energy"):
        run = runs[name]
        power = run.loc[event, "FacilityPower"]
        curtailed = base.loc[event, "FacilityPower"].mean() - power.mean()
        figures[f"{name}_event_power"] = figure(power.mean(), "kW (mean over the event, 14-17 h clock)")
        figures[f"{name}_curtailment"] = figure(curtailed, "kW below the base run", f"{CURTAIL_KW:g}")
        figures[f"{name}_curtailment_ratio"] = figure(curtailed / CURTAIL_KW, "achieved / requested", "1.0")
        figures[f"{name}_tracking_rmse"] = figure(np.sqrt(np.mean((power - target) ** 2)),
                                                  "kW, against base run - 150 kW, 10-min steps")
        figures[f"{name}_rebound"] = figure(run.loc[after, "FacilityPower"].mean() - base.loc[after, "FacilityPower"].mean(),
                                            "kW above base, hour after the event")
        figures[f"{name}_core_mid_max"] = figure(run.loc[event, "CoreMidTemp"].max(), "degC (modelled zone)", "<= 26")
        figures[f"{name}_all_zones_max"] = figure(run.loc[event, zones].max().max(), "degC (7 zones)")
        figures[f"{name}_degree_hours_above_26"] = figure(
            (run.loc[event, zones] - COMFORT_HIGH_C).clip(lower=0).sum().sum() / 6, "K h over 7 zones")
        figures[f"{name}_day_energy_vs_base"] = figure(
            (run["FacilityPower"].loc["2025-07-23"].sum() - base["FacilityPower"].loc["2025-07-23"].sum()) / 6,
            "kWh on Jul 23")
    seconds = [d.seconds for d in mpc.decisions]
    figures["mpc_decisions"] = figure(len(seconds), "optimisations")
    figures["mpc_decision_time_median"] = figure(statistics.median(seconds), "s")
    figures["mpc_decision_time_max"] = figure(max(seconds), "s")
    figures["mpc_solver_failures"] = figure(sum(not d.success for d in mpc.decisions), "optimisations")
    plot(runs, target, RESULTS / "gp_mpc.png")
    write_results("gp_mpc", figures, f"DOE Large Office, Jul 22-23 (event Jul 23 14-17 h building clock = 13-16 h simulation time, curtail {CURTAIL_KW:g} kW), "
                  f"lockstep, controller over OPC UA (Exchange). Load average before {load_before}, after "
                  f"{os.getloadavg()}.")


def plot(runs: dict[str, pd.DataFrame], target: pd.Series, path: Path) -> None:
    plt = pyplot()
    day = slice("2025-07-23 10:00", "2025-07-23 20:00")
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    for name, run in runs.items():
        top.plot(run.loc[day].index, run.loc[day, "FacilityPower"], label=name)
        middle.plot(run.loc[day].index, run.loc[day, "CoreMidTemp"], label=name)
        bottom.plot(run.loc[day].index, run.loc[day, "CoolingSetpoint"], label=f"{name}: cooling")
    top.plot(target.index, target, "k--", lw=1, label="base - 150 kW")
    for name in ("SupplyAirTempSetpoint", "ChilledWaterSetpoint"):
        bottom.plot(runs["mpc"].loc[day].index, runs["mpc"].loc[day, name], ":", label=f"mpc: {name}")
    middle.axhline(COMFORT_HIGH_C, color="k", lw=0.8, ls="--")
    top.set_ylabel("facility power [kW]")
    middle.set_ylabel("CoreMidTemp [degC]")
    bottom.set_ylabel("setpoints [degC]")
    top.set_title("Demand response on the DOE Large Office, Jul 23 (event 14-17 h clock, shaded in simulation time): base, rule (+2 K), GP-MPC")
    for axes in (top, middle, bottom):
        axes.axvspan(pd.Timestamp(EVENT[0]), pd.Timestamp(EVENT[1]), color="0.92")
        axes.legend(fontsize=7, loc="best")
    fig.autofmt_xdate()
    save_plot(fig, path)


if __name__ == "__main__":
    main()
