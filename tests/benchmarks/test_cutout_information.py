"""The cutout-information benchmark: moments of synthetic galaxies, and a tiny simulated run."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from benchmarks.cutout_information import (
    FEATURE_SETS,
    R_MOMENTS,
    colour_gradient,
    correlation_rows,
    correlation_table,
    fit_forests,
    forest_rows,
    pixel_basis,
    r_moments,
    simulated_galaxies,
    verdict,
)
from distributed_pz.survey.sim import images


def discs(r_eff_px: list[float], q: float = 1.0) -> np.ndarray:
    """Noiseless exponential discs of unit flux at the cutout centre, seen through a 0.7″ PSF, ``(N, P, P)``."""
    model = images.build_image_model(0.2, 4.765)
    n = len(r_eff_px)
    radius, one = np.array(r_eff_px), np.ones(n)
    fourier = images.fourier_sources(
        model,
        np.ones((n, 1)),
        radius,
        radius,
        np.zeros((n, 1)),
        q * one,
        one,
        np.zeros(n),
        images.CENTRE * one,
        images.CENTRE * one,
        model.psf_level(np.full((n, 1), 0.7 / 0.2)),
    )
    return np.ascontiguousarray(images.to_cutouts(fourier)[:, 0])


def test_a_larger_galaxy_has_larger_moments_and_a_lower_concentration():
    m = r_moments(discs([1.0, 3.0, 6.0]), pixel_basis(), 0.2)
    for name in ("size_arcsec", "r50_arcsec", "r90_arcsec"):
        assert np.all(np.diff(m[name]) > 0), (name, m[name])
    for name in ("flux_0.4_over_3.2", "flux_0.8_over_3.2", "flux_1.6_over_3.2"):
        assert np.all(np.diff(m[name]) < 0), (name, m[name])
    assert 0.4 < m["r50_arcsec"][2] / 1.2 < 1.1  # r50 ≈ R_e (1.2″) once the PSF matters little
    assert np.all(m["ellipticity"] < 0.01)
    flat = r_moments(discs([3.0], q=0.5), pixel_basis(), 0.2)
    assert flat["ellipticity"][0] > 0.15


def test_a_compact_blue_core_is_a_negative_colour_gradient():
    blue, red = discs([1.0]), discs([6.0])
    gradient = colour_gradient(blue, red, pixel_basis())
    assert gradient[0] < -0.5
    assert colour_gradient(blue, blue, pixel_basis())[0] == pytest.approx(0.0, abs=1e-6)


@pytest.fixture(scope="module")
def galaxies():
    return simulated_galaxies(1500, seed=3)


def test_simulated_moments_follow_the_true_size(galaxies):
    n = len(galaxies["z"])
    assert 1200 < n < 1500  # galaxies only
    for name in (*R_MOMENTS, "g_i_gradient", "true_size_arcsec", "r_mag"):
        assert galaxies[name].shape == (n,) and np.isfinite(galaxies[name]).mean() > 0.95, name
    ok = np.isfinite(galaxies["size_arcsec"])
    assert spearmanr(galaxies["size_arcsec"][ok], galaxies["true_size_arcsec"][ok]).statistic > 0.6


def test_forests_give_a_row_per_set_size_and_draw(galaxies):
    test, fits = fit_forests(galaxies, [200, 400], repeats=2, seed=0, iterations=30)
    z = galaxies["z"][test]
    rows = forest_rows(z, fits)
    assert sorted((r["features"], r["n_train"], r["draw"]) for r in rows) == sorted(
        (f, n, k) for f in FEATURE_SETS for n in (200, 400) for k in (0, 1)
    )
    assert all(math.isfinite(r["nmad_lowz"]) and r["n_test"] == len(test) for r in rows)
    text = verdict(z, fits)
    assert "At 400 training galaxies" in text and "Verdict:" in text
    assert all(name in text for name in list(FEATURE_SETS)[1:])


def test_correlations_cover_every_moment_and_magnitude_bin(galaxies):
    rows = correlation_rows(galaxies)
    moments = {r["moment"] for r in rows}
    assert moments == {*R_MOMENTS, "g_i_gradient", "true_size_arcsec"}
    assert len(rows) == len(moments) * 7
    table = correlation_table(rows).splitlines()
    assert table[0].startswith("| moment | 16–17 |") and table[-1].startswith("| galaxies |")
    assert len(table) == 2 + len(moments) + 1
