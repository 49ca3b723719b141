"""Updates of an Operational GP twin on recent live data, one at a time or on a schedule.

``GPModel.update`` re-conditions a model on a sliding window of the historian (the last
``update_days`` days before ``until``) with its fitted hyperparameters, and re-estimates its level
bias. This module does it for a model file: it writes the new model, measures the update and, with
a registry, records the new model as the next Operational version (``ModelRegistry.register``) with
those figures; a model file that is a frozen version of the registry (the Baseline) is refused
(``FrozenModelError``) before anything is computed.

Figures of an update (per target, the target's unit):
- ``window``: the updated model's one-step predictions of the window's rows without its level bias
  (the in-sample fit of the re-conditioned GP: RMSE, MAE, 95 % coverage) and the bias it adds to
  forecasts;
- ``last_day``: the *previous* model's forecasts of the last day before ``until`` (``bias_horizon``
  steps from every whole hour of that day whose forecast ends before ``until``): RMSE, MAE, mean
  error (measured - forecast) and 95 % coverage: the error the update is meant to reduce.

The scheduled form, ``update_every``, is what a daemon runs: every ``every_s`` seconds it updates the
newest model on all rows of the historian so far and writes ``<stem>-<until>.npz`` in a folder.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.twin.errors import ModelError, ModelFileError
from bridge.twin.evaluate import metrics, rolling_forecasts
from bridge.twin.gp import GPModel, TwinModel
from bridge.twin.times import parse_time

log = logging.getLogger(__name__)
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_every(text: str) -> float:
    """A period such as ``24h``, ``30m``, ``1d`` or ``600s`` in seconds; ModelError else."""
    match = DURATION.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ModelError(f"--every: expected a positive period such as 24h, 30m or 1d, got {text!r}")
    return float(match.group(1)) * SECONDS[match.group(2)]


def window_figures(model: GPModel, frame: pd.DataFrame) -> dict:
    """In-sample one-step fit of an updated ``model`` on its window rows of ``frame``, and its bias."""
    first, last = (pd.Timestamp(t) for t in model.training_period_)
    rows = frame[(frame.index >= first - pd.Timedelta(hours=6)) & (frame.index <= last)]
    mean, std = model.predict(rows)
    mean -= model.bias_  # the fit of the conditioned GP; the bias is for forecasts after the window
    inside = (rows.index >= first) & np.isfinite(mean)
    fit = metrics(rows[model.features.target].to_numpy(float)[inside], mean[inside], std[inside])
    return {"start": first.isoformat(), "end": last.isoformat(), "rmse": fit["rmse"], "mae": fit["mae"],
            "coverage95": fit["coverage95"], "rows": fit["n"], "bias": model.bias_}


def last_day_figures(previous: GPModel, frame: pd.DataFrame, until: pd.Timestamp) -> dict:
    """Forecast errors of the ``previous`` model over the last day before ``until`` (see the module
    docstring); ``{"error": why}`` when that day has no whole forecast."""
    rows = frame[frame.index < until]
    step = rows.index.to_series().diff().median()
    every = max(1, int(round(pd.Timedelta(hours=1) / step))) if pd.notna(step) else 1
    try:
        forecasts = rolling_forecasts(previous, rows, until - pd.Timedelta(days=1), previous.bias_horizon, every,
                                      allow_overlap=True)
    except ModelError as exc:
        return {"error": str(exc)}
    figures = metrics(forecasts.actual, forecasts.mean, forecasts.std)
    return {"rmse": figures["rmse"], "mae": figures["mae"], "coverage95": figures["coverage95"],
            "mean_error": float(np.mean(forecasts.actual - forecasts.mean)), "points": figures["n"],
            "horizon_steps": previous.bias_horizon}


def update_figures(previous: TwinModel, updated: TwinModel, frame: pd.DataFrame, until: pd.Timestamp) -> dict:
    """``{target: {"window": ..., "last_day": ...}}`` of one update (module docstring)."""
    return {target: {"window": window_figures(model, frame),
                     "last_day": last_day_figures(previous.models[target], frame, until)}
            for target, model in updated.models.items()}


def update_model_file(model_path: Path, frame: pd.DataFrame, until: pd.Timestamp | str, output: Path,
                      registry=None, days: float | None = None, bias_hours: float | None = None,
                      refit: bool = False, source: str = "") -> tuple[TwinModel, dict]:
    """Update the model saved at ``model_path`` on ``frame`` (a historian DataFrame) before ``until``,
    write it to ``output`` and, with a ``registry`` (``bridge.tracking.registry.ModelRegistry``),
    register it as the next Operational version with its figures. ``days`` and ``bias_hours``
    override the models' ``update_days`` and ``bias_hours``. Returns (new twin, figures)."""
    from bridge.twin.persist import load_model, save_model

    if registry is not None:
        registry.refuse_if_frozen_file(model_path)
    until = parse_time(until, "--until")
    twin = load_model(model_path)
    settings = {name: value for name, value in (("update_days", days), ("bias_hours", bias_hours)) if value is not None}
    for model in twin.models.values():
        model.set_params(**settings)
    updated = twin.update(frame, until, refit)
    figures = update_figures(twin, updated, frame, until)
    extra = {key: updated.metadata[key] for key in ("building", "update")}
    save_model(updated, output, metrics=figures, extra={**extra, "updated_from": str(model_path), "history": source})
    if registry is not None:
        windows = [w for target in figures.values() for w in (target["window"]["start"], target["window"]["end"])]
        entry = registry.register("Operational", output, source or str(model_path), calibration=figures,
                                  calibration_start=min(windows), calibration_end=max(windows),
                                  notes=f"GP twin updated on data before {until.isoformat()} from {model_path}"
                                        f"{' (refit)' if refit else ''}")
        log.info("registered %s as Operational %s", output, entry.version)
    return updated, figures


def next_until(frame: pd.DataFrame) -> pd.Timestamp:
    """The ``until`` that takes every row of ``frame``: one timestep after its newest row."""
    if len(frame) < 2:
        raise ModelError(f"the historian holds {len(frame)} rows: nothing to update on")
    return frame.index[-1] + (frame.index[-1] - frame.index[-2])


async def update_every(model_path: Path, load: Callable[[], pd.DataFrame], folder: Path, every_s: float, stop: asyncio.Event,
                       registry=None, **options) -> None:
    """The scheduled form: until ``stop`` is set, every ``every_s`` seconds (the first at once) update
    the newest model on ``load()`` (the historian DataFrame so far), write ``folder/<stem>-<until>.npz``
    and register it (``update_model_file``'s ``options``). A failed update is logged and the next one
    starts again from the last good model; a frozen model (FrozenModelError) stops the loop."""
    from bridge.tracking.registry import FrozenModelError

    current = Path(model_path)
    folder.mkdir(parents=True, exist_ok=True)
    while not stop.is_set():
        try:
            frame = load()
            until = next_until(frame)
            output = folder / f"{Path(model_path).stem}-{until:%Y%m%dT%H%M}.npz"
            await asyncio.to_thread(update_model_file, current, frame, until, output, registry, **options)
            log.info("twin updated on data before %s: %s", until, output)
            current = output
        except FrozenModelError:
            raise
        except (ModelError, ModelFileError, OSError, ValueError) as exc:
            log.error("twin update failed, keeping %s: %s", current, exc)
        try:
            await asyncio.wait_for(stop.wait(), every_s)
        except asyncio.TimeoutError:
            pass
