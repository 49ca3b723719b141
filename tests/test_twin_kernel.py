"""The fast marginal likelihood of the twin's kernel against scikit-learn's (no EnergyPlus)."""

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor

from bridge.twin.kernel import fit_hyperparameters, log_marginal_likelihood, make_kernel


def sample(rows: int = 60, features: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features))
    return x, np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.1 * rng.standard_normal(rows)


@pytest.mark.parametrize("linear", [True, False])
def test_likelihood_and_gradient_match_scikit_learn(linear):
    x, y = sample()
    kernel = make_kernel(x.shape[1], linear)
    reference = GaussianProcessRegressor(kernel, optimizer=None, normalize_y=True).fit(x, y)
    theta = kernel.theta + np.random.default_rng(1).normal(0, 0.5, kernel.theta.shape)
    expected, expected_gradient = reference.log_marginal_likelihood(theta, eval_gradient=True)
    value, gradient = log_marginal_likelihood(theta, x, (y - y.mean()) / y.std(), linear)
    assert value == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-7, atol=1e-9)


def test_fit_raises_the_likelihood_within_bounds():
    x, y = sample(rows=80)
    kernel = make_kernel(x.shape[1])
    fitted = fit_hyperparameters(kernel, x, y, max_iter=50, n_restarts=1, rng=np.random.default_rng(0))
    normalized = (y - y.mean()) / y.std()
    assert log_marginal_likelihood(fitted.theta, x, normalized)[0] > log_marginal_likelihood(kernel.theta, x, normalized)[0]
    assert np.all(fitted.theta >= kernel.bounds[:, 0] - 1e-9) and np.all(fitted.theta <= kernel.bounds[:, 1] + 1e-9)
    assert fitted.k1.k2.noise_level > 0
