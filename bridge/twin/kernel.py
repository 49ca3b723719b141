"""The twin's prior covariance and the fit of its hyperparameters by marginal likelihood.

On standardized features:

    k(x, x') = s1 * ARD-RBF(x, x')  +  noise * [x == x']  +  s2 * (x . x' + c)

(the linear term is optional). ``make_kernel`` builds it as a scikit-learn kernel, so a fitted GP
is an ordinary ``GaussianProcessRegressor``. ``log_marginal_likelihood`` is the same function as
``GaussianProcessRegressor.log_marginal_likelihood(theta, eval_gradient=True)`` (normalized
targets, jitter 1e-10), but computes the gradient of the ARD length scales with matrix products:
with M = (alpha alpha^T - K^-1) * s1 * RBF, the derivative for length scale l_d is

    0.5 * sum_ij M_ij (x_id - x_jd)^2 / l_d^2  =  (sum_i x_id^2 (M 1)_i - x_d^T M x_d) / l_d^2,

O(n^2 d) time and O(n^2) memory, where scikit-learn builds the n x n x d array of kernel
derivatives (20-30x slower at n = 500, d = 21).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.optimize
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, DotProduct, Kernel, WhiteKernel

JITTER = 1e-10  # GaussianProcessRegressor's default alpha, added to the diagonal


def make_kernel(n_features: int, linear: bool = True) -> Kernel:
    """The prior covariance, before fitting. Its ``theta`` (log parameters) is ordered
    [s1, length scales (n_features), noise] then, with ``linear``, [s2, sqrt(c)]."""
    kernel = (ConstantKernel(1.0, (1e-3, 1e2)) * RBF(np.full(n_features, 3.0), (1e-2, 1e3))
              + WhiteKernel(1e-2, (1e-3, 1.0)))
    if linear:
        kernel += ConstantKernel(0.1, (1e-4, 1e1)) * DotProduct(1.0, (1e-3, 1e2))
    return kernel


def log_marginal_likelihood(theta: np.ndarray, x: np.ndarray, y: np.ndarray,
                            linear: bool = True) -> tuple[float, np.ndarray]:
    """(log marginal likelihood, its gradient in ``theta``) of ``make_kernel(x.shape[1], linear)``
    on rows ``x`` and normalized targets ``y``; (-inf, 0) where the covariance is not positive definite."""
    n, d = x.shape
    s1, length, noise = np.exp(theta[0]), np.exp(theta[1:d + 1]), np.exp(theta[d + 1])
    scaled = x / length
    squares = np.einsum("ij,ij->i", scaled, scaled)
    distance = np.maximum(squares[:, None] + squares[None, :] - 2 * scaled @ scaled.T, 0.0)
    np.fill_diagonal(distance, 0.0)
    rbf = s1 * np.exp(-0.5 * distance)
    covariance = rbf + (noise + JITTER) * np.eye(n)
    if linear:
        s2, offset = np.exp(theta[d + 2]), np.exp(2 * theta[d + 3])
        gram = x @ x.T + offset
        covariance += s2 * gram
    try:
        factor = (scipy.linalg.cholesky(covariance, lower=True, check_finite=False), True)
    except np.linalg.LinAlgError:
        return -np.inf, np.zeros_like(theta)
    alpha = scipy.linalg.cho_solve(factor, y, check_finite=False)
    value = -0.5 * y @ alpha - np.log(np.diag(factor[0])).sum() - 0.5 * n * np.log(2 * np.pi)
    inner = np.outer(alpha, alpha) - scipy.linalg.cho_solve(factor, np.eye(n), check_finite=False)
    weighted = inner * rbf
    gradient = np.empty_like(theta, dtype=float)
    gradient[0] = 0.5 * weighted.sum()
    gradient[1:d + 1] = (x**2).T @ weighted.sum(axis=1) - np.einsum("ij,ij->j", x, weighted @ x)
    gradient[1:d + 1] /= length**2
    gradient[d + 1] = 0.5 * noise * np.trace(inner)
    if linear:
        gradient[d + 2] = 0.5 * s2 * np.einsum("ij,ij->", inner, gram)
        gradient[d + 3] = s2 * offset * inner.sum()
    return float(value), gradient


def fit_hyperparameters(kernel: Kernel, x: np.ndarray, y: np.ndarray, max_iter: int = 100, n_restarts: int = 0,
                        rng: np.random.Generator | None = None, linear: bool = True) -> Kernel:
    """``kernel`` (from ``make_kernel(x.shape[1], linear)``) with the parameters that maximise the
    log marginal likelihood of targets ``y`` (normalized here, as ``normalize_y`` does): L-BFGS-B,
    at most ``max_iter`` iterations, from ``kernel.theta`` and ``n_restarts`` random starts in the bounds."""
    scale = y.std()
    y = (y - y.mean()) / (scale if scale > 0 else 1.0)
    bounds = kernel.bounds
    starts = [kernel.theta]
    if n_restarts:
        rng = rng or np.random.default_rng()
        starts += [rng.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(n_restarts)]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = log_marginal_likelihood(theta, x, y, linear)
        return -value, -gradient

    results = [scipy.optimize.minimize(objective, start, method="L-BFGS-B", jac=True, bounds=bounds,
                                       options={"maxiter": max_iter}) for start in starts]
    return kernel.clone_with_theta(min(results, key=lambda result: result.fun).x)
