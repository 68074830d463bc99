"""Shared pieces: constants, the Sample container, NMAD/outliers and the review's random forest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NAME = "simulator_realism"
ZCOSMOS_BANDS = ("u", "g", "r", "i", "z", "J", "Ks")
ZCOSMOS_COLUMNS = ("u", "g", "r", "i", "z", "j", "k")
ZCOSMOS_FILTERS = ("u_megacam", "g_subaru", "r_subaru", "i_subaru", "z_subaru", "J_wfcam", "Ks_wircam")
SDSS_COLUMNS = ("zs", "u", "g", "r", "i", "z", "u-g", "g-r", "r-i", "i-z", "eu", "eg", "er", "ei", "ez")
Z_BINS = (0.05, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass
class Sample:
    """Magnitudes, errors (non-detections: mag NaN, err = 1σ limit when ``limit``) and spec-z."""

    mag: np.ndarray
    err: np.ndarray
    z: np.ndarray
    limit: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> Sample:
        return Sample(
            self.mag[rows], self.err[rows], self.z[rows], None if self.limit is None else self.limit[rows]
        )


# --- metrics and the forest ------------------------------------------------------------------
def nmad(z_phot: np.ndarray, z_spec: np.ndarray) -> float:
    d = (z_phot - z_spec) / (1 + z_spec)
    return float(1.4826 * np.median(np.abs(d - np.median(d))))


def outliers(z_phot: np.ndarray, z_spec: np.ndarray) -> float:
    return float(np.mean(np.abs(z_phot - z_spec) / (1 + z_spec) > 0.15))


def features(s: Sample, extra: np.ndarray | None = None) -> np.ndarray:
    """Magnitudes (non-detections at their limit) and adjacent colours, plus ``extra`` columns."""
    mag = s.mag.astype(np.float64).copy()
    if s.limit is not None:
        mag = np.where(np.isnan(mag), s.limit, mag)
    x = np.concatenate([mag, mag[:, :-1] - mag[:, 1:]], axis=1)
    return x if extra is None else np.concatenate([x, extra], axis=1)


def forest(x_train: np.ndarray, z_train: np.ndarray, seed: int = 0):
    """The review's random forest, fitted (missing values at the training median)."""
    from sklearn.ensemble import RandomForestRegressor

    median = np.nanmedian(x_train, axis=0)
    rf = RandomForestRegressor(
        n_estimators=200, min_samples_leaf=2, max_features=0.5, n_jobs=2, random_state=seed
    )
    rf.fit(np.where(np.isnan(x_train), median, x_train), z_train)
    return lambda x: rf.predict(np.where(np.isnan(x), median, x))
