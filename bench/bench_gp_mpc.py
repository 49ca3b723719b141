"""GP-MPC demand response in closed loop with EnergyPlus: the DOE Large Office, Chicago TMY3, 14-17 h events.

Event days, chosen before any tuning and never used for it (weekdays, two months; 14:00-17:00 on the
building's clock = 13-16 h simulation time):
- July:   Thu Jul 24, Tue Jul 29, Thu Jul 31;
- August: Tue Aug 5, Thu Aug 7, Wed Aug 13.
Requests: 100 kW (the paper's) on every day, then the same days with 150 kW.

Runs (lockstep bridge, the controller over OPC UA, one Control.Exchange call per step), one
continuous run per month holding that month's three events (Jul 24-31, Aug 5-13):
- base: the base schedule (controllers/examples/large_office_base_schedule.toml), no event: the
  true baseline every figure is measured against;
- mpc100, mpc150: controllers/examples/large_office_gp_mpc.toml (cooling, supply-air and
  chilled-water setpoints; comfort as a 95 % chance constraint on the modelled zone CoreMidTemp,
  20-26 degC; feedback on; baseline = "twin") with the month's events at 100 and 150 kW.

Twins (bench_twin_gp's model settings: power with output lags 4, CoreMidTemp without): an
excitation run Jul 1 - Aug 4 (seed 0) recorded with EnergyPlus; the July twin is trained on Jul 1-21;
the August twin is the July twin re-conditioned on the 21 days before Aug 4 (``TwinModel.update``:
hyperparameters kept, level bias re-estimated), i.e. on data from before that month.

Tuning (feedback window, weights, solver settings) used only other days: the excitation run and
closed-loop runs of Jul 22-23 (the former benchmark day).

Figures per day and request (the event's 18 ten-minute steps; pre-event = the 2 h before, rebound =
the 2 h after): delivered/requested (mean base-run power minus mean MPC power over the event, over the
request), tracking RMSE against base run - request, pre-event and rebound energy (kWh) and peak (kW)
minus the base run's, K h above 26 degC summed over the 7 zones from 2 h before to 2 h after the event,
the controller's own corrected twin baseline against the true one (mean error, kW), decision times.

    nice -n 5 python bench/bench_gp_mpc.py        (decision times are timed: keep the machine quiet)

Writes bench/results/gp_mpc.json and bench/results/gp_mpc.png.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_io import RESULTS, figure, pyplot, save_plot, write_results  # noqa: E402
from bridge.historian import load_history  # noqa: E402
from controllers.dr_report import event_figures  # noqa: E402
from controllers.gp_mpc import GpMpcController, load_mpc  # noqa: E402
from controllers.loop import LoopOptions, run_controller  # noqa: E402
from controllers.schedule import ScheduleController, load_schedule  # noqa: E402
from devtools.launcher import run_bridge  # noqa: E402

EXAMPLES = ROOT / "controllers" / "examples"
FOLDER = ROOT / "runs" / "bench_gp_mpc"
HISTORY = FOLDER / "large_office_jul1_aug4.db"
MODELS = {"july": FOLDER / "twin_july.npz", "august": FOLDER / "twin_august.npz"}
# month -> (run start, run end, event days); events 14-17 h on the building's clock
MONTHS = {"july": ("07-24", "07-31", ("2025-07-24", "2025-07-29", "2025-07-31")),
          "august": ("08-05", "08-13", ("2025-08-05", "2025-08-07", "2025-08-13"))}
EVENT_CLOCK = ("14:00", "17:00")
EVENT_SIM_HOURS = (13, 16)  # the same in simulation (standard) time: daylight saving in summer
REQUESTS_KW = (100.0, 150.0)
COMFORT_HIGH_C = 26.0


def ensure_models() -> dict[str, Path]:
    """The July and August twins (see the module docstring), recorded and trained if missing."""
    if all(path.exists() for path in MODELS.values()):
        return MODELS
    from bench.bench_twin_gp import GP, LAGS, ZONE_LAGS, history
    from bridge.config import load_config
    from bridge.twin.features import feature_sets_for
    from bridge.twin.gp import GPModel, TwinModel
    from bridge.twin.persist import save_model

    FOLDER.mkdir(parents=True, exist_ok=True)
    frame = history(HISTORY, seed=0, start=dt.date(2025, 7, 1), end=dt.date(2025, 8, 4))
    tagmap = load_config(ROOT / "sims/large_office.toml").buildings[0].tagmap
    power, = feature_sets_for(tagmap, ["FacilityPower"], **LAGS)
    zone, = feature_sets_for(tagmap, ["CoreMidTemp"], **ZONE_LAGS)
    july = TwinModel({"FacilityPower": GPModel(power, **GP).fit(frame[frame.index < "2025-07-22"]),
                      "CoreMidTemp": GPModel(zone, **GP).fit(frame[frame.index < "2025-07-22"])})
    save_model(july, MODELS["july"], tagmap=tagmap)
    save_model(july.update(frame, "2025-08-04"), MODELS["august"], tagmap=tagmap)
    return MODELS


if __name__ == "__main__" and sys.argv[1:] == ["--models"]:
    ensure_models()
