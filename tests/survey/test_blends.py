"""Unrecognised blends: the catalogue adds the partner's aperture leak, the cutout shows the partner."""

from __future__ import annotations

import numpy as np
import pytest

from distributed_pz.survey.sim import blends, images
from distributed_pz.survey.sim.simulate import GROUP_ROWS, SimulationConfig, simulate_tile, simulate_truth
from distributed_pz.survey.store.schema import CLASS_GALAXY

R = 2  # r among u g r i Z Y J H Ks, and among the cutouts' u g r i


def test_a_partner_on_top_of_an_equal_galaxy_leaks_all_its_flux_and_less_further_out():
    d = np.array([0.0, 0.5, 1.0])
    truth = {
        "blend_partner": np.array([1, 0, 1]),  # rows 0 and 2 see row 1, row 1 sees row 0: all one size
        "blend_dx": d,
        "blend_dy": np.zeros(3),
        "blend_dimming": np.ones(3),
        "sigma_source_arcsec": np.full(3, 0.4),
        "psf_fwhm_arcsec": np.full((3, 2), 0.7),
    }
    flux = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    leak = blends.leaked_flux(truth, flux, aperture_min=0.7)
    np.testing.assert_allclose(leak[0], flux[1])
    assert np.all(leak[1] / flux[0] < 1.0) and np.all(leak[2] / flux[1] < leak[1] / flux[0])


@pytest.fixture(scope="module")
def tiles():
    base = dict(n_sources=1024, seed=4, neighbour_fraction=0.0)
    plain, _ = simulate_tile(SimulationConfig(**base))
    blended_config = SimulationConfig(**base, blend_fraction=0.2)
    blended, _ = simulate_tile(blended_config)
    return plain, blended, simulate_truth(blended_config), blended_config


def test_blends_change_only_the_blended_galaxies_and_brighten_them(tiles):
    plain, blended, truth, _ = tiles
    has = truth["blend_partner"] >= 0
    galaxy = truth["class"] == CLASS_GALAXY
    assert not has[~galaxy].any() and 0.15 < has[galaxy].mean() < 0.25
    for name in ("mag", "mag_err", "cutout"):
        np.testing.assert_array_equal(plain[name][~has], blended[name][~has])
    shift = blended["mag"][has, R] - plain["mag"][has, R]
    assert np.nanmedian(shift) < -0.05 and np.nanmax(shift) < 0.2  # brighter by the partner's leak
    rows = np.flatnonzero(has)
    partner = rows // GROUP_ROWS * GROUP_ROWS + truth["blend_partner"][rows]  # a row of the same group
    assert np.all(truth["class"][partner] == CLASS_GALAXY) and np.all(partner != rows)
    fainter = (
        truth["mag_true"][partner, R]
        - 2.5 * np.log10(truth["blend_dimming"][rows])
        - truth["mag_true"][rows, R]
    )
    assert fainter.min() > -1e-6 and fainter.max() < 3.0 + 1e-6


def test_the_cutout_shows_the_partner_where_it_is(tiles):
    plain, blended, truth, config = tiles
    has = np.flatnonzero(truth["blend_partner"] >= 0)
    extra = (blended["cutout"][has, R] - plain["cutout"][has, R]).astype(np.float64)
    peak = np.array(np.unravel_index(extra.reshape(len(has), -1).argmax(axis=1), extra.shape[1:])).T
    offset = np.stack([truth["blend_dy"][has], truth["blend_dx"][has]], axis=1) / config.pixel_scale_arcsec
    distance = np.hypot(*(peak - images.CENTRE - offset).T)  # ± the source's sub-pixel offset
    assert np.median(distance) < 1.5
