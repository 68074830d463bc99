"""The residual kernel: a point ensemble's p(z) carries the skew and the tails of its out-of-fold errors."""

from __future__ import annotations

import numpy as np
import pytest

from distributed_pz.metrics import mixture
from distributed_pz.models.calibration import RecordedCalibration, fit_calibration, mixture_pit, pit_scores
from distributed_pz.models.kernel_calibration import NODES, KernelCalibration


def point_ensemble(n, seed=0):
    """One Gaussian per row (members' mean ``m`` and spread) and the true redshifts: ``(w, mu, sd), z``.

    The truths scatter about ``m`` with skewed errors (a third of the rows 3 times wider and to
    one side) that scale with the members' spread, which is half the core error."""
    rng = np.random.default_rng(seed)
    m = rng.uniform(0.3, 1.2, n)
    spread = rng.uniform(0.005, 0.03, n) * (1 + m)
    tail = rng.random(n) < 1 / 3
    error = np.where(tail, np.abs(rng.normal(0, 6 * spread)), rng.normal(0, 2 * spread))
    return (np.ones((n, 1)), m[:, None], spread[:, None]), m + error


def duplicated(mixtures):
    """The same p(z) as two equal components: fitted with the width temperature."""
    w, mu, sd = mixtures
    return w / 2 * np.ones((1, 2)), np.repeat(mu, 2, 1), np.repeat(sd, 2, 1)


def test_skewed_errors_are_calibrated_by_the_kernel_where_a_gaussian_cannot():
    mixtures, z = point_ensemble(8000)
    fit, test = slice(0, 4000), slice(4000, None)
    kernel = fit_calibration(*(a[fit] for a in mixtures), z[fit])
    gaussian = fit_calibration(*(a[fit] for a in duplicated(mixtures)), z[fit])
    assert isinstance(kernel, KernelCalibration) and gaussian.method == "width_temperature"
    scores = {
        name: pit_scores(mixture_pit(*cal.apply(*(a[test] for a in m)), z[test]))
        for name, cal, m in (("kernel", kernel, mixtures), ("gaussian", gaussian, duplicated(mixtures)))
    }
    assert scores["kernel"]["pit_ks"] < 0.025 < 0.04 < scores["gaussian"]["pit_ks"]
    assert abs(scores["kernel"]["coverage_68"] - 0.683) < 0.02


def test_rows_the_members_disagree_on_get_the_wider_pdf():
    (w, mu, sd), z = point_ensemble(8000, seed=1)
    calibration = fit_calibration(w[:4000], mu[:4000], sd[:4000], z[:4000])
    out = calibration.apply(w[4000:], mu[4000:], sd[4000:])
    pit = mixture_pit(*out, z[4000:])
    spread = sd[4000:, 0]
    small = spread < np.median(spread)
    for half in (small, ~small):
        assert pit_scores(pit[half])["pit_ks"] < 0.04
    width = mixture.summarise(*out)["z_std"]
    assert np.median(width[~small]) > 2 * np.median(width[small])


def test_the_kernel_pdf_is_an_exact_mixture_above_zero_and_no_pdf_rows_stay_so():
    (w, mu, sd), z = point_ensemble(1000, seed=2)
    mu[:50] = 0.01  # modes near 0: the guard keeps every Gaussian's mean >= 0
    w[-3:] = 0.0
    calibration = fit_calibration(w, mu, sd, z)
    w2, mu2, sd2 = calibration.apply(w, mu, sd)
    assert w2.shape == mu2.shape == sd2.shape == (1000, NODES) == (1000, calibration.output_components(1))
    np.testing.assert_allclose(w2[:-3].sum(axis=1), 1.0)
    assert (w2[-3:] == 0).all() and np.isnan(mixture.summarise(w2, mu2, sd2)["z_phot"][-3:]).all()
    assert (mu2 >= 0).all() and (sd2[:-3] > 0).all()
    assert (mixture.summarise(w2[:-3], mu2[:-3], sd2[:-3])["z_phot"] >= 0).all()


def test_a_kernel_calibration_reads_back_as_itself():
    (w, mu, sd), z = point_ensemble(600, seed=3)
    calibration = fit_calibration(w, mu, sd, z, fitted_on="test rows")
    back = RecordedCalibration.from_dict(calibration.to_dict())
    assert back == calibration and back.content_hash == calibration.content_hash
    assert calibration.describe().startswith("residual_kernel in 2 z_phot bins, fitted on 600 test rows")
    with pytest.raises(ValueError, match="one-Gaussian"):
        calibration.apply(*duplicated((w, mu, sd)))
    with pytest.raises(ValueError, match="same number of nodes"):
        KernelCalibration((), (0.01,), ((),), (0.1,), "x", 1)
