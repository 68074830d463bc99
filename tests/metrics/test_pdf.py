"""PDF classes and PDF metrics against numerical integration and scipy.stats."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from distributed_pz.metrics import (
    GaussianMixturePDF,
    GridPDF,
    ad_statistic,
    cvm_statistic,
    ks_statistic,
    mixture,
    odds,
    pit,
    pit_coverage,
    pit_histogram,
    pit_uniformity,
    to_qp,
)
from distributed_pz.metrics import pdf as pdf_module


def _mixture(n: int = 4, k: int = 3, seed: int = 1) -> GaussianMixturePDF:
    rng = np.random.default_rng(seed)
    return GaussianMixturePDF(
        rng.uniform(0.1, 1.0, (n, k)), rng.uniform(0.1, 2.0, (n, k)), rng.uniform(0.02, 0.3, (n, k))
    )


def _grid(n: int = 4, seed: int = 2) -> GridPDF:
    rng = np.random.default_rng(seed)
    z = np.sort(np.concatenate([[0.0, 3.0], rng.uniform(0.0, 3.0, 40)]))  # irregular grid
    density = rng.uniform(0.0, 1.0, (n, z.size))
    density[0, :10] = 0.0  # a leading empty stretch
    return GridPDF(z, density)


def _one(pdf, i, fn):
    """A scalar function of z for source i (for scipy.integrate.quad)."""
    sub = pdf.subset([i])
    return lambda z: float(getattr(sub, fn)(np.array([z]))[0])


def _quad(f, lo, hi, points=None):
    return integrate.quad(f, lo, hi, points=points, limit=400, epsabs=1e-11, epsrel=1e-10)[0]


def _crps_numeric(pdf, i, y, lo, hi, points=None):
    cdf = _one(pdf, i, "cdf")
    pts = None if points is None else [p for p in points if lo < p < hi]
    below = _quad(lambda z: cdf(z) ** 2, lo, y, [p for p in pts if p < y] if pts else None)
    above = _quad(lambda z: (1 - cdf(z)) ** 2, y, hi, [p for p in pts if p > y] if pts else None)
    return below + above


def test_mixture_cdf_moments_quantile_mode_match_numerical_integration():
    m = _mixture()
    for i in range(len(m)):
        pdf_i = _one(m, i, "pdf")
        assert _quad(pdf_i, -3, 5) == pytest.approx(1.0, abs=1e-9)
        for z in (0.3, 1.1):
            assert m.subset([i]).cdf(np.array([z]))[0] == pytest.approx(_quad(pdf_i, -3, z), abs=1e-9)
        mean = _quad(lambda z, f=pdf_i: z * f(z), -3, 5)
        var = _quad(lambda z, f=pdf_i, mu=mean: (z - mu) ** 2 * f(z), -3, 5)
        assert m.mean()[i] == pytest.approx(mean, abs=1e-9)
        assert m.std()[i] == pytest.approx(np.sqrt(var), abs=1e-9)
    mode = m.mode()
    coarse = np.linspace(-3.0, 5.0, 8001)  # global maximum within one coarse step ...
    np.testing.assert_allclose(mode, coarse[np.argmax(m.pdf(coarse[None, :]), axis=1)], atol=1e-3)
    fine = mode[:, None] + np.linspace(-2e-3, 2e-3, 4001)  # ... and the local one to 1e-6
    np.testing.assert_allclose(mode, fine[np.arange(len(m)), np.argmax(m.pdf(fine), axis=1)], atol=2e-6)
    for q in (0.05, 0.5, 0.975):
        np.testing.assert_allclose(m.cdf(m.quantile(q)), q, atol=1e-12)
    # [1, M] broadcasts to every source
    np.testing.assert_allclose(m.cdf(np.array([[0.3, 1.1]]))[:, 0], m.cdf(np.full(len(m), 0.3)))


def test_mixture_mode_finds_a_narrow_peak_on_a_broad_one():
    m = GaussianMixturePDF([[0.3, 0.7]], [[0.8123, 2.0]], [[0.001, 1.5]])
    assert m.mode()[0] == pytest.approx(0.8123, abs=1e-5)


def test_mixture_crps_matches_closed_form_gaussian_and_numerical_integral():
    # one Gaussian: CRPS = σ [x(2Φ(x) − 1) + 2φ(x) − 1/√π], x = (y − μ)/σ (Gneiting & Raftery 2007)
    mu, sigma, y = 0.7, 0.2, 1.0
    single = GaussianMixturePDF([[1.0]], [[mu]], [[sigma]])
    x = (y - mu) / sigma
    expected = sigma * (x * (2 * stats.norm.cdf(x) - 1) + 2 * stats.norm.pdf(x) - 1 / np.sqrt(np.pi))
    assert single.crps(np.array([y]))[0] == pytest.approx(expected, rel=1e-12)
    m = _mixture()
    y = np.array([0.5, 1.0, 1.7, 3.0])
    crps = m.crps(y)
    for i in range(len(m)):
        assert crps[i] == pytest.approx(_crps_numeric(m, i, y[i], -4, 6), abs=1e-8)


def test_mixture_ignores_zero_weight_components_and_validates():
    m = GaussianMixturePDF([[1.0, 0.0]], [[0.5, np.nan]], [[0.1, np.nan]])
    ref = GaussianMixturePDF([[1.0]], [[0.5]], [[0.1]])
    assert m.cdf(np.array([0.6]))[0] == pytest.approx(ref.cdf(np.array([0.6]))[0])
    assert m.crps(np.array([0.6]))[0] == pytest.approx(ref.crps(np.array([0.6]))[0])
    with pytest.raises(ValueError, match="shape"):
        GaussianMixturePDF(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=">= 0"):
        GaussianMixturePDF([[-0.1, 1.1]], [[0.0, 1.0]], [[0.1, 0.1]])


def test_grid_cdf_moments_quantile_mode_match_numerical_integration():
    g = _grid(n=2)
    z, pts = g.z_grid, list(g.z_grid[1:-1])
    for i in range(len(g)):
        # the density is linear between grid points, like np.interp of the normalised values
        assert _quad(_one(g, i, "pdf"), 0, 3, pts) == pytest.approx(1.0, abs=1e-10)
        np.testing.assert_allclose(g.pdf(z[None, :])[i], g.density[i], atol=1e-12)
        for zz in (0.37, 2.999):
            expected = _quad(_one(g, i, "pdf"), 0, zz, [p for p in pts if p < zz])
            assert g.subset([i]).cdf(np.array([zz]))[0] == pytest.approx(expected, abs=1e-10)
        f = _one(g, i, "pdf")
        mean = _quad(lambda x, f=f: x * f(x), 0, 3, pts)
        var = _quad(lambda x, f=f, mu=mean: (x - mu) ** 2 * f(x), 0, 3, pts)
        assert g.mean()[i] == pytest.approx(mean, abs=1e-9)
        assert g.std()[i] == pytest.approx(np.sqrt(var), abs=1e-9)
    np.testing.assert_array_equal(g.mode(), z[np.argmax(g.density, axis=1)])
    for q in (0.01, 0.3, 0.99):
        np.testing.assert_allclose(g.cdf(g.quantile(q)), q, atol=1e-12)
    np.testing.assert_array_equal(g.cdf(np.array([[-1.0, 4.0]])), [[0.0, 1.0]] * len(g))
    np.testing.assert_array_equal(g.pdf(np.array([[-1.0, 4.0]])), 0.0)


def test_grid_crps_matches_numerical_integral_inside_and_outside_the_grid():
    g = _grid(n=3)
    y = np.array([-0.5, 0.7, 3.5])
    crps = g.crps(y)
    for i in range(len(g)):
        assert crps[i] == pytest.approx(_crps_numeric(g, i, y[i], -1, 4, list(g.z_grid)), abs=1e-9)


def test_grid_and_mixture_agree_for_a_finely_tabulated_mixture():
    m = _mixture()
    z = np.linspace(-1.0, 4.0, 5001)
    g = GridPDF(z, m.pdf(z[None, :]))
    y = np.array([0.4, 0.9, 1.3, 2.0])
    np.testing.assert_allclose(g.cdf(y), m.cdf(y), atol=1e-6)
    np.testing.assert_allclose(g.crps(y), m.crps(y), atol=1e-6)
    np.testing.assert_allclose(g.quantile(0.16), m.quantile(0.16), atol=1e-5)
    np.testing.assert_allclose(g.mode(), m.mode(), atol=1e-3)
    np.testing.assert_allclose(odds(g, 0.05, mode=m.mode()), odds(m, 0.05), atol=1e-5)


def test_blockwise_mode_and_crps_equal_whole(monkeypatch):
    m, g = _mixture(n=10), _grid(n=10)
    y = np.linspace(0.1, 2.5, 10)
    whole = [m.mode(), m.crps(y), g.mode(), g.crps(y)]
    monkeypatch.setattr(pdf_module, "ROW_BLOCK", 3)
    for got, want in zip([m.mode(), m.crps(y), g.mode(), g.crps(y)], whole, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueError, match="shape"):
        m.crps(y[:3])


def test_grid_validates_its_inputs():
    with pytest.raises(ValueError, match="increasing"):
        GridPDF([0.0, 0.0, 1.0], np.ones((1, 3)))
    with pytest.raises(ValueError, match="shape"):
        GridPDF([0.0, 1.0], np.ones((1, 3)))
    with pytest.raises(ValueError, match=">= 0"):
        GridPDF([0.0, 1.0], [[1.0, -1.0]])


@pytest.fixture
def uniform_pit():
    return np.random.default_rng(3).uniform(size=300)


def test_uniformity_statistics_equal_scipy(uniform_pit):
    u = uniform_pit
    assert ks_statistic(u) == pytest.approx(stats.kstest(u, "uniform").statistic, rel=1e-12)
    assert cvm_statistic(u) == pytest.approx(stats.cramervonmises(u, "uniform").statistic, rel=1e-12)
    result = pit_uniformity(u)
    assert result["ks_pvalue"] == pytest.approx(stats.kstest(u, "uniform", method="exact").pvalue, rel=1e-6)
    assert result["cvm"] == cvm_statistic(u) and result["ad"] == ad_statistic(u)


def test_anderson_darling_equals_its_integral_definition(uniform_pit):
    # A² = n ∫ (F_n(u) − u)² / (u (1 − u)) du, integrated between consecutive order statistics
    u = np.sort(uniform_pit[:40])
    n = u.size
    knots = np.concatenate([[0.0], u, [1.0]])
    integral = sum(
        _quad(lambda x, c=i / n: (c - x) ** 2 / (x * (1 - x)), knots[i], knots[i + 1]) for i in range(n + 1)
    )
    assert ad_statistic(u) == pytest.approx(n * integral, rel=1e-8)
    assert np.isfinite(ad_statistic(np.array([0.0, 0.5, 1.0])))  # clipped, not infinite


def test_pit_is_uniform_and_coverage_nominal_for_calibrated_pdfs():
    rng = np.random.default_rng(4)
    n = 4000
    m = GaussianMixturePDF(
        np.tile([0.7, 0.3], (n, 1)), rng.uniform(0.2, 2.0, (n, 2)), rng.uniform(0.02, 0.2, (n, 2))
    )
    component = (rng.uniform(size=n) < 0.3).astype(int)  # draw the truth from each PDF
    rows = np.arange(n)
    z_true = rng.normal(m.means[rows, component], m.sigmas[rows, component])
    u = pit(m, z_true)
    assert ks_statistic(u) < 0.03
    density, edges = pit_histogram(u, 10)
    assert edges.size == 11 and density.mean() == pytest.approx(1.0)
    np.testing.assert_allclose(density, 1.0, atol=0.15)
    for level in (0.68, 0.95):
        assert pit_coverage(u, level) == pytest.approx(level, abs=0.02)
    # overconfident PDFs (σ halved) under-cover
    narrow = GaussianMixturePDF(m.weights, m.means, m.sigmas / 2)
    assert pit_coverage(pit(narrow, z_true), 0.68) < 0.6


def test_pit_coverage_equals_the_quantile_interval():
    m = _mixture(n=200, seed=5)
    z_true = np.random.default_rng(6).uniform(0.0, 2.0, 200)
    for level in (0.68, 0.95):
        lo, hi = m.quantile((1 - level) / 2), m.quantile((1 + level) / 2)
        assert pit_coverage(pit(m, z_true), level) == pytest.approx(np.mean((lo <= z_true) & (z_true <= hi)))


def test_odds_is_the_probability_around_the_mode():
    mu, sigma = np.array([0.5, 1.5]), np.array([0.01, 0.05])
    m = GaussianMixturePDF(np.ones((2, 1)), mu[:, None], sigma[:, None])
    np.testing.assert_allclose(odds(m), 2 * stats.norm.cdf(0.03 / sigma) - 1, rtol=1e-6)  # full width 0.06
    np.testing.assert_allclose(odds(m, 0.003), 2 * stats.norm.cdf(0.0015 / sigma) - 1, rtol=1e-6)
    w, mu_k, s_k = (np.asarray(a, float) for a in (m.weights, m.means, m.sigmas))
    np.testing.assert_array_equal(odds(m, 0.05), mixture.odds(m.mode(), 0.05, w, mu_k, s_k))
    g = _grid()
    z0 = g.mode()
    for i in range(len(g)):
        pts = [p for p in g.z_grid if z0[i] - 0.1 < p < z0[i] + 0.1]
        expected = _quad(_one(g, i, "pdf"), z0[i] - 0.1, z0[i] + 0.1, pts)
        assert odds(g, 0.2)[i] == pytest.approx(expected, abs=1e-10)


def test_to_qp_round_trips_both_representations():
    pytest.importorskip("qp")
    z = np.array([0.4, 1.0, 1.6])
    m = _mixture()
    np.testing.assert_allclose(to_qp(m).cdf(z), m.cdf(np.broadcast_to(z, (len(m), 3))), atol=1e-10)
    g = _grid()
    np.testing.assert_allclose(to_qp(g).pdf(z), g.pdf(np.broadcast_to(z, (len(g), 3))), atol=1e-10)


def test_weighted_ks_and_coverage_equal_those_of_the_rows_repeated():
    from distributed_pz.metrics.pdf import ks_statistic, pit_coverage

    rng = np.random.default_rng(7)
    p, counts = rng.random(200) ** 1.3, rng.integers(1, 4, 200)
    repeated = np.repeat(p, counts)
    assert np.isclose(ks_statistic(p, counts), ks_statistic(repeated))
    assert np.isclose(pit_coverage(p, 0.68, counts), pit_coverage(repeated, 0.68))
