"""Calibration of the predictive std by regime (day type x hour of day), from cross-validation.

One white-noise level fits a building badly: in occupied hours the power follows its features
closely, at night and on weekends the HVAC cycles on and off and the same features explain much
less. A single noise level then makes the 95% band too wide by day and too narrow at night.

``std_scale`` holds out blocks of whole days of the training data in turn, predicts them with
the fitted hyperparameters from the other days, and computes for each (day type, hour) cell

    scale = quantile(|residual / predicted std|, LEVEL) / 1.96

over the standardized residuals of that day type within ``POOL_HOURS`` hours of the cell (a
window across midnight wraps round), clipped to ``SCALE_BOUNDS``; windows with fewer than
``MIN_CELL`` residuals take the day type's overall scale. ``GPModel`` multiplies its predictive
std by the cell's scale; the cell of a feature row is read back from its time features.

Why a quantile and not the RMS of the residuals: in the HVAC cycling hours the errors are not
Gaussian (phase errors of a square wave), and a band that targets coverage should be set by the
quantile it targets. Why 97.5 % and windows of +/- 3 hours: residuals of held-out *training*
days understate the errors on a later week (only 3-4 Saturdays or Sundays are held out). The
level and window were chosen by the interval score (Gneiting & Raftery 2007) of 12-hour
forecasts on a validation week of the training data (fit on Jul 1-14, forecast Jul 15-21, three
excitation seeds; docs/twin.md), never on the test week.

Autoregressive models (output lags) get two tables: one for one-step predictions (lags
measured), one for rollouts (lags partly the model's own means: forecasts beyond one step, the
twin engine), from zero-variance rollouts over the held-out days exactly as the model is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import pandas as pd

from bridge.twin.features import DAY_TYPES

LEVEL = 0.975
POOL_HOURS = 3
MIN_CELL = 8
SCALE_BOUNDS = (0.5, 30.0)
Z95 = 1.959964
ROLLOUT_HORIZON = 72  # steps of the held-out rollouts of autoregressive models (12 h at 10 minutes)
ROLLOUT_EVERY = 12


class Posterior(Protocol):
    """A GP conditioned on training rows (``GaussianProcessRegressor`` or ``InducingPointGP``)."""

    def predict(self, x: np.ndarray, return_std: bool = False): ...


def regimes(x: np.ndarray, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(day type index into DAY_TYPES, hour 0-23) of raw feature rows, from their time features."""
    position = {name: columns.index(name) for name in ("tod_sin", "tod_cos", "workday", "saturday")}
    angle = np.arctan2(x[:, position["tod_sin"]], x[:, position["tod_cos"]]) % (2 * np.pi)
    hour = np.minimum((angle * 24 / (2 * np.pi)).astype(int), 23)
    day = np.where(x[:, position["workday"]] > 0.5, 0, np.where(x[:, position["saturday"]] > 0.5, 1, 2))
    return day, hour


def std_scale(condition: Callable[[np.ndarray, np.ndarray], Posterior], x: np.ndarray, y: np.ndarray,
              x_raw: np.ndarray, columns: list[str], index: pd.DatetimeIndex, folds: int = 7,
              lag_columns: list[int] = (), x_mean: np.ndarray | None = None, x_scale: np.ndarray | None = None,
              horizon: int = ROLLOUT_HORIZON, every: int = ROLLOUT_EVERY) -> np.ndarray:
    """Scale tables (2, len(DAY_TYPES), 24), [one-step, rollout], from ``folds`` blocks of
    consecutive days held out in turn. ``condition(rows, targets)`` is the model's posterior with
    its fitted hyperparameters on those training rows. ``x`` are standardized rows, ``x_raw`` the same rows
    unscaled (x = (x_raw - x_mean) / x_scale), ``index`` their times.

    A held-out row is predicted once from its features (one-step table). With output lags
    (``lag_columns``) the held-out block is also rolled out by the zero-variance method:
    forecasts of ``horizon`` steps from every ``every``-th row, as the evaluation does on test
    data; steps 2.. of those make the rollout table. Without output lags both tables are the same."""
    days = np.asarray(index.normalize().factorize()[0])
    block = days * folds // (days.max() + 1)
    one_step: list[tuple[np.ndarray, np.ndarray]] = []
    rollout: list[tuple[np.ndarray, np.ndarray]] = []
    for fold in range(folds):
        held = block == fold
        if held.all() or not held.any():
            continue
        gp = condition(x[~held], y[~held])
        rows = np.nonzero(held)[0]
        targets, features = rows, x[rows]
        if len(lag_columns):
            ahead, ahead_features = _rollouts(gp, rows, x_raw, lag_columns, x_mean, x_scale, horizon, every)
            targets, features = np.concatenate([rows, ahead]), np.concatenate([features, ahead_features])
        mean, std = gp.predict(features, return_std=True)  # one batch: the std is the costly part
        z = (y[targets] - mean) / std
        one_step.append((z[:len(rows)], rows))
        rollout.append((z[len(rows):], ahead) if len(lag_columns) else one_step[-1])
    return np.stack([_table(pairs, x_raw, columns) for pairs in (one_step, rollout)])


def _table(pairs: list[tuple[np.ndarray, np.ndarray]], x_raw: np.ndarray, columns: list[str]) -> np.ndarray:
    """Scale per (day type, hour) of standardized residuals ``z`` of rows ``rows`` (pairs per fold)."""
    z = np.concatenate([z for z, _ in pairs]) if pairs else np.zeros(0)
    rows = np.concatenate([rows for _, rows in pairs]) if pairs else np.zeros(0, int)
    day, hour = regimes(x_raw[rows], columns)
    size = np.abs(z)
    table = np.ones((len(DAY_TYPES), 24))
    for d in range(len(DAY_TYPES)):
        in_day = (day == d) & np.isfinite(size)
        overall = np.quantile(size[in_day], LEVEL) / Z95 if in_day.sum() >= MIN_CELL else 1.0
        for h in range(24):
            window = in_day & (np.abs((hour - h + 12) % 24 - 12) <= POOL_HOURS)
            table[d, h] = np.quantile(size[window], LEVEL) / Z95 if window.sum() >= MIN_CELL else overall
    return np.clip(table, *SCALE_BOUNDS)


def _rollouts(gp: Posterior, rows: np.ndarray, x_raw: np.ndarray, lag_columns: list[int],
              x_mean: np.ndarray, x_scale: np.ndarray, horizon: int, every: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-variance rollouts of ``horizon`` steps over the consecutive ``rows``, one from every
    ``every``-th row: (target row of each forecast step from the second on, its standardized
    feature row with the output lags replaced by the rollout's own means)."""
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
        if h > 1:
            targets.append(target)
            features.append(standardized)
    if not targets:
        return np.zeros(0, int), np.zeros((0, x_raw.shape[1]))
    return np.concatenate(targets), np.concatenate(features)
