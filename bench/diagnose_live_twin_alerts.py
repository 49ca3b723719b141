"""Diagnosis: where bench_live_twin's OPC UA run raises alerts on the fault-free pair, and what the live and
twin series look like there.

Runs ``bench_live_twin.over_opcua`` for one period (``--days``, default 4: the spin-up, one clean day, two
faulted), prints every alert of the fault-free pair, writes the series and alerts to ``--dump`` (JSON) and plots
``--around`` +- 4 h: live and mirrored twin power per step, their step deviation (no noise) and the alerts raised
(bench/results/live_twin_<period>_false_alerts.png). Used for no choice of threshold.

The winter figure in bench/results is ``plot`` of ``over_opcua``'s series and alerts as of commit 89ff4ae (before
the fixes of 2026-12-05; winter, 4 days, around the end of the spin-up); docs/live.md, "The winter false alerts".

Run: PYTHONPATH=$PWD python bench/diagnose_live_twin_alerts.py --period winter [--days 4] [--around ISO]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_live_twin import PERIODS, over_opcua  # noqa: E402
from bench.bench_tracking import FAULT_FREE, fault_edits  # noqa: E402
from bench.results_io import RESULTS, pyplot, save_plot  # noqa: E402
from bridge.config import RunPeriod, reference_model, reference_weather  # noqa: E402
from bridge.tracking.scenario import edited_model  # noqa: E402
from devtools.livetwin import LIVE_WEATHER, SPIN_UP_DAYS, TWIN_WEATHER, onset_of, relocated_weather  # noqa: E402


async def run(name: str, days: int) -> dict:
    """Power series and alerts of the OPC UA path, as JSON-ready lists."""
    start = PERIODS[name]
    period = RunPeriod(start, start + dt.timedelta(days=days - 1), 6)
    onset_day, _ = onset_of(period, 3)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        nominal = reference_model("small_office")
        models = {FAULT_FREE: nominal} | {case: edited_model(nominal, [edit], workdir / f"{case}.idf")
                                          for case, edit in fault_edits(onset_day).items()}
        live_weather = relocated_weather(reference_weather(LIVE_WEATHER.removeprefix("ref:")),
                                         reference_weather(TWIN_WEATHER.removeprefix("ref:")), workdir / "live.epw")
        power, alerts, _ = await over_opcua(models, live_weather, period, workdir)
    return {"power": {k: [(t.isoformat(), v) for t, v in s] for k, s in power.items()},
            "alerts": {k: [{"time": a.time.isoformat(), "granularity": a.granularity, "severity": a.severity,
                            "raised": a.raised, "predicted": a.predicted, "actual": a.actual, "pct": a.deviation_pct}
                           for a in found] for k, found in alerts.items()}}


def plot(data: dict, around: dt.datetime, spun_up: dt.datetime, path: Path) -> Path:
    lo, hi = around - dt.timedelta(hours=4), around + dt.timedelta(hours=4)
    window = {k: [(dt.datetime.fromisoformat(t), v) for t, v in s if lo <= dt.datetime.fromisoformat(t) <= hi]
              for k, s in data["power"].items()}
    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    axes[0].axvspan(lo, spun_up, color="0.9", label="spin-up (not tracked offline)")
    axes[0].axvspan(spun_up - dt.timedelta(minutes=10), spun_up, color="C3", alpha=0.3,
                    label="the spin-up's last step (the LiveLink's initial value)")
    axes[0].step(*zip(*window["twin_mirrored"]), where="pre", color="C0", lw=1, label="mirrored twin")
    axes[0].step(*zip(*window[f"live_{FAULT_FREE}"]), where="pre", color="k", lw=1.4, alpha=0.8,
                 label="live, fault-free (stamps: end of step)")
    axes[0].set_ylabel("facility power, kW")
    axes[0].legend(fontsize=7, loc="upper right")
    pairs = zip(window[f"live_{FAULT_FREE}"], window["twin_mirrored"])
    deviation = [(t - dt.timedelta(minutes=5), 100 * (live - twin) / twin) for (t, live), (_, twin) in pairs]
    axes[1].bar(*zip(*deviation), width=1 / 144 * 0.8, color="0.5", label="step deviation, live vs twin (no noise)")
    for level, colour in ((5, "orange"), (10, "r")):
        axes[1].axhline(level, color=colour, lw=0.6)
        axes[1].axhline(-level, color=colour, lw=0.6)
    raised = [a for a in data["alerts"][FAULT_FREE] if a["raised"]]
    for i, alert in enumerate(raised):
        axes[1].annotate(f"{alert['granularity']} {alert['severity']} {alert['pct']:+.1f} % (period from "
                         f"{alert['time'][5:16]})", xy=(spun_up, alert["pct"]), fontsize=7,
                         xytext=(spun_up + dt.timedelta(minutes=40), 20 - 8 * i),
                         arrowprops={"arrowstyle": "->", "lw": 0.6})
    axes[1].set_ylim(-25, 25)
    axes[1].set_ylabel("live vs twin, %")
    axes[1].legend(fontsize=7, loc="lower left")
    axes[1].set_title(f"fault-free pair over OPC UA: {len(raised)} alerts/warnings raised in the run", fontsize=9)
    return save_plot(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--period", choices=tuple(PERIODS), default="winter")
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--around", help="centre of the plot (ISO time); default: the end of the spin-up")
    parser.add_argument("--dump", type=Path, help="write the series and alerts here (JSON)")
    parser.add_argument("--plot", type=Path, help="plot (default bench/results/live_twin_<period>_false_alerts.png)")
    args = parser.parse_args()
    data = asyncio.run(run(args.period, args.days))
    if args.dump:
        args.dump.write_text(json.dumps(data))
    for alert in data["alerts"][FAULT_FREE]:
        print(alert)
    spun_up = dt.datetime.combine(PERIODS[args.period] + dt.timedelta(days=SPIN_UP_DAYS), dt.time())
    around = dt.datetime.fromisoformat(args.around) if args.around else spun_up
    print(plot(data, around, spun_up, args.plot or RESULTS / f"live_twin_{args.period}_false_alerts.png"))


if __name__ == "__main__":
    main()
