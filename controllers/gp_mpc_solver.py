"""The GP-MPC's nonlinear program (CasADi, IPOPT): cost, move blocking and comfort chance constraints
on the twin's rollouts (controllers/gp_rollout.py); see controllers/gp_mpc.py's docstring."""

from __future__ import annotations

from collections.abc import Mapping

import casadi as ca
import numpy as np
from scipy.stats import norm

from controllers.gp_mpc_config import MpcConfig
from controllers.gp_rollout import Rollout


class MpcSolver:
    """The MPC's nonlinear program, built once (CasADi, IPOPT): decisions x in [0, 1], parameters
    set per decision (``parameters``); cost and constraints: controllers/gp_mpc.py's docstring."""

    def __init__(self, config: MpcConfig, bounds: Mapping[str, tuple[float, float]]):
        self.config = config
        models = {tag: config.twin.models[tag] for tag in (config.power, *config.comfort)}
        self.rollout = rollout = Rollout(models, config.decide, bounds, block_of_steps(config.horizon, config.blocks),
                                         config.power)
        horizon, n_decide = config.horizon, len(config.decide)
        symbols = {"reference": horizon, "weights": horizon, "in_event": horizon, "scale": 1, "previous": n_decide,
                   "base_power": horizon, **{f"std_{tag}": horizon for tag in config.comfort}}
        self.symbols = {name: ca.MX.sym(name, size) for name, size in symbols.items()}
        tables = [ca.vec(rollout.tables[tag]) for tag in models]
        self.p = ca.vertcat(*tables, rollout.offset, *self.symbols.values())
        sym = self.symbols
        power = ca.vertcat(*rollout.means[config.power])
        if config.response_gain != 1.0:  # the response to the decisions scaled about the base schedule's rollout
            power = sym["base_power"] + config.response_gain * (power - sym["base_power"])
        if config.objective == "tracking":
            cost = ca.sum1(sym["weights"] * ((power - sym["reference"]) / sym["scale"]) ** 2)
        else:
            cost = ca.sum1(sym["in_event"] * power) / sym["scale"]
        moves = ca.reshape(rollout.x, config.blocks, n_decide)  # column i: the blocks of decide[i]
        steps = ca.vertcat(sym["previous"].T, moves)[1:, :] - ca.vertcat(sym["previous"].T, moves)[:-1, :]
        cost += config.move_weight * ca.sumsqr(steps)
        z = norm.ppf(config.confidence)
        margins = []
        for tag, (low, high) in config.comfort.items():
            temps, std = ca.vertcat(*rollout.means[tag]), sym[f"std_{tag}"]
            margins += [high - (temps + z * std), temps - z * std - low]
        self.g = ca.vertcat(*margins) if margins else ca.MX(0, 1)
        options = {"print_level": 0, "sb": "yes", "max_iter": config.max_iter, "tol": 1e-6}
        if config.max_seconds is not None:
            options["max_wall_time"] = config.max_seconds
        self.nlp = ca.nlpsol("gp_mpc", "ipopt", {"x": rollout.x, "p": self.p, "f": cost, "g": self.g},
                             {"ipopt": options, "print_time": False, "error_on_fail": False})
        self.outputs = ca.Function("gp_mpc_outputs", [rollout.x, self.p], [power, self.g])
        self._tags = list(models)

    def parameters(self, tables: Mapping[str, np.ndarray], offset: float, reference: np.ndarray, weights: np.ndarray,
                   in_event: np.ndarray, scale: float, previous: np.ndarray,
                   comfort_std: Mapping[str, np.ndarray], base_power: np.ndarray) -> np.ndarray:
        """The parameter vector of one decision (the order of ``self.p``); ``base_power``: the power model's
        rollout under the base schedule with the same offset (what ``response_gain`` scales about)."""
        values = {"reference": reference, "weights": weights, "in_event": in_event.astype(float), "scale": [scale],
                  "previous": previous, "base_power": base_power,
                  **{f"std_{tag}": std for tag, std in comfort_std.items()}}
        return np.concatenate([*(tables[tag].ravel(order="F") for tag in self._tags), [offset],
                               *(np.asarray(values[name], float).ravel() for name in self.symbols)])

    def solve(self, start: np.ndarray, params: np.ndarray, lower: np.ndarray | float = 0.0,
              upper: np.ndarray | float = 1.0) -> tuple[np.ndarray, str, int]:
        """(decisions, IPOPT's return status, iterations) from ``start``, each decision within [``lower``,
        ``upper``] (scaled; [0, 1] unless narrowed)."""
        result = self.nlp(x0=start, p=params, lbx=lower, ubx=upper, lbg=0.0, ubg=np.inf)
        stats = self.nlp.stats()
        return np.clip(np.array(result["x"]).ravel(), 0.0, 1.0), stats["return_status"], int(stats.get("iter_count", 0))

    def evaluate(self, x: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predicted power over the horizon, comfort margins) at decisions ``x``."""
        power, margins = self.outputs(x, params)
        return np.array(power).ravel(), np.array(margins).ravel()


def block_of_steps(horizon: int, blocks: int) -> np.ndarray:
    """Block index of each horizon step: the first step is a block of its own (the move applied
    now), the other steps are split into ``blocks - 1`` equal blocks."""
    if blocks == 1:
        return np.zeros(horizon, dtype=int)
    return np.concatenate([[0], 1 + np.arange(horizon - 1) * (blocks - 1) // (horizon - 1)])
