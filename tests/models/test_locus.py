"""Stellar-locus regression: a tile's zero points from its own stars."""

from __future__ import annotations

import numpy as np
import pytest

from distributed_pz.models.locus import (
    StellarLocus,
    TooFewStars,
    colour_to_band_offsets,
    correct_photometry,
    posterior_offsets,
)

BANDS = ("g", "r", "i", "z")


def stars(
    n: int, seed: int, offsets=(0.0, 0.0, 0.0, 0.0), noise: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Magnitudes of stars on a curved locus (one parameter, the temperature), with zero-point ``offsets``."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, n)
    r = rng.uniform(16, 20, n)
    colours = np.stack(
        [0.3 + 1.2 * np.sin(2 * t), 0.1 + 0.8 * t**2, 0.6 * np.cos(3 * t)], axis=1
    )  # g-r, r-i, i-z: a bent locus
    mag = np.column_stack([r + colours[:, 0], r, r - colours[:, 1], r - colours[:, 1] - colours[:, 2]])
    mag = mag + np.asarray(offsets) + rng.normal(0, noise, mag.shape)
    return mag, np.full_like(mag, noise)


def test_a_tile_s_zero_points_are_recovered_up_to_a_grey_term():
    locus = StellarLocus.fit(*stars(3000, seed=0), BANDS)
    truth = np.array([0.03, -0.01, 0.02, -0.04])
    found = locus.offsets(*stars(2000, seed=1, offsets=truth))
    np.testing.assert_allclose(found, truth - truth.mean(), atol=4e-3)
    assert np.abs(locus.offsets(*stars(2000, seed=2))).max() < 4e-3  # the same zero points: nothing to fix


def test_the_training_stars_themselves_need_no_correction():
    """The regression is measured from where it puts the training stars, not from the bin medians."""
    mag, err = stars(100, seed=3, noise=0.02)
    locus = StellarLocus.fit(mag, err, BANDS)
    assert np.abs(locus.reference_shift).max() > 5e-3  # bin medians are not where residuals balance
    assert np.abs(locus.offsets(mag, err)).max() < 1e-4


def test_a_poorly_measured_band_shrinks_to_the_survey_s_calibration_scatter():
    truth = np.array([0.01, -0.01, 0.0, 0.0])
    mag, err = stars(40, seed=4, offsets=truth, noise=0.03)
    raw = StellarLocus.fit(*stars(3000, seed=0), BANDS)
    prior = StellarLocus.fit(*stars(3000, seed=0), BANDS, calibration_scatter=(0.01,) * 4, n_tiles=1)
    assert prior.prior_scatter == pytest.approx((0.01 * np.sqrt(2),) * 4)
    error_raw = np.abs(raw.offsets(mag, err) - (truth - truth.mean())).max()
    error_prior = np.abs(prior.offsets(mag, err) - (truth - truth.mean())).max()
    assert error_prior < error_raw


def test_the_posterior_keeps_a_well_measured_offset_and_drops_an_unmeasured_one():
    measured = np.array([0.02, -0.02, 0.0])
    precise = posterior_offsets(measured, np.eye(3) * 1e-8, np.full(3, 0.02))
    np.testing.assert_allclose(precise, measured, atol=1e-4)
    vague = posterior_offsets(measured, np.eye(3) * 1.0, np.full(3, 0.02))
    assert np.abs(vague).max() < 1e-3


def test_the_locus_survives_its_json_form():
    locus = StellarLocus.fit(*stars(500, seed=0), BANDS, calibration_scatter=(0.01,) * 4, n_tiles=2)
    assert StellarLocus.from_dict(locus.to_dict()) == locus


def test_too_few_or_badly_measured_stars_are_refused():
    locus = StellarLocus.fit(*stars(500, seed=0), BANDS)
    mag, err = stars(500, seed=1)
    with pytest.raises(TooFewStars, match="29 well-measured stars"):
        locus.offsets(mag[:29], err[:29])
    with pytest.raises(TooFewStars):
        locus.offsets(mag, err * 10)  # 0.1 mag errors: none is usable


def test_band_offsets_give_back_the_colour_shift_and_average_zero():
    delta = colour_to_band_offsets(np.array([0.02, -0.01, 0.03]))
    np.testing.assert_allclose(delta[:-1] - delta[1:], [0.02, -0.01, 0.03])
    assert abs(delta.mean()) < 1e-12


def test_a_correction_moves_magnitudes_and_fluxes_alike():
    mag = np.array([[20.0, 21.0], [np.nan, 19.0]], np.float32)
    flux = 10 ** (-0.4 * (mag - 30.0))
    arrays = {
        "mag": mag,
        "flux_exp": flux[:, :, None],
        "flux_exp_err": 0.1 * flux[:, :, None],
        "z_spec": np.ones(2),
    }
    out = correct_photometry(arrays, np.array([0.05, -0.05]))
    np.testing.assert_allclose(out["mag"], mag - [0.05, -0.05], rtol=1e-6)
    np.testing.assert_allclose(30.0 - 2.5 * np.log10(out["flux_exp"][:, :, 0]), out["mag"], rtol=1e-6)
    assert out["mag"].dtype == np.float32 and out["z_spec"] is arrays["z_spec"]
