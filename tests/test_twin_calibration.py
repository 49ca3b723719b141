"""Std calibration by regime on synthetic residuals (no EnergyPlus)."""

import numpy as np
import pandas as pd
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import WhiteKernel

from bridge.twin.calibration import std_scale
from bridge.twin.features import time_features


def test_scale_follows_the_spread_of_each_day_type():
    """With a white-noise kernel the prediction is the training mean with one std for all rows:
    the table must carry the ratio of the day types' spreads (3 on Sundays, 1 otherwise)."""
    index = pd.date_range("2025-06-30 00:10", "2025-07-28 00:00", freq="10min")
    columns = ["tod_sin", "tod_cos", "workday", "saturday"]
    x = np.column_stack([time_features(index)[name].to_numpy() for name in columns])
    sunday = (x[:, 2] == 0) & (x[:, 3] == 0)
    y = np.random.default_rng(0).standard_normal(len(index)) * np.where(sunday, 3.0, 1.0)
    white = GaussianProcessRegressor(WhiteKernel(1.0, "fixed"), optimizer=None, normalize_y=True)
    table = std_scale(lambda rows, targets: white.fit(rows, targets), x, y, x, columns, index)
    assert table.shape == (2, 3, 24)
    np.testing.assert_array_equal(table[0], table[1])  # no output lags: no rollouts
    ratio = np.median(table[0, 2]) / np.median(table[0, 0])
    assert 2.5 < ratio < 3.5
    assert np.ptp(np.median(table[0, :2], axis=1)) < 0.2  # workdays and Saturdays alike
