"""Two checks of bench/bench_twin_update.py's run with the known load (docs/twin.md, "Daily updates
with the known load"); neither is a setting of that bench nor a choice made on its test weeks:

- ``control``: its ``run_seed`` unchanged but the power model without the known load
  (``feature_sets_for(..., known_load=False)``, the configuration before it): reproduces the previous
  figures on the re-collected historians, so a change is the known load's alone;
- ``profile``: its ``run_seed`` unchanged (with the known load) but the forecast rows do not measure
  the known load (``HvacPower`` blanked from the first test day on), so the model's daily profile of
  it stands in, as for a live twin that cannot meter the future: what the measured future known load
  (the exterior lights' switching with sunrise and sunset) adds to the bench's figures.

Writes runs/bench_twin_update/check_<mode>_<period>_seed<seed>.json (the bench's figure names).

    PYTHONPATH=$PWD python -m bench.check_twin_update_known_load profile jan 0
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

import bench.bench_twin_update as bench
from bench.bench_twin_gp import LAGS, ROOT
from bridge.config import load_config
from bridge.twin.collect import excitation_for
from bridge.twin.features import feature_sets_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["control", "profile"])
    parser.add_argument("period", choices=list(bench.PERIODS))
    parser.add_argument("seed", type=int)
    args = parser.parse_args()
    building = load_config(ROOT / "sims/large_office.toml").buildings[0]
    power_set, = feature_sets_for(building.tagmap, ["FacilityPower"], **LAGS, known_load=args.mode == "profile")
    if args.mode == "profile":
        first_test_day, forecasts = pd.Timestamp(bench.PERIODS[args.period][1]), bench.day_forecasts

        def unmeasured(model, frame, day):
            future = frame.copy()
            future.loc[future.index >= first_test_day, "HvacPower"] = np.nan
            return forecasts(model, future, day)

        bench.day_forecasts = unmeasured
    started = time.perf_counter()
    figures, _ = bench.run_seed(args.period, args.seed, excitation_for(building), power_set)
    path = bench.PARTS / f"check_{args.mode}_{args.period}_seed{args.seed}.json"
    path.write_text(json.dumps({"figures": figures, "wall_s": round(time.perf_counter() - started)}, indent=1))
    print(path)


if __name__ == "__main__":
    main()
