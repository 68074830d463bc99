"""The calibration stage of ``dpz train``: fitted on the out-of-fold galaxies, the OOF catalogue cross-fitted."""

from __future__ import annotations

import numpy as np

from distributed_pz.metrics import mixture
from distributed_pz.models.calibration import pit_scores
from distributed_pz.train.calibrate import calibrate_oof
from tests.models.test_calibration import miscalibrated


def combined_of(mixtures):
    w, mu, sd = mixtures
    return {"pdf_weights": w, "pdf_means": mu, "pdf_sigmas": sd, "n_members": np.full(len(w), 2)}


def test_the_cross_fitted_oof_pit_is_uniform_and_stars_do_not_steer_the_fit():
    (w, mu, sd), z = miscalibrated(4000, "narrow", seed=3)
    z = z.copy()
    star = np.arange(len(z)) % 10 == 0
    z[star] = 0.0  # stars: z = 0 whatever the p(z) says
    calibration, oof = calibrate_oof(combined_of((w, mu, sd)), z, seed=1, fit_rows=~star)
    assert calibration.n_rows == (~star).sum() and calibration.fitted_on == "out-of-fold galaxies"
    pit = mixture.cdf(z[:, None], oof["pdf_weights"], oof["pdf_means"], oof["pdf_sigmas"])[:, 0]
    galaxies = pit_scores(pit[~star])
    assert galaxies["pit_ks"] < 0.03 and abs(galaxies["coverage_68"] - 0.683) < 0.03
    assert set(oof) >= {"z_phot", "z_mean", "z_std", "odds", "n_members"}
    np.testing.assert_allclose(
        oof["z_mean"], mixture.moments(oof["pdf_weights"], oof["pdf_means"], oof["pdf_sigmas"])[0], rtol=1e-5
    )
