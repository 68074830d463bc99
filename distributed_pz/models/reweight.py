"""Weights that make a spectroscopic sample look like the photometric sample it calibrates.

A spectroscopic training sample is never a fair draw of the survey: it is brighter, and its
galaxies are easier. A p(z) calibration fitted on it is tuned to its errors, not to the
survey's. :func:`target_weights` gives each calibration row the ratio of the target's density
to the calibration sample's density at its photometry — the nearest-neighbour estimator of
Lima et al. (2008, MNRAS 390, 118): around each row, the sphere holding its ``k`` nearest
calibration rows, and the share of the target's rows inside the same sphere. The fit
(:func:`distributed_pz.models.calibration.fit_calibration` with ``row_weights``) is then
tuned to the target's mix of sources. Only photometry is used: the target needs no redshifts.
"""

from __future__ import annotations

import numpy as np

NEIGHBOURS = 20
"""Calibration rows in each row's sphere (Lima et al. use 5–20; fewer is noisier)."""
MAX_TARGET_ROWS = 200_000
"""Target rows used at most (a seeded subsample beyond it): the density needs no more."""


def photometric_features(mag: np.ndarray, reference: int) -> np.ndarray:
    """``(N, B)`` features of ``(N, B)`` magnitudes: the reference band's magnitude and the
    ``B - 1`` adjacent colours, bluer minus redder (non-finite where a band is missing)."""
    mag = np.asarray(mag, np.float64)
    return np.column_stack([mag[:, reference], mag[:, :-1] - mag[:, 1:]])


def reference_index(mag: np.ndarray, mag_err: np.ndarray) -> int:
    """The band that measures brightness best: the most finite magnitudes, then the smallest
    median error."""
    finite = np.isfinite(mag).sum(axis=0)
    errors = np.where(np.isfinite(mag_err), mag_err, np.inf)
    median_error = np.array([np.median(e) for e in errors.T])
    return int(np.lexsort((median_error, -finite))[0])


def target_weights(
    calibration: np.ndarray,
    target: np.ndarray,
    neighbours: int = NEIGHBOURS,
    seed: int = 0,
) -> np.ndarray:
    """Per-row weights of the ``calibration`` features that reweight them to the ``target``'s.

    Parameters
    ----------
    calibration, target
        ``(N, D)`` and ``(M, D)`` features (:func:`photometric_features`). A non-finite value
        is filled with the calibration rows' median of that feature; each feature is scaled by
        the calibration rows' standard deviation.
    neighbours
        ``k``: calibration rows in each row's sphere.
    seed
        Seeds the subsample of a target with more than :data:`MAX_TARGET_ROWS` rows.

    Returns
    -------
    np.ndarray
        ``(N,)`` weights with mean 1 over the calibration rows; 0 where no target row is near.

    Raises
    ------
    ValueError
        Fewer calibration rows than ``neighbours + 1``, an empty target, or a feature count that
        differs between the two.
    """
    from scipy.spatial import cKDTree  # imported when first needed: dpz predict's start stays short

    calibration, target = np.asarray(calibration, np.float64), np.asarray(target, np.float64)
    if calibration.ndim != 2 or target.ndim != 2 or calibration.shape[1] != target.shape[1]:
        raise ValueError(
            f"calibration features {calibration.shape} and target features {target.shape} "
            "must be two tables with the same columns"
        )
    if len(calibration) <= neighbours or not len(target):
        raise ValueError(
            f"reweighting needs more than {neighbours} calibration rows and a non-empty target; "
            f"got {len(calibration)} and {len(target)}"
        )
    if len(target) > MAX_TARGET_ROWS:
        target = target[np.random.default_rng(seed).choice(len(target), MAX_TARGET_ROWS, replace=False)]
    fill = np.nanmedian(np.where(np.isfinite(calibration), calibration, np.nan), axis=0)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    scale = np.nanstd(np.where(np.isfinite(calibration), calibration, np.nan), axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    a, b = ((np.where(np.isfinite(x), x, fill) - fill) / scale for x in (calibration, target))
    radius = cKDTree(a).query(a, k=neighbours + 1)[0][:, -1]  # the row itself is its 0th neighbour
    inside = cKDTree(b).query_ball_point(a, radius, return_length=True)
    ratio = (inside / len(b)) / (neighbours / len(a))
    if not ratio.any():
        raise ValueError("no target row lies near any calibration row: the samples do not overlap")
    return ratio / ratio.mean()
