"""Calibration of the predictive std by regime (day type x hour of day), from cross-validation.

One white-noise level fits a building badly: in occupied hours the power follows its features
closely, at night and on weekends the HVAC cycles on and off and the same features explain much
less. A single noise level then makes the 95% band too wide by day and too narrow at night.

``std_scale`` holds out blocks of whole days of the training data in turn, predicts them with
the fitted hyperparameters from the other days, and computes for each (day type, hour) cell
    scale = sqrt(mean( (residual / predicted std)^2 ))
(1 for a calibrated cell), clipped to [0.5, 5]; cells with fewer than ``MIN_CELL`` residuals
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
SCALE_BOUNDS = (0.5, 5.0)


def regimes(x: np.ndarray, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(day type index into DAY_TYPES, hour 0-23) of raw feature rows, from their time features."""
    position = {name: columns.index(name) for name in ("tod_sin", "tod_cos", "workday", "saturday")}
    angle = np.arctan2(x[:, position["tod_sin"]], x[:, position["tod_cos"]]) % (2 * np.pi)
    hour = np.minimum((angle * 24 / (2 * np.pi)).astype(int), 23)
    day = np.where(x[:, position["workday"]] > 0.5, 0, np.where(x[:, position["saturday"]] > 0.5, 1, 2))
    return day, hour


def std_scale(kernel: Kernel, x: np.ndarray, y: np.ndarray, x_raw: np.ndarray, columns: list[str],
              index: pd.DatetimeIndex, folds: int = 7) -> np.ndarray:
    """Scale table (len(DAY_TYPES), 24) from ``folds`` blocks of consecutive days held out in turn.
    ``x`` are standardized rows, ``x_raw`` the same rows unscaled, ``index`` their times."""
    days = np.asarray(index.normalize().factorize()[0])
    block = days * folds // (days.max() + 1)
    z = np.full(len(y), np.nan)
    for fold in range(folds):
        held = block == fold
        if held.all() or not held.any():
            continue
        gp = GaussianProcessRegressor(kernel, optimizer=None, normalize_y=True).fit(x[~held], y[~held])
        mean, std = gp.predict(x[held], return_std=True)
        z[held] = (y[held] - mean) / std
    day, hour = regimes(x_raw, columns)
    table = np.ones((len(DAY_TYPES), 24))
    for d in range(len(DAY_TYPES)):
        in_day = (day == d) & np.isfinite(z)
        overall = np.sqrt(np.mean(z[in_day] ** 2)) if in_day.sum() >= MIN_CELL else 1.0
        for h in range(24):
            cell = in_day & (hour == h)
            table[d, h] = np.sqrt(np.mean(z[cell] ** 2)) if cell.sum() >= MIN_CELL else overall
    return np.clip(table, *SCALE_BOUNDS)
