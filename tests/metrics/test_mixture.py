"""Gaussian-mixture pooling and summaries against brute-force grids."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from distributed_pz.metrics import mixture

GRID = np.linspace(-2.0, 6.0, 80_001)
STEP = GRID[1] - GRID[0]


def random_members(m: int, n: int, k: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(k), size=(m, n))
    mu = rng.uniform(0, 0.4, (m, n, k)) + rng.uniform(0, 2.5, (1, n, 1))
    sd = rng.uniform(0.01, 0.3, (m, n, k))
    return w, mu, sd


@pytest.mark.parametrize("m", [1, 4])
def test_summaries_match_a_fine_grid(m):
    w, mu, sd = random_members(m, 60, 5)
    weights, means, sigmas = mixture.pool_members(w, mu, sd, np.ones((m, 60), bool))
    out = mixture.summarise(weights, means, sigmas, odds_interval=0.06)
    density = mixture.on_grid(GRID, weights, means, sigmas)
    cdf = np.cumsum(density, axis=1) * STEP
    assert np.allclose(cdf[:, -1], 1, atol=1e-4)
    peak = density.max(axis=1)
    at_mode = mixture.pdf(out["z_phot"][:, None], weights, means, sigmas)[:, 0]
    assert np.all(at_mode >= peak * (1 - 1e-6))  # the highest mode, not a local one
    assert np.allclose(out["z_mean"], (density * GRID).sum(axis=1) * STEP, atol=1e-4)
    assert np.allclose(
        out["z_std"] ** 2, (density * GRID**2).sum(axis=1) * STEP - out["z_mean"] ** 2, atol=1e-4
    )
    lo = GRID[np.argmax(cdf >= ndtr(-1.0), axis=1)]
    hi = GRID[np.argmax(cdf >= ndtr(1.0), axis=1)]
    assert np.allclose(out["z_lo68"], lo, atol=2 * STEP) and np.allclose(out["z_hi68"], hi, atol=2 * STEP)
    inside = np.abs(GRID[None, :] - out["z_phot"][:, None]) <= 0.03
    assert np.allclose(out["odds"], (density * inside).sum(axis=1) * STEP, atol=1e-3)


def test_pooling_weights_members_equally_and_drops_invalid_ones():
    w, mu, sd = random_members(3, 4, 2)
    valid = np.array([[True, True, False, False], [True, False, True, False], [True, True, True, False]])
    weights, means, sigmas = mixture.pool_members(w, mu, sd, valid)
    assert weights.shape == (4, 6)
    assert np.allclose(weights.sum(axis=1), [1, 1, 1, 0])
    assert np.allclose(weights[0], np.concatenate([w[0, 0], w[1, 0], w[2, 0]]) / 3)
    assert np.allclose(weights[1, 2:4], 0) and np.allclose(
        weights[1, [0, 1, 4, 5]], np.concatenate([w[0, 1], w[2, 1]]) / 2
    )
    assert np.array_equal(means[1, 0:2], mu[0, 1]) and np.all(sigmas[3] == 1)
    out = mixture.summarise(weights, means, sigmas, 0.06)
    assert np.all(np.isnan(out["z_phot"][3])) and np.all(np.isfinite(out["z_phot"][:3]))


def test_point_members_become_one_gaussian_of_their_spread():
    nan = np.nan
    z = np.array([[0.5, 1.0, 0.9, nan], [0.7, nan, nan, nan], [0.6, 2.0, nan, nan]])  # (members, sources)
    weights, means, sigmas = mixture.spread_mixture(z, np.isfinite(z), sigma_floor=1e-3)
    assert np.allclose(weights[:, 0], [1, 1, 1, 0])
    assert np.allclose(means[:3, 0], [0.6, 1.5, 0.9])
    c4 = {2: np.sqrt(2 / np.pi), 3: np.sqrt(np.pi) / 2}  # E[s] / sigma for 2 and 3 draws
    expected = [np.std([0.5, 0.7, 0.6], ddof=1) / c4[3], np.std([1.0, 2.0], ddof=1) / c4[2], 1e-3]
    assert np.allclose(sigmas[:3, 0], expected)


def test_the_spread_of_two_members_is_as_wide_as_the_spread_of_eight():
    """Out-of-fold rows pool one member per split, catalogue rows all of them: one calibration must fit both."""
    z = np.random.default_rng(0).normal(0.0, 0.1, (8, 40_000))
    widths = [
        mixture.spread_mixture(z[:n], np.ones((n, z.shape[1]), bool), 1e-6)[2].mean() for n in (2, 4, 8)
    ]
    np.testing.assert_allclose(widths, 0.1, rtol=0.01)


def test_the_pdf_classes_and_the_catalogue_summaries_are_one_library():
    from distributed_pz.metrics.pdf import GaussianMixturePDF, odds

    w, mu, sd = random_members(3, 40, 4, seed=3)
    weights, means, sigmas = mixture.pool_members(w, mu, sd, np.ones((3, 40), bool))
    out = mixture.summarise(weights, means, sigmas)  # the default interval is the catalogues'
    pdf = GaussianMixturePDF(weights, means, sigmas)
    np.testing.assert_allclose(pdf.mode(), out["z_phot"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(pdf.quantile(ndtr(-1.0)), out["z_lo68"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(pdf.quantile(ndtr(1.0)), out["z_hi68"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(pdf.mean(), out["z_mean"], rtol=1e-12)
    np.testing.assert_allclose(pdf.std(), out["z_std"], rtol=1e-12)
    np.testing.assert_allclose(odds(pdf), out["odds"], rtol=0, atol=1e-12)
    assert mixture.DEFAULT_ODDS_INTERVAL == 0.06


def test_samples_follow_the_mixture():
    w = np.array([[0.25, 0.75, 0.0], [1.0, 0.0, 0.0]])
    mu = np.array([[0.5, 1.5, 9.0], [2.0, 9.0, 9.0]])
    sd = np.array([[0.1, 0.2, 0.1], [0.3, 0.1, 0.1]])
    draws = mixture.sample(w, mu, sd, 40_000, np.random.default_rng(1))
    assert draws.shape == (2, 40_000)
    mean, std = mixture.moments(w, mu, sd)
    np.testing.assert_allclose(draws.mean(axis=1), mean, atol=0.01)
    np.testing.assert_allclose(draws.std(axis=1), std, rtol=0.02)
    assert (draws < 5).all()  # a zero-weight component is never picked
    again = mixture.sample(w, mu, sd, 40_000, np.random.default_rng(1))
    np.testing.assert_array_equal(draws, again)
