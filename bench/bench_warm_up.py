"""The first nights of a twin started beside a building that has been running (docs/live.md, "Spin-up"): with
and without ``warm_up = "history"``.

For each of bench_alert_rules' six starts S, the "live building" (the Small Office on Las Vegas weather at Chicago's
site) runs from S - 3 days, so that at S it is in the state its own past weather made. The twin (nominal Small Office
on Chicago TMY3, mirroring the live weather from S on, offline engines, same-step feed) starts at S 00:00:

- ``own``: warmed on Chicago's S (what the bridge does without the option);
- ``history``: warmed on Chicago's file whose S holds the live building's recorded weather of the 24 h before S
  (``bridge.live.warmup``'s hourly values of the live run's site outputs: what ``warm_up = "history"`` writes);
- ``live_file``: warmed on the live file's S (the benches' ``warmed_weather``; a live building that started at S
  would be in exactly that state, this one is not).

Figures, as the table of docs/live.md "Spin-up": the largest 12-step mean of live - twin electric power (kW) in the
night after day 1 (22:00-06:00 simulation time) and the largest |hourly deviation| (live - twin) / twin (%) of day 2.
Criteria (written before the run, docs/live.md): ``history`` at most 0.3 kW (the after-hours warning) that night in
every start, and below ``own`` where ``own`` is over 0.3 kW.

    PYTHONPATH=. python bench/bench_warm_up.py   # about 2 minutes; bench/results/warm_up.json
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_alert_rules import PERIODS  # noqa: E402
from bench.bench_live_twin import SIGNAL, simulate  # noqa: E402
from bridge.config import RunPeriod, reference_model, reference_weather  # noqa: E402
from bridge.live.config import LiveConfig, MirroredInput  # noqa: E402
from bridge.live.warmup import hourly_values, weather_fields, weather_with_day  # noqa: E402
from bridge.tagmap import load_tagmap  # noqa: E402
from bridge.tracking.config import Endpoint  # noqa: E402
from bench.results_io import figure, write_results  # noqa: E402
from devtools.livetwin import (LIVE_BUILDING_TAGMAP, LIVE_TAGMAP, LIVE_WEATHER, MIRRORED, TWIN_WEATHER,  # noqa: E402
                               relocated_weather, warmed_weather)

BEFORE_DAYS = 3  # the live building runs this long before the twin starts
WINDOW = 12  # steps of the night window


def history_weather(chicago: Path, live: list, live_period: RunPeriod, start: dt.date, out: Path) -> Path:
    """Chicago's file with ``start`` holding the live run's recorded weather of the day before (bridge.live.warmup)."""
    mirrored = LiveConfig(Endpoint("opc.tcp://offline"), tuple(MirroredInput(name, name) for name in MIRRORED))
    fields = weather_fields(mirrored, load_tagmap(LIVE_TAGMAP))
    midnight = dt.datetime.combine(start, dt.time())
    values = {}
    for name, field in fields.items():
        samples = [(live_period.time_of(s.sim_time_s), field.to_epw(s.outputs[MIRRORED[name][1]])) for s in live[1:]]
        samples = [(t, v) for t, v in samples if midnight - dt.timedelta(days=1) < t <= midnight]
        values[field.index], hours = hourly_values(samples, midnight, field)
        assert hours == 24, (name, hours)
    return weather_with_day(chicago, start, values, out)


def figures(live: list, live_period: RunPeriod, twin: list, period: RunPeriod) -> dict:
    """Night after day 1: largest 12-step mean of live - twin power (kW); day 2: largest |hourly deviation| (%)."""
    live_kw = {live_period.time_of(s.sim_time_s): s.outputs[SIGNAL] for s in live[1:]}
    pairs = [(t, live_kw[t], s.outputs[SIGNAL]) for s in twin[1:] for t in [period.time_of(s.sim_time_s)]]
    night_start = dt.datetime.combine(period.start, dt.time(22))
    night = [(a - b) for t, a, b in pairs if night_start < t <= night_start + dt.timedelta(hours=8)]
    largest_kw = max(sum(night[i:i + WINDOW]) / WINDOW for i in range(len(night) - WINDOW + 1))
    day2 = dt.datetime.combine(period.start + dt.timedelta(days=1), dt.time())
    hours = {}
    for t, a, b in pairs:
        if day2 < t <= day2 + dt.timedelta(days=1):
            hour = hours.setdefault((t - dt.timedelta(seconds=1)).hour, [0.0, 0.0])
            hour[0], hour[1] = hour[0] + a, hour[1] + b
    hourly_pct = max(abs(a - b) / b * 100 for a, b in hours.values())
    return {"night_after_day1_kw": round(largest_kw, 3), "hourly_day2_pct": round(hourly_pct, 2)}


async def case(name: str, start: dt.date, workdir: Path) -> dict:
    chicago = reference_weather(TWIN_WEATHER.removeprefix("ref:"))
    live_weather = relocated_weather(reference_weather(LIVE_WEATHER.removeprefix("ref:")), chicago, workdir / "live.epw")
    nominal = reference_model("small_office")
    live_period = RunPeriod(start - dt.timedelta(days=BEFORE_DAYS), start + dt.timedelta(days=1), 6)
    period = RunPeriod(start, start + dt.timedelta(days=1), 6)
    live = await simulate(nominal, live_weather, live_period, workdir / "live", tagmap=LIVE_BUILDING_TAGMAP)
    feed = live[BEFORE_DAYS * 24 * period.timesteps_per_hour:]  # feed[k]: the live step at the twin's step k
    weathers = {"own": chicago,
                "history": history_weather(chicago, live, live_period, start, workdir / "history.epw"),
                "live_file": warmed_weather(chicago, live_weather, start, workdir / "live_file.epw")}
    result = {}
    for variant, weather in weathers.items():
        twin = await simulate(nominal, weather, period, workdir / variant, feed)
        result[variant] = figures(live, live_period, twin, period)
    print(name, start, result, flush=True)
    return result


UNITS = {"night_after_day1_kw": ("kW, largest 12-step mean of live - twin power, night after day 1", "<= 0.3"),
         "hourly_day2_pct": ("%, largest |hourly deviation| of day 2", "")}


async def main() -> None:
    figures = {}
    for name, start in PERIODS.items():
        with tempfile.TemporaryDirectory() as tmp:
            result = await case(name, start, Path(tmp))
        for variant, values in result.items():
            for key, value in values.items():
                unit, target = UNITS[key]
                figures[f"{name}_{variant}_{key}"] = figure(value, unit, target if variant == "history" else "")
    write_results("warm_up", figures, f"Small Office, live on Las Vegas weather from {BEFORE_DAYS} days before each "
                  "start, twin on Chicago TMY3 mirroring it; offline engines, same-step feed (module docstring).")


if __name__ == "__main__":
    asyncio.run(main())
