"""Evaluation of a GP model by rolling multi-step forecasts on held-out data.

From every origin (every ``every`` rows of the test span) the model forecasts the next
``horizon`` rows by the zero-variance method (``GPModel.forecast``). Metrics, over all
(origin, step) pairs and per horizon step:

- RMSE and MAE, in the target's unit;
- accuracy_mean  = 1 - RMSE / mean(measured)          (the paper's 1 - NRMSE: 1 - 47/816 = 0.94);
- accuracy_range = 1 - RMSE / (max - min)(measured)   (range normalisation, the gentler one);
- coverage95 = share of measurements inside mean +/- 1.96 std.
The normalising mean and range are those of the measured values in the test span.

A forecast of a row the model was trained on (its ``training_period_``) is refused (ModelError):
its figures would be in-sample. ``allow_overlap`` takes it anyway, for a historian that is another
run over the same dates; the report then says ``in_sample``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.twin.calibration import Z95
from bridge.twin.errors import ModelError
from bridge.twin.gp import GPModel
from bridge.twin.times import parse_time, span


@dataclass(frozen=True)
class Forecasts:
    """Rolling forecasts: arrays of shape (origins, horizon); ``times`` of the forecast rows."""

    times: np.ndarray
    actual: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def metrics(actual: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, accuracy_mean, accuracy_range and coverage95 of predictions of ``actual``."""
    actual, mean, std = (np.asarray(a, float).ravel() for a in (actual, mean, std))
    error = mean - actual
    rmse = float(np.sqrt(np.mean(error**2)))
    spread = float(actual.max() - actual.min())
    return {
        "rmse": rmse,
        "mae": float(np.mean(np.abs(error))),
        "accuracy_mean": 1.0 - rmse / float(np.mean(actual)),
        "accuracy_range": 1.0 - rmse / spread if spread > 0 else float("nan"),
        "coverage95": float(np.mean(np.abs(error) <= Z95 * std)),
        "n": int(actual.size),
    }


def training_overlap(model: GPModel, times: np.ndarray) -> bool:
    """Whether any of ``times`` lies in the window of rows ``model`` was trained on."""
    first, last = (np.datetime64(pd.Timestamp(t)) for t in model.training_period_)
    times = np.asarray(times, dtype="datetime64[ns]")
    return bool(((times >= first) & (times <= last)).any())


def _check_out_of_sample(model: GPModel, times: np.ndarray, what: str, allow_overlap: bool) -> None:
    """ModelError if forecasts of rows at ``times`` would be in-sample, unless ``allow_overlap``."""
    if not allow_overlap and training_overlap(model, times):
        first, last = model.training_period_
        raise ModelError(f"{what} of {model.features.target!r} reach into the rows the model was trained on "
                         f"({first} .. {last}): their figures would be in-sample; test after {last}, or allow the "
                         f"overlap (twin evaluate --allow-overlap) if these rows are another run over the same dates")


def rolling_forecasts(model: GPModel, frame: pd.DataFrame, test_start: pd.Timestamp | str, horizon: int,
                      every: int = 1, allow_overlap: bool = False) -> Forecasts:
    """Forecasts from every ``every``-th row at or after ``test_start`` (the origin, whose output
    is known) whose whole horizon lies inside ``frame``. ModelError when there is no such origin,
    or when a forecast row is one the model was trained on (unless ``allow_overlap``)."""
    start = parse_time(test_start, "test start")
    for name, steps in (("horizon", horizon), ("every", every)):
        if steps < 1:
            raise ModelError(f"{name} must be at least 1 step, got {steps}")
    first = int(np.searchsorted(frame.index, start))
    first = max(first, model.features.max_lag)
    origins = np.arange(first, len(frame) - horizon, every)
    if origins.size == 0:
        raise ModelError(f"no forecast origin at or after {start}: the data ({span(frame)}) has no row there with "
                         f"{model.features.max_lag} rows before it and {horizon} after it")
    rows = origins[:, None] + np.arange(1, horizon + 1)[None, :]
    times = frame.index.to_numpy()[rows]
    _check_out_of_sample(model, times, f"forecasts from {start}", allow_overlap)
    mean, std = model.forecast(frame, origins, horizon)
    actual = frame[model.features.target].to_numpy(float)[rows]
    return Forecasts(times, actual, mean, std)


def evaluate(model: GPModel, frame: pd.DataFrame, test_start: pd.Timestamp | str, horizon: int,
             every: int = 1, allow_overlap: bool = False) -> dict:
    """Metrics of rolling forecasts: overall, at the last horizon step, and per step (lists);
    ``in_sample``: whether a forecast row is one the model was trained on (only with ``allow_overlap``)."""
    forecasts = rolling_forecasts(model, frame, test_start, horizon, every, allow_overlap)
    return {**summarize(forecasts, model.features.target), "in_sample": training_overlap(model, forecasts.times)}


def summarize(result: Forecasts, target: str) -> dict:
    """``evaluate``'s metrics of forecasts already made."""
    horizon = result.actual.shape[1]
    per_step = [metrics(result.actual[:, h], result.mean[:, h], result.std[:, h]) for h in range(horizon)]
    return {
        "target": target,
        "horizon_steps": horizon,
        "origins": int(result.actual.shape[0]),
        "overall": metrics(result.actual, result.mean, result.std),
        "last_step": per_step[-1],
        "per_step": {key: [step[key] for step in per_step] for key in ("rmse", "mae", "coverage95")},
    }


def error_shares(result: Forecasts, labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Where the squared error of forecasts comes from. ``labels`` has the shape of
    ``result.actual`` (one label per forecast point, for example "occupied" / "unoccupied");
    per label: RMSE of its points, its share of the total squared error (mse_share) and of the
    points (rows_share). An error budget: a label whose mse_share is far above its rows_share is
    where the model loses its accuracy."""
    labels = np.asarray(labels)
    if labels.shape != result.actual.shape:
        raise ValueError(f"labels have shape {labels.shape}, the forecasts {result.actual.shape}")
    squared = (result.mean - result.actual) ** 2
    total = float(squared.sum())
    return {str(label): {"rmse": float(np.sqrt(squared[labels == label].mean())),
                         "mse_share": float(squared[labels == label].sum() / total) if total > 0 else 0.0,
                         "rows_share": float(np.mean(labels == label))}
            for label in np.unique(labels)}


def plot_day(model: GPModel, frame: pd.DataFrame, day: str, horizon: int, path: Path, unit: str = "",
             allow_overlap: bool = False) -> Path:
    """PNG of one day: measurement, the 1-step prediction and the ``horizon``-step-ahead forecast
    (issued ``horizon`` rows earlier) with its 95% band. ModelError for a day without the data, or
    (unless ``allow_overlap``) with rows the model was trained on."""
    start = parse_time(day, "plot day").normalize()
    rows = np.nonzero((frame.index > start) & (frame.index <= start + pd.Timedelta(days=1)))[0]
    if rows.size == 0 or rows[0] - horizon < model.features.max_lag:
        raise ModelError(f"{start.date()}: not enough data ({span(frame)}) to plot {horizon}-step forecasts "
                         f"of that day")
    _check_out_of_sample(model, frame.index.to_numpy()[rows], f"forecasts of {start.date()}", allow_overlap)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean_h, std_h = model.forecast(frame, rows - horizon, horizon)
    mean_1, _ = model.forecast(frame, rows - 1, 1)
    times = frame.index[rows]
    ahead, band = mean_h[:, -1], Z95 * std_h[:, -1]
    ahead_h = (frame.index[1] - frame.index[0]).total_seconds() * horizon / 3600
    figure, axes = plt.subplots(figsize=(10, 4.5))
    axes.fill_between(times, ahead - band, ahead + band, alpha=0.25, label="95% band")
    axes.plot(times, frame[model.features.target].to_numpy()[rows], "k", lw=1.5, label="measured (EnergyPlus)")
    axes.plot(times, ahead, "C0", lw=1.2, label=f"forecast {ahead_h:g} h ahead")
    axes.plot(times, mean_1[:, 0], "C1--", lw=1, label="1-step prediction")
    axes.set_title(f"{model.features.target} on {start.date()}: GP twin vs measurement")
    axes.set_ylabel(f"{model.features.target} [{unit}]" if unit else model.features.target)
    axes.legend(loc="best", fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
