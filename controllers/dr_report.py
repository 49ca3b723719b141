"""Figures of one demand-response event: what was shed, how closely, at what cost before and after.

``event_figures`` takes the measured power and a baseline (what the building would have drawn
without the event: the GP-MPC's corrected twin baseline, a utility baseline, or in a benchmark the
base run itself) on the same regular index, timesteps labelled by their end (historian rows):
- delivered / requested: mean(baseline - power) over the event steps, over the request;
- tracking RMSE (kW): of power against baseline - request over the event steps;
- pre-event (pre-cooling) and post-event (rebound) windows of ``window`` (2 h) before and after:
  energy above the baseline (kWh) and peak power minus the baseline's peak (kW);
- comfort: K h outside each zone's band over the pre-event window, the event and the post-event window;
- decision times (s): p50, p95, max of the controller's optimisations for the event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

WINDOW = dt.timedelta(hours=2)


def event_figures(power: pd.Series, baseline: pd.Series, begin: dt.datetime, end: dt.datetime, request_kw: float,
                  temps: pd.DataFrame | None = None, bands: Mapping[str, tuple[float, float]] | None = None,
                  decision_seconds: Sequence[float] = (), window: dt.timedelta = WINDOW) -> dict[str, float]:
    """The figures of the module docstring, keyed by name (units in the names: _kw, _kwh, _kh, _s)."""
    index = power.index
    step_h = (index[1] - index[0]) / pd.Timedelta(hours=1)
    baseline = baseline.reindex(index)
    during = (index > begin) & (index <= end)
    before = (index > begin - window) & (index <= begin)
    after = (index > end) & (index <= end + window)
    shed = (baseline - power)[during]
    out = {"delivered_kw": float(shed.mean()), "delivered_ratio": float(shed.mean() / request_kw) if request_kw else np.nan,
           "tracking_rmse_kw": float(np.sqrt(((shed - request_kw) ** 2).mean()))}
    for name, part in (("pre", before), ("post", after)):
        out[f"{name}_energy_kwh"] = float((power - baseline)[part].sum() * step_h)
        out[f"{name}_peak_kw"] = float(power[part].max() - baseline[part].max())
    if temps is not None and bands:
        near = before | during | after
        for zone, (low, high) in bands.items():
            outside = (temps.loc[near, zone] - high).clip(lower=0) + (low - temps.loc[near, zone]).clip(lower=0)
            out[f"comfort_{zone}_kh"] = float(outside.sum() * step_h)
    if len(decision_seconds):
        seconds = np.asarray(decision_seconds, float)
        out.update(decision_p50_s=float(np.percentile(seconds, 50)), decision_p95_s=float(np.percentile(seconds, 95)),
                   decision_max_s=float(seconds.max()))
    return out
