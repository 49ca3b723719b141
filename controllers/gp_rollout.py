"""The GP twin's zero-variance rollout as a CasADi expression of the decided setpoints: exact gradients.

``GPModel``'s predictive mean (bridge.twin.gp), on standardized features z = (x - x_mean) / x_scale:

    mean(x) = y_scale * sum_j w_j k(z, Z_j) + y_mean + bias,
    k(z, z') = s1 exp(-sum_d (z_d - z'_d)^2 / (2 l_d^2)) + s2 (z . z' + c)

(bridge.twin.kernel.make_kernel; its white-noise term is zero away from the training rows), with
(Z, w) the training rows and scikit-learn's ``alpha_`` (exact GP, ``normalize_y``) or the inducing
points and weights (DTC, bridge.twin.sparse). ``Rollout`` feeds the means back through the output
lags over the horizon (the zero-variance method, as ``GPModel.forecast_scenarios``) and puts the
decided inputs, piecewise constant over move blocks, into the input-lag columns: CasADi then
differentiates the whole rollout exactly (algorithmic differentiation), which is what IPOPT needs
(Jain et al., SimBuild 2018, solved the same problem with CasADi and IPOPT).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import casadi as ca
import numpy as np
import pandas as pd

from bridge.twin.features import lag_column
from bridge.twin.gp import GPModel
from bridge.twin.sparse import InducingPointGP


def mean_function(model: GPModel, name: str) -> ca.Function:
    """``model``'s predictive mean of one raw feature row (a column vector in ``features.columns``
    order) as a CasADi Function, bias included; equal to ``model.predict_features(x)[0]``."""
    gp = model.gp_
    if isinstance(gp, InducingPointGP):
        rows, weights, y_scale, y_mean = gp.x_inducing_, gp.weights_, gp.y_scale_, gp.y_mean_
    else:
        rows, weights, y_scale, y_mean = gp.X_train_, gp.alpha_, gp._y_train_std, gp._y_train_mean
    rows, weights = np.asarray(rows, float), np.asarray(weights, float).ravel()
    y_scale, y_mean = float(np.squeeze(y_scale)), float(np.squeeze(y_mean))
    d = rows.shape[1]
    theta = np.exp(gp.kernel_.theta)
    s1, lengths = theta[0], theta[1:d + 1]
    scaled = rows / lengths
    x = ca.MX.sym("x", d)
    z = (x - ca.DM(model.x_mean_)) / ca.DM(model.x_scale_)
    a = z / ca.DM(lengths)
    squares = ca.DM((scaled ** 2).sum(axis=1)) - 2 * ca.mtimes(ca.DM(scaled), a) + ca.sumsqr(a)
    value = s1 * ca.dot(ca.DM(weights), ca.exp(-0.5 * squares))
    if model.linear:
        s2, c = theta[d + 2], theta[d + 3] ** 2
        value += s2 * (ca.dot(ca.DM(weights @ rows), z) + c * weights.sum())
    return ca.Function(name, [x], [y_scale * value + y_mean + model.bias_])


class Rollout:
    """Means over ``horizon`` steps of several models (one ``GPModel`` per tag) as CasADi
    expressions of the scaled decisions ``x`` (input-major: ``decide[i]`` in block b is
    ``x[i * blocks + b]``, the input ``low + (high - low) * x``), of the base feature ``tables``
    (parameters: each model's feature rows of the coming steps under the base schedule, from
    ``tables``) and of ``offset``, a disturbance estimate added to ``offset_tag``'s mean at every step
    before it is fed back through the output lags (an output disturbance of the autoregressive
    model, as in offset-free MPC; ``GPModel.forecast_scenarios`` with ``offset``)."""

    def __init__(self, models: Mapping[str, GPModel], decide: Sequence[str], bounds: Mapping[str, tuple[float, float]],
                 block: np.ndarray, offset_tag: str):
        self.models, self.horizon = dict(models), len(block)
        n_blocks = int(block.max()) + 1
        self.x = ca.MX.sym("x", len(decide) * n_blocks)
        self.offset = ca.MX.sym("offset")
        self.tables = {tag: ca.MX.sym(f"table_{tag}", self.horizon, len(m.features.columns)) for tag, m in self.models.items()}
        inputs = {tag: [bounds[tag][0] + (bounds[tag][1] - bounds[tag][0]) * self.x[i * n_blocks + int(block[h])]
                        for h in range(self.horizon)] for i, tag in enumerate(decide)}
        self.means: dict[str, list[ca.MX]] = {}
        for tag, model in self.models.items():
            features, table = model.features, self.tables[tag]
            columns = features.columns
            # column -> (series over the horizon, lag in steps) for the columns the rollout fills in
            filled = {columns.index(lag_column(name, lag * features.lag_step)): (inputs[name], lag * features.lag_step)
                      for name in features.inputs if name in inputs for lag in range(features.input_lags + 1)}
            means: list[ca.MX] = []
            filled.update({columns.index(lag_column(tag, lag)): (means, lag) for lag in range(1, features.output_lags + 1)})
            mean = mean_function(model, f"mean_{tag}")
            offset = self.offset if tag == offset_tag else 0.0
            for h in range(self.horizon):
                row = []
                for j in range(len(columns)):
                    series, lag = filled.get(j, (None, 0))
                    row.append(series[h - lag] if series is not None and h >= lag else table[h, j])
                means.append(mean(ca.vertcat(*row)) + offset)
            self.means[tag] = means

    def tables_for(self, history: pd.DataFrame, base: pd.DataFrame) -> dict[str, np.ndarray]:
        """Each model's feature rows of the ``base`` future (the rows after ``history``), as
        ``GPModel.forecast_scenarios`` builds them: lags reaching into ``history`` are measured."""
        out = {}
        for tag, model in self.models.items():
            keep = model.features.max_lag + 1
            frame = pd.concat([history.iloc[-keep:], base])
            out[tag] = model.feature_rows(frame, len(frame)).to_numpy(float)[keep:]
        return out
