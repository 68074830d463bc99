"""The p(z) recalibration: fitted out of fold it makes a miscalibrated ensemble's PIT uniform on other rows."""

from __future__ import annotations

import numpy as np
import pytest

from distributed_pz.metrics import mixture
from distributed_pz.models import calibration
from distributed_pz.models.calibration import (
    MAX_BINS,
    ROWS_PER_BIN,
    Calibration,
    CalibrationRefused,
    fit_calibration,
    pit_scores,
)


def miscalibrated(n, kind, seed=0):
    """Pooled mixtures of a synthetic ensemble, its errors known: ``(w, mu, sd), z_true``.

    ``"wide"``: two 3-component MDN members 2.5 times too wide and biased by +0.02 (1 + z);
    ``"narrow"``: a point ensemble whose member spread is a third of its real error.
    """
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.05, 1.5, n)
    error = 0.03 * (1 + z)
    centre = z + rng.normal(0.0, error)
    if kind == "wide":
        mu = centre[:, None] + 0.02 * (1 + z[:, None]) + rng.normal(0.0, 0.004, (n, 6))
        return (np.full((n, 6), 1 / 6), mu, np.repeat(2.5 * error[:, None], 6, axis=1)), z
    return (np.ones((n, 1)), centre[:, None], error[:, None] / 3), z


def pit_of(mixtures, z):
    return mixture.cdf(z[:, None], *mixtures)[:, 0]


@pytest.mark.parametrize("kind", ["wide", "narrow"])
def test_calibration_fitted_on_some_rows_makes_the_pit_of_other_rows_uniform(kind):
    (w, mu, sd), z = miscalibrated(6000, kind)
    fit, test = slice(0, 3000), slice(3000, None)
    before = pit_scores(pit_of((w[test], mu[test], sd[test]), z[test]))
    assert before["pit_ks"] > 0.15 and abs(before["coverage_68"] - 0.683) > 0.2
    calibration = fit_calibration(w[fit], mu[fit], sd[fit], z[fit])
    after = pit_scores(pit_of(calibration.apply(w[test], mu[test], sd[test]), z[test]))
    assert after["pit_ks"] < 0.03 and abs(after["coverage_68"] - 0.683) < 0.03
    assert calibration.after["pit_ks"] < 0.03 and calibration.before["pit_ks"] > 0.15
    assert calibration.n_bins == MAX_BINS  # 3000 rows: as many bins as allowed
    assert fit_calibration(w[:600], mu[:600], sd[:600], z[:600]).n_bins == 600 // ROWS_PER_BIN


def test_the_calibrated_pdf_is_still_an_exact_mixture_and_no_pdf_rows_stay_so():
    (w, mu, sd), z = miscalibrated(400, "wide")
    w[:3] = 0.0  # "no estimate" rows
    calibration = fit_calibration(w, mu, sd, z)
    w2, mu2, sd2 = calibration.apply(w, mu, sd)
    assert w2 is w and mu2.shape == mu.shape and (sd2 > 0).all()
    np.testing.assert_array_equal(mu2[:3], mu[:3])
    np.testing.assert_array_equal(sd2[:3], sd[:3])
    assert np.isnan(mixture.summarise(w2, mu2, sd2)["z_phot"][:3]).all()


def test_identity_calibration_changes_nothing():
    (w, mu, sd), _ = miscalibrated(50, "wide")
    identity = Calibration((), (0.0,), (1.0,), (0.0,), "nothing", 0)
    out = identity.apply(w, mu, sd)
    np.testing.assert_allclose(out[1], mu)
    np.testing.assert_allclose(out[2], sd)


def test_too_few_rows_to_calibrate_on():
    (w, mu, sd), z = miscalibrated(40, "wide")
    with pytest.raises(ValueError, match="too few"):
        fit_calibration(w, mu, sd, z)


def test_no_shift_moves_a_mode_below_zero():
    cal = Calibration((), (-0.3,), (1.0,), (0.0,), "test", 100)
    w, mu, sd = np.ones((3, 1)), np.array([[0.02], [0.1], [1.0]]), np.full((3, 1), 0.05)
    _, means, _ = cal.apply(w, mu, sd)
    assert means[:, 0] == pytest.approx([0.0, 0.0, 1.0 - 0.3 * 2.0])


def test_a_fit_that_worsens_its_own_rows_coverage_is_refused(monkeypatch):
    (w, mu, sd), z = miscalibrated(3000, "wide")  # 68 % coverage ~96 %
    monkeypatch.setattr(calibration, "_fit_bin", lambda *args: (0.0, 0.05, 0.0))  # far too narrow
    with pytest.raises(CalibrationRefused, match="68 % coverage from"):
        fit_calibration(w, mu, sd, z)


def biased_bimodal(n, seed=0):
    """An under-trained MDN's pooled p(z): a narrow peak at ``2 z + 1`` (a median bias of about
    -0.5 (1 + z_phot)) scattered by 0.2 (1 + z), and two wide components either side of it."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.05, 1.5, n)
    peak = 2 * z + 1 + rng.normal(0.0, 0.2 * (1 + z))
    mu = np.stack([peak, peak + 0.6 * (1 + z), peak - 1.0 * (1 + z)], axis=1)
    sd = np.stack([0.1 * (1 + z), 1.5 * (1 + z), 1.5 * (1 + z)], axis=1)
    return (np.tile([0.5, 0.25, 0.25], (n, 1)), mu, sd), z


def test_the_grid_scores_exactly_what_apply_does():
    (w, mu, sd), z = biased_bimodal(200)
    mu[:20] -= mu[:20, :1] + 0.1  # modes at -0.1: the z >= 0 guard moves them
    m = mixture.mode(w, mu, sd)
    for s, t, f in [(-0.48, 0.1, 0.06), (0.2, 0.5, 0.0), (-0.1, 1.0, 0.2)]:
        ks, miss = calibration._grid_objective(w, mu, sd, z, m, s, np.array([t]), np.array([f]))
        applied = pit_scores(pit_of(Calibration((), (s,), (t,), (f,), "test", 200).apply(w, mu, sd), z))
        assert ks[0, 0] == pytest.approx(applied["pit_ks"], abs=1e-12)
        assert miss[0, 0] == pytest.approx(abs(applied["coverage_68"] - calibration.COVERAGE_68), abs=1e-12)


def test_a_large_shift_with_a_floor_is_fitted_as_it_is_applied():
    # the floor is f (1 + m) of the unshifted mode; scored at the shifted mode's 1 + m' ~ (1 + m) / 2
    # the fit chose twice the floor it needed, and its coverage went from 59 % to 89.5 %: refused
    (w, mu, sd), z = biased_bimodal(200)
    fitted = fit_calibration(w, mu, sd, z)
    assert fitted.shift[0] < -0.4 and fitted.floor[0] > 0
    assert abs(fitted.after["coverage_68"] - calibration.COVERAGE_68) < 0.02
    assert fitted.after["pit_ks"] < 0.1 < 0.7 < fitted.before["pit_ks"]


def test_a_biased_pdf_whose_coverage_is_right_by_chance_is_still_shifted():
    """A bin whose p(z) covers exactly 68.3 % but puts most misses on one side (median PIT ~0.35):
    the fit may move the coverage within the refusal's tolerance to remove the bias, rather than
    keep the p(z) as it is (SDSS MGS, 5 DEEPZ members, reweighted: PIT KS 0.17 in such a bin)."""
    from scipy.special import ndtri

    pit_values = np.concatenate(
        [np.linspace(0.005, 0.15, 70), np.linspace(0.17, 0.83, 164), np.linspace(0.85, 0.99, 6)]
    )
    n = pit_values.size  # 240 rows: one bin
    mu, sd = np.full((n, 2), 0.5), np.full((n, 2), 0.03)
    z = 0.5 + 0.03 * ndtri(pit_values)
    w = np.full((n, 2), 0.5)
    before = pit_scores(pit_of((w, mu, sd), z))
    assert abs(before["coverage_68"] - calibration.COVERAGE_68) < 1e-3 and before["pit_ks"] > 0.12
    fitted = fit_calibration(w, mu, sd, z)
    assert fitted.shift[0] < 0 and fitted.after["pit_ks"] < before["pit_ks"] / 2
    assert abs(fitted.after["coverage_68"] - calibration.COVERAGE_68) <= calibration.COVERAGE_TOLERANCE
