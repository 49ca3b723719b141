"""Calibration of the predictive std by regime (day type x hour of day), from cross-validation.

One white-noise level fits a building badly: in occupied hours the power follows its features
closely, at night and on weekends the HVAC cycles on and off and the same features explain much
less. A single noise level then makes the 95% band too wide by day and too narrow at night.

``std_scale`` holds out blocks of whole days of the training data in turn, predicts them with
the fitted hyperparameters from the other days, and computes for each (day type, hour) cell
    scale = sqrt(mean( (residual / predicted std)^2 ))
(1 for a calibrated cell), clipped to [0.5, 10]; cells with fewer than ``MIN_CELL`` residuals
take the day type's overall scale. ``GPModel`` multiplies its predictive std by the cell's scale.
The cell of a feature row is read back from its time features, so no extra input is needed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import Kernel

from bridge.twin.features import DAY_TYPES

MIN_CELL = 8
SCALE_BOUNDS = (0.5, 10.0)
ROLLOUT_HORIZON = 72  # steps of the held-out rollouts of autoregressive models (12 h at 10 minutes)
ROLLOUT_EVERY = 12


def regimes(x: np.ndarray, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(day type index into DAY_TYPES, hour 0-23) of raw feature rows, from their time features."""
    position = {name: columns.index(name) for name in ("tod_sin", "tod_cos", "workday", "saturday")}
    angle = np.arctan2(x[:, position["tod_sin"]], x[:, position["tod_cos"]]) % (2 * np.pi)
    hour = np.minimum((angle * 24 / (2 * np.pi)).astype(int), 23)
    day = np.where(x[:, position["workday"]] > 0.5, 0, np.where(x[:, position["saturday"]] > 0.5, 1, 2))
    return day, hour


def std_scale(kernel: Kernel, x: np.ndarray, y: np.ndarray, x_raw: np.ndarray, columns: list[str],
              index: pd.DatetimeIndex, folds: int = 7, lag_columns: list[int] = (),
              x_mean: np.ndarray | None = None, x_scale: np.ndarray | None = None, horizon: int = ROLLOUT_HORIZON, every: int = ROLLOUT_EVERY) -> np.ndarray:
    """Scale table (len(DAY_TYPES), 24) from ``folds`` blocks of consecutive days held out in turn.
    ``x`` are standardized rows, ``x_raw`` the same rows unscaled (x = (x_raw - x_mean) / x_scale),
    ``index`` their times.

    Without output lags (``lag_columns`` empty) a held-out row is predicted once, from its features.
    With output lags the model is used as a simulator (12-hour forecasts, the twin engine), where
    its own predicted means replace the measured lags; the residuals are then those of zero-variance
    rollouts over the held-out block: forecasts of ``horizon`` steps from every ``every``-th row,
    as the evaluation does on test data."""
    days = np.asarray(index.normalize().factorize()[0])
    block = days * folds // (days.max() + 1)
    z_all: list[np.ndarray] = []
    cells: list[np.ndarray] = []
    for fold in range(folds):
        held = block == fold
        if held.all() or not held.any():
            continue
        gp = GaussianProcessRegressor(kernel, optimizer=None, normalize_y=True).fit(x[~held], y[~held])
        rows = np.nonzero(held)[0]
        if len(lag_columns):
            rows, features = _rollouts(gp, rows, x_raw, lag_columns, x_mean, x_scale, horizon, every)
        else:
            features = x[rows]
        mean, std = gp.predict(features, return_std=True)  # one batch: the std is the costly part
        z_all.append((y[rows] - mean) / std)
        cells.append(rows)
    z = np.concatenate(z_all) if z_all else np.zeros(0)
    day, hour = regimes(x_raw[np.concatenate(cells)] if cells else x_raw[:0], columns)
    table = np.ones((len(DAY_TYPES), 24))
    for d in range(len(DAY_TYPES)):
        in_day = (day == d) & np.isfinite(z)
        overall = np.sqrt(np.mean(z[in_day] ** 2)) if in_day.sum() >= MIN_CELL else 1.0
        for h in range(24):
            cell = in_day & (hour == h)
            table[d, h] = np.sqrt(np.mean(z[cell] ** 2)) if cell.sum() >= MIN_CELL else overall
    return np.clip(table, *SCALE_BOUNDS)


def _rollouts(gp: GaussianProcessRegressor, rows: np.ndarray, x_raw: np.ndarray, lag_columns: list[int],
              x_mean: np.ndarray, x_scale: np.ndarray, horizon: int, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-variance rollouts of ``horizon`` steps over the consecutive ``rows``, one from every
    ``every``-th row: (target row of each forecast step, its standardized feature row with the
    output lags replaced by the rollout's own means)."""
    origins = np.arange(0, len(rows) - 1, every)
    predicted = np.full((len(origins), horizon), np.nan)
    targets: list[np.ndarray] = []
    features: list[np.ndarray] = []
    for h in range(1, horizon + 1):
        active = origins + h < len(rows)
        if not active.any():
            break
        target = rows[origins[active] + h]
        raw = x_raw[target].copy()
        for lag, column in enumerate(lag_columns, start=1):
            if h - lag >= 1:
                raw[:, column] = predicted[active, h - lag - 1]
        standardized = (raw - x_mean) / x_scale
        predicted[active, h - 1] = gp.predict(standardized)
        targets.append(target)
        features.append(standardized)
    return np.concatenate(targets), np.concatenate(features)
