"""``GPModel.output_lag_sensitivity`` (issue 16): the sum of a twin's sensitivities to its own output
lags, which sets how far a fed-back offset moves its forecasts (1 / (1 - s)), on synthetic ARX data."""

import numpy as np
import pandas as pd
import pytest

from bridge.twin.features import FeatureSet
from bridge.twin.gp import GPModel


def arx(a: float, rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """10-minute rows of y[t] = a y[t-1] + 5 u[t] + 2 w[t] + noise (0.1), u and w random."""
    rng = np.random.default_rng(seed)
    u, w = rng.uniform(-1, 1, rows), rng.uniform(-1, 1, rows)
    y = np.zeros(rows)
    for t in range(1, rows):
        y[t] = a * y[t - 1] + 5 * u[t] + 2 * w[t] + rng.normal(0, 0.1)
    index = pd.date_range("2025-07-01 00:10", periods=rows, freq="10min")
    return pd.DataFrame({"y": y, "u": u, "w": w}, index=index)


def fitted(frame: pd.DataFrame, output_lags: int) -> GPModel:
    features = FeatureSet("y", ("u",), ("w",), output_lags=output_lags, time_features=False)
    return GPModel(features, n_hyper=300, max_iter=50, calibrate=False).fit(frame)


@pytest.mark.parametrize("a", [0.5, 0.9])
def test_the_sensitivity_is_the_systems_own_feedback(a):
    frame = arx(a)
    model = fitted(frame, output_lags=1)
    rows = model.feature_rows(frame).to_numpy(float)[100:110]
    assert np.allclose(model.output_lag_sensitivity(rows), a, atol=0.1)
    history, future = frame.iloc[:200], frame.iloc[200:203].drop(columns=["y"])
    assert model.next_row(history, future) == pytest.approx(model.feature_rows(frame.iloc[:201]).to_numpy(float)[-1])


def test_no_output_lags_is_zero_and_an_incomplete_row_is_nan():
    frame = arx(0.5)
    model = fitted(frame, output_lags=0)
    rows = model.feature_rows(frame).to_numpy(float)[:3].copy()
    rows[1, 0] = np.nan
    found = model.output_lag_sensitivity(rows)
    assert found[0] == found[2] == 0.0 and np.isnan(found[1])
