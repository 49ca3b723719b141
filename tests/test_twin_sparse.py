"""The inducing-point posterior (DTC) against the exact GP, on synthetic data."""

import numpy as np
import pytest
from sklearn.gaussian_process import GaussianProcessRegressor

from bridge.twin.kernel import make_kernel
from bridge.twin.sparse import InducingPointGP


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = 3 * np.sin(x[:, 0]) + x[:, 1] + 0.1 * rng.normal(size=300) + 5
    kernel = make_kernel(3).clone_with_theta(np.log([1.0, 1.5, 2.0, 3.0, 0.01, 0.1, 1.0]))
    return x, y, kernel, rng.normal(size=(40, 3))


def test_with_every_row_as_inducing_point_it_is_the_exact_gp(data):
    x, y, kernel, new = data
    exact_mean, exact_std = GaussianProcessRegressor(kernel, optimizer=None, normalize_y=True).fit(x, y).predict(
        new, return_std=True)
    mean, std = InducingPointGP(kernel, inducing=x).fit(x, y).predict(new, return_std=True)
    np.testing.assert_allclose(mean, exact_mean, atol=1e-4)
    np.testing.assert_allclose(std, exact_std, rtol=1e-4)


def test_fewer_inducing_points_approximate_the_exact_posterior(data):
    x, y, kernel, new = data
    exact_mean, exact_std = GaussianProcessRegressor(kernel, optimizer=None, normalize_y=True).fit(x, y).predict(
        new, return_std=True)
    sparse = InducingPointGP(kernel, n_inducing=60, random_state=1).fit(x, y)
    mean, std = sparse.predict(new, return_std=True)
    assert sparse.x_inducing_.shape == (60, 3)
    assert np.sqrt(np.mean((mean - exact_mean) ** 2)) < 0.2 * np.std(y)
    np.testing.assert_allclose(std, exact_std, rtol=0.2)
    np.testing.assert_array_equal(sparse.predict(new), mean)


def test_kernel_without_noise_term_is_refused(data):
    x, y, kernel, _ = data
    with pytest.raises(ValueError, match="WhiteKernel"):
        InducingPointGP(kernel.k1.k1 + kernel.k2).fit(x, y)
