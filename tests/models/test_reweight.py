"""Calibration rows reweighted to a target's photometry: the nearest-neighbour density ratio."""

from __future__ import annotations

import numpy as np
import pytest

from distributed_pz.metrics import mixture
from distributed_pz.models.calibration import effective_rows, fit_calibration, pit_scores
from distributed_pz.models.reweight import photometric_features, target_weights


def test_weights_make_the_calibration_sample_look_like_a_brighter_target():
    rng = np.random.default_rng(0)
    calibration = rng.normal([19.0, 0.5], [1.0, 0.3], (4000, 2))
    target = rng.normal([18.3, 0.6], [0.8, 0.3], (20000, 2))
    w = target_weights(calibration, target, seed=1)
    assert w.shape == (4000,) and np.isclose(w.mean(), 1.0) and (w >= 0).all()
    np.testing.assert_allclose(np.average(calibration, axis=0, weights=w), target.mean(axis=0), atol=0.06)
    assert abs(calibration[:, 0].mean() - target[:, 0].mean()) > 0.6  # unweighted, far apart
    same = target_weights(calibration, calibration)
    assert effective_rows(same) > 0.9 * len(calibration) * 0.5  # a fair target keeps most of the rows


def test_missing_bands_are_filled_and_features_are_magnitude_and_colours():
    mag = np.array([[20.0, 19.5, 19.0], [21.0, np.nan, 20.0]])
    np.testing.assert_array_equal(photometric_features(mag, 2)[0], [19.0, 0.5, 0.5])
    assert np.isnan(photometric_features(mag, 2)[1, 1:]).all()
    rng = np.random.default_rng(1)
    mags = rng.normal(20.0, 1.0, (300, 3))
    mags[::7, 1] = np.nan
    w = target_weights(photometric_features(mags, 2), photometric_features(mags[:100], 2))
    assert np.isfinite(w).all()


def test_mismatched_or_disjoint_samples_are_refused_in_one_line():
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match=r"\(100, 2\).*\(50, 3\)"):
        target_weights(rng.normal(size=(100, 2)), rng.normal(size=(50, 3)))
    with pytest.raises(ValueError, match="more than 20 calibration rows"):
        target_weights(rng.normal(size=(20, 2)), rng.normal(size=(50, 2)))
    with pytest.raises(ValueError, match="do not overlap"):
        target_weights(rng.normal(size=(100, 2)), rng.normal(size=(50, 2)) + 100.0)


@pytest.mark.parametrize("components", [1, 2])  # a point ensemble's kernel, a mixture's temperature
def test_a_calibration_reweighted_to_an_easier_target_is_calibrated_on_it(components):
    """Bright sources have half the error of faint ones, and the network's p(z) does not know it
    (the SDSS test file is brighter than its training file): the calibration fitted on the faint-heavy
    rows is too wide on a bright-heavy target; reweighted to the target's magnitudes it is not."""
    rng = np.random.default_rng(3)

    def sample(n, bright_share):
        bright = rng.random(n) < bright_share
        mag = np.where(bright, rng.normal(16.5, 0.4, n), rng.normal(18.0, 0.4, n))
        z = rng.uniform(0.02, 0.3, n)
        error = np.where(bright, 0.01, 0.02) * (1 + z)
        centre = np.repeat((z + rng.normal(0.0, error))[:, None], components, axis=1)
        mixtures = (np.full((n, components), 1 / components), centre, np.full((n, components), 0.012))
        return mixtures, z, mag[:, None]

    (w, mu, sd), z, mag = sample(3000, 0.3)
    (tw, tmu, tsd), tz, tmag = sample(6000, 0.8)
    plain = fit_calibration(w, mu, sd, z)
    weighted = fit_calibration(w, mu, sd, z, row_weights=target_weights(mag, tmag))

    def coverage(calibration):
        return pit_scores(mixture.cdf(tz[:, None], *calibration.apply(tw, tmu, tsd))[:, 0])["coverage_68"]

    assert coverage(plain) > 0.72
    assert abs(coverage(weighted) - 0.683) < 0.025


@pytest.mark.parametrize("components", [1, 2])  # a point ensemble's kernel, a mixture's temperature
def test_unit_weights_fit_exactly_the_unweighted_calibration(components):
    rng = np.random.default_rng(4)
    z = rng.uniform(0.05, 1.0, 800)
    centre = (z + rng.normal(0, 0.03, 800))[:, None]
    mixtures = (
        np.full((800, components), 1 / components),
        np.repeat(centre, components, 1),
        np.full((800, components), 0.01),
    )
    plain, unit = fit_calibration(*mixtures, z), fit_calibration(*mixtures, z, row_weights=np.ones(800))
    assert type(plain) is type(unit) and plain.output_components(components) == unit.output_components(
        components
    )
    numbers = [k for k, v in plain.to_dict().items() if isinstance(v, list)]
    assert "edges" in numbers and len(numbers) >= 4
    for name in numbers:
        np.testing.assert_allclose(
            getattr(unit, name), getattr(plain, name), rtol=1e-6
        )  # the nodes come from quantile solves
