"""Diagnosis (issue 16): why the Large Office's cooling setpoint alternated step after step in bench_campus_dr's
known-load run at 100 kW (Jul 23, 13:00-14:30), which no validation day showed.

Offline, from that run's historian (runs/bench_campus_dr/dr_100_known, kept by the benchmark): a new GP-MPC
controller of the Large Office (its campus file, the event at its share, 66.95 kW, revised to 74.73 kW at
13:30 as the re-split did) is fed the recorded outputs step by step from 10:20 (when the coordinator split
the request). 1. Replay: its decisions against the recorded ones. 2. Its sensitivity to the measured power:
the same replay with the facility power of one step moved by +-30 kW, the decision of that step against the
unmoved one (K per kW). Times are simulation time (the event 13-16 h = 14-17 h on the building's clock).

    PYTHONPATH=$PWD python bench/diagnose_campus_oscillation.py     (about 2 minutes)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bridge.historian import load_history  # noqa: E402
from controllers.base import InputRange  # noqa: E402
from controllers.gp_mpc import CurtailmentEvent, GpMpcController, load_mpc  # noqa: E402

WORK = ROOT / "runs" / "bench_campus_dr"
EVENT = CurtailmentEvent(dt.datetime(2025, 7, 23, 13), dt.datetime(2025, 7, 23, 16), 66.95)
RESPLIT = (pd.Timestamp("2025-07-23 13:30"), 74.73)
STEPS = pd.date_range("2025-07-23 10:20", "2025-07-23 15:50", freq="10min")


def replay(config, history: pd.DataFrame, moved: tuple[pd.Timestamp, float] | None = None) -> pd.DataFrame:
    """The controller's cooling setpoint decided at each of STEPS from the recorded outputs (``moved``:
    the facility power of one step moved by that many kW), beside the recorded one."""
    controller = GpMpcController(dataclasses.replace(config, events=(EVENT,)))
    controller.check({i.tag: InputRange(i.tag, i.min, i.max) for i in config.tagmap.inputs})
    event, rows = EVENT, []
    for time in STEPS:
        outputs = {o.tag: float(history.loc[time, o.tag]) for o in config.tagmap.outputs if o.tag in history}
        if moved and time == moved[0]:
            outputs[config.power] += moved[1]
        if time == RESPLIT[0]:
            event = controller.revise(event, RESPLIT[1])
        decided = controller.decide(time.to_pydatetime(), outputs)["CoolingSetpoint"]
        rows.append((time, decided, history.loc[time + pd.Timedelta("10min"), "CoolingSetpoint"], outputs[config.power]))
    return pd.DataFrame(rows, columns=["time", "decided_c", "recorded_c", "power_kw"]).set_index("time")


def main() -> None:
    config = load_mpc(WORK / "LargeOffice_gp_mpc.toml")
    # the run of docs/controllers.md (2026-12-05 02:38): the earliest of the folder's runs, named by their start
    historian = min((WORK / "dr_100_known").glob("runs-*/*/historian.sqlite"), key=lambda path: path.parent.name)
    history = load_history(historian, "LargeOffice")
    base = replay(config, history)
    print(base.loc["2025-07-23 12:30":].round(2).to_string())
    for time in ("2025-07-23 13:10", "2025-07-23 13:40", "2025-07-23 14:10"):
        time = pd.Timestamp(time)
        for kw in (-30.0, 30.0):
            moved = replay(config, history, (time, kw))
            print(f"{time:%H:%M} power {kw:+.0f} kW: setpoint decided "
                  f"{(moved.loc[time, 'decided_c'] - base.loc[time, 'decided_c']) / kw:+.4f} K per kW", flush=True)


if __name__ == "__main__":
    main()
