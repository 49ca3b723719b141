"""Gaussian-process models of a building's outputs (Jain et al., SimBuild 2018, M1 and M2).

``GPModel`` learns one output from a ``FeatureSet``. Kernel, on standardized features:

    k(x, x') = s1 * ARD-RBF(x, x')  +  s2 * (x . x' + c)  +  noise * [x == x']

- ARD RBF: one length scale per feature, so the marginal likelihood itself ranks the features
  (weather, setpoints, lags) and switches off the ones that do not matter. On the (sin, cos)
  time-of-day pair it is exactly a 24-hour periodic kernel (ExpSineSquared), so the product with
  the other dimensions is "daily pattern modulated by weather, day type and setpoints".
- Linear (DotProduct): the part of the response that is roughly linear in weather and setpoints
  (cooling load vs. outdoor temperature), which extrapolates sensibly beyond the training range
  where the RBF alone would fall back to the mean.
- White noise: what the features cannot explain; it is part of the predictive std, so the 95%
  band is a band for the measurement, not only for the latent function. One noise level for
  all hours is then rescaled per (day type, hour) by cross-validation (``calibrate``, see
  bridge.twin.calibration), separately for one-step predictions and for rollouts.

Hyperparameters maximise the log marginal likelihood (L-BFGS, at most ``max_iter`` iterations) on a
random subset of at most ``n_hyper`` rows, O(n^3) per iteration (gradient in closed form,
bridge.twin.kernel). The posterior then uses those hyperparameters on all rows: exactly up to
``max_exact`` rows (one Cholesky, O(n^3) once); beyond that through ``n_inducing`` inducing
points (DTC, bridge.twin.sparse; O(n m^2)).

Multi-step forecasts use the zero-variance method: the predicted mean is fed back as the output
lags y(t-1)..y(t-l) of the next step; from the second step on, the std is the one-step std times
the rollout calibration of its (day type, hour) cell, learnt from held-out rollouts of the training days.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import Kernel
from threadpoolctl import threadpool_limits

from bridge.twin.calibration import regimes, std_scale
from bridge.twin.errors import ModelError
from bridge.twin.features import FeatureError, FeatureSet
from bridge.twin.kernel import fit_hyperparameters, make_kernel
from bridge.twin.sparse import InducingPointGP
from bridge.twin.times import parse_time


class GPModel(BaseEstimator):
    """GP regression of one output tag (sklearn estimator shape: parameters in the constructor,
    fitted state in attributes ending in ``_``).

    ``blas_threads`` caps the BLAS threads while fitting (None: the library's default). One thread
    is the default: on 2 cores shared with other jobs, OpenBLAS's threaded Cholesky and solves at
    these sizes (500-3,000 rows) are 2-17x slower than single-threaded ones (docs/twin.md)."""

    def __init__(self, features: FeatureSet, n_hyper: int = 500, max_exact: int = 4000, n_inducing: int = 1000,
                 linear: bool = True, n_restarts: int = 0, max_iter: int = 100, calibrate: bool = True,
                 random_state: int = 0, blas_threads: int | None = 1, update_days: float = 21.0,
                 bias_hours: float = 0.0, bias_horizon: int = 72):
        self.features = features
        self.update_days = update_days
        self.bias_hours = bias_hours
        self.bias_horizon = bias_horizon
        self.calibrate = calibrate
        self.n_hyper = n_hyper
        self.max_iter = max_iter
        self.max_exact = max_exact
        self.n_inducing = n_inducing
        self.linear = linear
        self.n_restarts = n_restarts
        self.random_state = random_state
        self.blas_threads = blas_threads

    def fit(self, frame: pd.DataFrame) -> "GPModel":
        """Learn from a historian DataFrame (columns = tags, regular DatetimeIndex)."""
        started = time.perf_counter()
        with threadpool_limits(self.blas_threads, user_api="blas"):
            self._fit(frame)
        self.fit_time_s_ = time.perf_counter() - started
        return self

    def _fit(self, frame: pd.DataFrame) -> None:
        self.profile_ = self.features.daily_profile(frame) if self.features.profile else None
        self.load_profile_ = self.features.load_profile(frame) if self.features.known_load else None
        self.bias_ = 0.0
        X, y = self._design(frame)
        x = X.to_numpy(float)
        self.x_mean_ = x.mean(axis=0)
        self.x_scale_ = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
        x = (x - self.x_mean_) / self.x_scale_
        rng = np.random.default_rng(self.random_state)
        hyper = _subset(len(x), self.n_hyper, rng)
        kernel = fit_hyperparameters(make_kernel(x.shape[1], self.linear), x[hyper], y.to_numpy()[hyper],
                                     self.max_iter, self.n_restarts, rng, self.linear)
        self._set_posterior(kernel, x, y.to_numpy())
        self.std_scale_ = None
        if self.calibrate and self.features.time_features:
            lag_columns = self.features.output_lag_indices
            self.std_scale_ = std_scale(lambda rows, targets: self._condition(kernel, rows, targets), x, y.to_numpy(),
                                        X.to_numpy(float), self.features.columns, X.index, lag_columns=lag_columns,
                                        x_mean=self.x_mean_, x_scale=self.x_scale_)
        self.training_period_ = (X.index[0].isoformat(), X.index[-1].isoformat())
        self.n_rows_ = len(x)

    def _design(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        """Training rows (features, target) of ``frame``; FeatureError for fewer than 10."""
        X, y = self.features.design(frame, self.profile_, self.load_profile_)
        if len(X) < 10:
            raise FeatureError(f"only {len(X)} complete rows to learn {self.features.target!r} from; need >= 10")
        return X, y

    def update(self, frame: pd.DataFrame, until: pd.Timestamp | str, refit: bool = False) -> "GPModel":
        """A new model conditioned on the last ``update_days`` days of ``frame`` before ``until``
        (the sliding window), with its level bias re-estimated (``level_bias``); this one is unchanged.

        ``refit=False`` (default) keeps the fitted hyperparameters, feature scaling, daily profile and
        std calibration and only re-conditions the GP on the window (one Cholesky: about a second
        for 3 weeks of 10-minute rows, deterministic); ``refit=True`` fits everything again on the
        window (about 10-20 s, and the random hyperparameter subset moves with the data)."""
        self._check_fitted()
        until = parse_time(until, "update until")
        window = frame[(frame.index >= until - pd.Timedelta(days=self.update_days)) & (frame.index < until)]
        new = clone(self)
        if refit:
            new.fit(window)
        else:
            started = time.perf_counter()
            with threadpool_limits(self.blas_threads, user_api="blas"):
                new._recondition(self, window)
            new.fit_time_s_ = time.perf_counter() - started
        new.bias_ = new.level_bias(window)
        return new

    def _recondition(self, fitted: "GPModel", window: pd.DataFrame) -> None:
        """Take ``fitted``'s hyperparameters, scaling, profile and calibration; condition on ``window``."""
        self.profile_, self.std_scale_ = fitted.profile_, fitted.std_scale_
        self.load_profile_ = fitted.load_profile_
        self.x_mean_, self.x_scale_ = fitted.x_mean_, fitted.x_scale_
        self.bias_ = 0.0
        X, y = self._design(window)
        self._set_posterior(fitted.kernel_, (X.to_numpy(float) - self.x_mean_) / self.x_scale_, y.to_numpy())
        self.training_period_ = (X.index[0].isoformat(), X.index[-1].isoformat())
        self.n_rows_ = len(X)

    def level_bias(self, window: pd.DataFrame) -> float:
        """The latest level error, in the target's unit, shrunk toward 0 by its standard error; 0 when
        ``bias_hours`` is 0 (the default) or no forecast fits. ``predict`` and ``forecast`` add it to
        their mean: a GP without a date feature follows a level shift in its newest rows only as far as
        they outweigh older rows that look alike.

        The errors are those this model, re-conditioned on ``window`` *without* its last ``bias_hours``
        hours, makes on those hours forecasting ``bias_horizon`` steps ahead (zero-variance, from every
        row whose forecast ends inside the window): measured - forecast. Each day's errors (24-hour
        blocks counted back from the window's end, so ``bias_hours`` = 24 is one day) are averaged with
        weights 1 / (calibrated rollout std scale of the row's (day type, hour) cell)^2,
        so the hours the model forecasts well (occupied hours) count and the HVAC cycling of nights and
        weekends hardly does (the precision-weighted mean of a constant offset); the day means, the
        independent samples (errors within a day are correlated), give the estimate and its standard
        error, and ``shrunk_mean`` keeps only what stands out of their day-to-day scatter."""
        if self.bias_hours <= 0 or not len(window):
            return 0.0
        cut = window.index[-1] - pd.Timedelta(hours=self.bias_hours)
        first = max(int(np.searchsorted(window.index, cut, side="right")) - 1, self.features.max_lag)
        origins = np.arange(first, len(window) - self.bias_horizon)
        head = window[window.index <= cut]
        if origins.size == 0 or len(head) <= self.features.max_lag + 10:
            return 0.0
        probe = clone(self)
        with threadpool_limits(self.blas_threads, user_api="blas"):
            probe._recondition(self, head)
        mean, _ = probe.forecast(window, origins, self.bias_horizon, with_std=False)
        rows = (origins[:, None] + np.arange(1, self.bias_horizon + 1)[None, :]).ravel()
        error = window[self.features.target].to_numpy(float)[rows] - mean.ravel()
        weight = np.ones(rows.size)
        if self.std_scale_ is not None:
            x = self.feature_rows(window).to_numpy(float)[rows]
            weight = 1.0 / self.std_scale_[1][regimes(x, self.features.columns)] ** 2
        ok = np.isfinite(error)
        days = ((window.index[-1] - window.index[rows][ok]) // pd.Timedelta(days=1)).to_numpy()
        weighted = np.bincount(days, weight[ok] * error[ok])
        total = np.bincount(days, weight[ok])
        return shrunk_mean(weighted[total > 0] / total[total > 0])

    def _condition(self, kernel: Kernel, x: np.ndarray, y: np.ndarray, x_inducing: np.ndarray | None = None):
        """The posterior with fixed hyperparameters on standardized rows: exact up to ``max_exact``
        rows, through inducing points beyond (``x_inducing``, or ``n_inducing`` k-means centres)."""
        if len(x) <= self.max_exact:
            return GaussianProcessRegressor(kernel, optimizer=None, normalize_y=True).fit(x, y)
        return InducingPointGP(kernel, self.n_inducing, self.random_state, x_inducing).fit(x, y)

    def _set_posterior(self, kernel: Kernel, x_train: np.ndarray, y_train: np.ndarray,
                       x_inducing: np.ndarray | None = None) -> None:
        """Condition the GP with fixed hyperparameters on standardized training rows."""
        self.gp_ = self._condition(kernel, x_train, y_train, x_inducing)
        self.kernel_ = self.gp_.kernel_
        self.x_train_, self.y_train_ = x_train, y_train
        self.x_inducing_ = getattr(self.gp_, "x_inducing_", None)
        self.approximation_ = "exact" if self.x_inducing_ is None else f"inducing points (DTC, {len(self.x_inducing_)})"

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """One-step predictions (output lags from measured data): (mean, std) per row of ``frame``,
        NaN where the row's features are incomplete (the first ``max_lag`` rows)."""
        self._check_fitted()
        return self.predict_features(self.feature_rows(frame).to_numpy(float), fed_back=False)

    def feature_rows(self, frame: pd.DataFrame, segment: int | None = None) -> pd.DataFrame:
        """``features.features`` of ``frame`` with this model's fitted profiles (``segment``: rows per
        regular segment, ``features.segment_features``)."""
        if segment is None:
            return self.features.features(frame, self.profile_, self.load_profile_)
        return self.features.segment_features(frame, segment, self.profile_, self.load_profile_)

    def predict_features(self, x: np.ndarray, fed_back: bool = True,
                         with_std: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) for raw feature rows in ``features.columns`` order. ``fed_back``: the rows'
        output lags are (partly) the model's own means, as in a rollout or the twin engine, so the
        std takes the rollout calibration; False when they are measured (one step ahead).
        ``with_std=False`` skips the std (NaN; its O(n^2) per row dominates a prediction)."""
        self._check_fitted()
        x = np.atleast_2d(x)
        mean, std = np.full(len(x), np.nan), np.full(len(x), np.nan)
        ok = np.isfinite(x).all(axis=1)
        if ok.any():
            rows = (x[ok] - self.x_mean_) / self.x_scale_
            if not with_std:
                mean[ok] = self.gp_.predict(rows) + self.bias_
                return mean, std
            mean[ok], std[ok] = self.gp_.predict(rows, return_std=True)
            mean[ok] += self.bias_
            if self.std_scale_ is not None:
                std[ok] *= self.std_scale_[int(fed_back)][regimes(x[ok], self.features.columns)]
        return mean, std

    def next_row(self, history: pd.DataFrame, future: pd.DataFrame) -> np.ndarray:
        """The raw feature row of the step after ``history``'s last row, with ``future``'s first row (its
        inputs and disturbances) and the measured output lags of ``history``."""
        frame = pd.concat([history.iloc[-(self.features.max_lag + 1):], future.iloc[:1]])
        return self.feature_rows(frame, len(frame)).to_numpy(float)[-1]

    def output_lag_sensitivity(self, rows: np.ndarray, delta: float = 1.0) -> np.ndarray:
        """Sum over the output lags of d(mean)/d(lag) at each raw feature row (``features.columns``
        order), by a finite difference of ``delta`` (units of the target), NaN where a row is incomplete;
        0 for a model without output lags. In a rollout a persistent offset of the target fed back through
        the lags moves the forecast level by offset / (1 - s) (the static gain of the output feedback of
        an ARX model); at s >= 1 it grows without bound."""
        rows = np.atleast_2d(np.asarray(rows, float))
        lags = self.features.output_lag_indices
        if not lags:
            return np.where(np.isfinite(rows).all(axis=1), 0.0, np.nan)
        bumped = rows.copy()
        bumped[:, lags] += delta
        mean = self.predict_features(np.vstack([rows, bumped]), fed_back=False, with_std=False)[0]
        return (mean[len(rows):] - mean[:len(rows)]) / delta

    def forecast(self, frame: pd.DataFrame, origins: np.ndarray, horizon: int,
                 with_std: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Zero-variance multi-step forecasts: for each origin row o, predict rows o+1 .. o+horizon
        knowing the measured output up to row o and the inputs and disturbances throughout.
        Returns (mean, std), each of shape (len(origins), horizon); std NaN unless ``with_std``."""
        self._check_fitted()
        origins = np.asarray(origins, dtype=int)
        if origins.size and (origins.min() < self.features.max_lag or origins.max() + horizon >= len(frame)):
            raise ModelError(f"forecast origins must lie in [{self.features.max_lag}, {len(frame) - horizon - 1}]")
        return self._forecast(self.feature_rows(frame).to_numpy(float), origins, horizon, with_std)

    def _forecast(self, table: np.ndarray, origins: np.ndarray, horizon: int,
                  with_std: bool, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """``forecast`` on the rows of a feature table; ``offset`` added to every step's mean before
        it is fed back (``forecast_scenarios``)."""
        lag_columns = self.features.output_lag_indices
        mean = np.empty((len(origins), horizon))
        std = np.empty((len(origins), horizon))
        for h in range(1, horizon + 1):
            rows = table[origins + h].copy()
            for lag, column in enumerate(lag_columns, start=1):
                if h - lag >= 1:  # that lag is itself a forecast: feed back its mean
                    rows[:, column] = mean[:, h - lag - 1]
            mean[:, h - 1], std[:, h - 1] = self.predict_features(rows, fed_back=h > 1, with_std=with_std)
            mean[:, h - 1] += offset
        return mean, std

    def forecast_scenarios(self, history: pd.DataFrame, futures: list[pd.DataFrame],
                           with_std: bool = True, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Zero-variance forecasts of the same horizon under several scenarios of the future, all
        starting from one measured ``history`` (its last row is the origin; at least ``max_lag`` + 1
        rows, the target measured). Each future is a DataFrame of the next H timesteps with the
        inputs and disturbances (the target may be absent). Returns (mean, std), shape
        (len(futures), H). As ``forecast`` on history + future, for all scenarios in one batch: what
        a model-predictive controller evaluates for its candidate input trajectories. ``offset`` (the
        target's units) is added to every step's mean before it is fed back through the output lags:
        a steady output disturbance of the autoregressive model, whose forecast level then moves by
        about offset / (1 - the sum of the mean's sensitivities to its output lags)."""
        self._check_fitted()
        keep = self.features.max_lag + 1
        if len(history) < keep:
            raise ModelError(f"forecast of {self.features.target!r} needs {keep} rows of history, got {len(history)}")
        horizon = len(futures[0])
        if any(len(future) != horizon for future in futures):
            raise ModelError("all scenarios of a forecast need the same horizon")
        recent = history.iloc[-keep:]
        # one frame of consecutive segments (history + scenario); no lag of a forecast row reaches
        # back into the segment before its own
        stacked = pd.concat([pd.concat([recent, future]) for future in futures])
        origins = np.arange(len(futures)) * (keep + horizon) + keep - 1
        table = self.feature_rows(stacked, keep + horizon).to_numpy(float)
        return self._forecast(table, origins, horizon, with_std, offset)

    def _check_fitted(self) -> None:
        if not hasattr(self, "gp_"):
            raise ModelError(f"model of {self.features.target!r} is not fitted")


class TwinModel:
    """One ``GPModel`` per output tag of a building, trained together from one historian."""

    def __init__(self, models: Mapping[str, GPModel], metadata: dict | None = None):
        self.models = dict(models)
        self.metadata = metadata or {}  # what a saved model file says about itself (bridge.twin.persist)

    @classmethod
    def from_feature_sets(cls, feature_sets: list[FeatureSet], **gp_params) -> "TwinModel":
        return cls({fs.target: GPModel(fs, **gp_params) for fs in feature_sets})

    @property
    def targets(self) -> list[str]:
        return list(self.models)

    @property
    def required_tags(self) -> list[str]:
        """Every tag any of the models reads (targets, inputs, disturbances), in a stable order."""
        tags: dict[str, None] = {}
        for model in self.models.values():
            tags.update(dict.fromkeys(model.features.tags))
        return list(tags)

    def fit(self, frame: pd.DataFrame) -> "TwinModel":
        for model in self.models.values():
            model.fit(frame)
        return self

    def predict(self, frame: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """One-step (mean, std) of every target for every row of ``frame``."""
        return {target: model.predict(frame) for target, model in self.models.items()}

    def update(self, frame: pd.DataFrame, until: pd.Timestamp | str, refit: bool = False) -> "TwinModel":
        """A new twin: every model re-conditioned on its sliding window of ``frame`` before ``until``
        and its level bias re-estimated (``GPModel.update``); this one is unchanged. The metadata
        keeps the building record and says what was updated (``update``)."""
        models = {target: model.update(frame, until, refit) for target, model in self.models.items()}
        record = {"until": pd.Timestamp(until).isoformat(), "refit": refit,
                  "windows": {t: list(m.training_period_) for t, m in models.items()},
                  "bias": {t: m.bias_ for t, m in models.items()}}
        kept = {key: self.metadata[key] for key in ("building",) if key in self.metadata}
        return TwinModel(models, {**kept, "update": record})


def shrunk_mean(samples: np.ndarray) -> float:
    """The mean of independent ``samples`` shrunk toward 0 by its standard error se: mean *
    max(0, 1 - se^2 / mean^2), the positive-part James-Stein factor for one mean (Efron & Morris,
    JASA 1973): a mean within about one standard error of 0 becomes 0, one many standard errors away
    is kept. 0 for fewer than two samples (no standard error)."""
    samples = np.asarray(samples, float)
    samples = samples[np.isfinite(samples)]
    if samples.size < 2:
        return 0.0
    mean = float(samples.mean())
    se2 = float(samples.var(ddof=1)) / samples.size
    return mean * max(0.0, 1.0 - se2 / mean**2) if mean != 0.0 else 0.0


def _subset(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted random row positions: all of them if ``n <= size``."""
    if n <= size:
        return np.arange(n)
    return np.sort(rng.choice(n, size, replace=False))

