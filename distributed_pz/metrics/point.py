"""Point-estimate metrics of photometric redshifts against spectroscopic ones.

Every metric is a function of the normalised residual

    δz = (z_phot − z_spec) / (1 + z_spec)

as in GaZNet (Li et al. 2022, eq. 3) and DEEPZ (Eriksen et al. 2020, eq. 5). The inputs are
assumed finite (callers drop bad rows); an empty input gives NaN, never a warning.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

OUTLIER_THRESHOLD = 0.15
"""Catastrophic outlier threshold on |δz| used for broad-band surveys (GaZNet eq. 3)."""
STRICT_OUTLIER_THRESHOLD = 0.02
"""The 'strict' outlier threshold of DEEPZ (Eriksen et al. 2020, eq. 5)."""
NMAD_SCALE = 1.4826
"""Makes the median absolute deviation equal to σ for a Gaussian."""
SIGMA68_QUANTILES = (0.5 * math.erfc(1 / math.sqrt(2)), 0.5 * math.erfc(-1 / math.sqrt(2)))
"""The 15.87 and 84.13 percentiles (Φ(∓1)): σ68 equals σ for a Gaussian (DEEPZ eq. 4)."""
POINT_METRIC_NAMES = ("bias", "nmad", "sigma68", "outlier_fraction", "strict_outlier_fraction")
"""Keys of :func:`point_metrics` besides the count ``n``, in display order."""


def delta_z(z_phot: ArrayLike, z_spec: ArrayLike) -> NDArray[np.float64]:
    """Normalised residual δz = (z_phot − z_spec) / (1 + z_spec).

    Parameters
    ----------
    z_phot, z_spec
        Photometric and spectroscopic redshifts, same shape.

    Returns
    -------
    numpy.ndarray
        δz, float64, same shape as the inputs.
    """
    z_phot = np.asarray(z_phot, dtype=np.float64)
    z_spec = np.asarray(z_spec, dtype=np.float64)
    if z_phot.shape != z_spec.shape:
        raise ValueError(f"z_phot {z_phot.shape} and z_spec {z_spec.shape} differ in shape")
    return (z_phot - z_spec) / (1.0 + z_spec)


def bias(z_phot: ArrayLike, z_spec: ArrayLike) -> float:
    """Mean bias: the mean of δz (GaZNet's μ_δz)."""
    dz = delta_z(z_phot, z_spec)
    return float(dz.mean()) if dz.size else np.nan


def nmad(z_phot: ArrayLike, z_spec: ArrayLike) -> float:
    """Normalised median absolute deviation, 1.4826 · median(|δz − median(δz)|) (GaZNet eq. 4)."""
    dz = delta_z(z_phot, z_spec)
    if not dz.size:
        return np.nan
    return float(NMAD_SCALE * np.median(np.abs(dz - np.median(dz))))


def outlier_fraction(z_phot: ArrayLike, z_spec: ArrayLike, threshold: float = OUTLIER_THRESHOLD) -> float:
    """Fraction of sources with |δz| > ``threshold``.

    Parameters
    ----------
    z_phot, z_spec
        Photometric and spectroscopic redshifts.
    threshold
        0.15 for GaZNet's catastrophic outliers; 0.02 for DEEPZ's strict outliers.
    """
    dz = delta_z(z_phot, z_spec)
    return float(np.mean(np.abs(dz) > threshold)) if dz.size else np.nan


def sigma68(z_phot: ArrayLike, z_spec: ArrayLike) -> float:
    """Half the 15.87–84.13 percentile range of δz (DEEPZ eq. 4, σ68/(1+z)).

    Percentiles use numpy's default linear interpolation.
    """
    dz = delta_z(z_phot, z_spec)
    if not dz.size:
        return np.nan
    lo, hi = np.quantile(dz, SIGMA68_QUANTILES)
    return float(0.5 * (hi - lo))


def point_metrics(
    z_phot: ArrayLike,
    z_spec: ArrayLike,
    outlier_threshold: float = OUTLIER_THRESHOLD,
    strict_threshold: float = STRICT_OUTLIER_THRESHOLD,
) -> dict[str, float]:
    """Every point metric of one sample.

    Parameters
    ----------
    z_phot, z_spec
        Photometric and spectroscopic redshifts, finite, same shape.
    outlier_threshold, strict_threshold
        |δz| thresholds of ``outlier_fraction`` and ``strict_outlier_fraction``.

    Returns
    -------
    dict
        ``n`` and the keys of :data:`POINT_METRIC_NAMES`.
    """
    return {
        "n": int(np.size(z_spec)),
        "bias": bias(z_phot, z_spec),
        "nmad": nmad(z_phot, z_spec),
        "sigma68": sigma68(z_phot, z_spec),
        "outlier_fraction": outlier_fraction(z_phot, z_spec, outlier_threshold),
        "strict_outlier_fraction": outlier_fraction(z_phot, z_spec, strict_threshold),
    }


def interval_coverage(lo: ArrayLike, hi: ArrayLike, z_spec: ArrayLike) -> float:
    """Fraction of sources whose spectroscopic redshift lies in ``[lo, hi]``.

    Used for the catalogue's own interval columns (``z_lo68``, ``z_hi68``); a calibrated
    68 % interval covers 68 % of the sources.
    """
    lo, hi, z_spec = (np.asarray(a, dtype=np.float64) for a in (lo, hi, z_spec))
    return float(np.mean((lo <= z_spec) & (z_spec <= hi))) if z_spec.size else np.nan
