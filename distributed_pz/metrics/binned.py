"""Point metrics in bins of a variable, and as a function of a quality cut.

Both return numpy structured arrays, one row per bin (or per cut), with the count ``n`` and
every metric of :func:`distributed_pz.metrics.point.point_metrics`; ``rows_to_dicts`` turns
them into JSON-ready lists.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from distributed_pz.metrics.point import (
    OUTLIER_THRESHOLD,
    POINT_METRIC_NAMES,
    STRICT_OUTLIER_THRESHOLD,
    point_metrics,
)

BINNED_DTYPE = np.dtype(
    [("lo", "f8"), ("hi", "f8"), ("n", "i8")] + [(name, "f8") for name in POINT_METRIC_NAMES]
)
"""One row per bin: edges ``[lo, hi)`` (the last bin is closed), count and metrics."""
COMPLETENESS_DTYPE = np.dtype(
    [("completeness", "f8"), ("quality_min", "f8"), ("n", "i8")]
    + [(name, "f8") for name in POINT_METRIC_NAMES]
)
"""One row per cut: fraction kept, lowest kept quality value, count and metrics."""
DEFAULT_COMPLETENESS = tuple(np.round(np.arange(0.05, 1.0001, 0.05), 2))
"""Fractions kept at which :func:`completeness_curve` is evaluated."""


def binned_point_metrics(
    z_phot: ArrayLike,
    z_spec: ArrayLike,
    by: ArrayLike,
    edges: ArrayLike,
    outlier_threshold: float = OUTLIER_THRESHOLD,
    strict_threshold: float = STRICT_OUTLIER_THRESHOLD,
) -> NDArray[np.void]:
    """Point metrics in bins of ``by`` (z_spec, z_phot, a magnitude, ...).

    Parameters
    ----------
    z_phot, z_spec
        Photometric and spectroscopic redshifts, finite, shape [N].
    by
        The binning variable, shape [N]; NaN values fall in no bin.
    edges
        Increasing bin edges, shape [M + 1]; bins are ``[lo, hi)``, the last one ``[lo, hi]``.
    outlier_threshold, strict_threshold
        As in :func:`~distributed_pz.metrics.point.point_metrics`.

    Returns
    -------
    numpy.ndarray
        Structured array of :data:`BINNED_DTYPE`, shape [M]; empty bins have ``n = 0`` and NaN metrics.
    """
    z_phot = np.asarray(z_phot, dtype=np.float64)
    z_spec = np.asarray(z_spec, dtype=np.float64)
    by = np.asarray(by, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("edges must be a strictly increasing 1-D array of at least two values")
    if by.shape != z_spec.shape:
        raise ValueError(f"by {by.shape} and z_spec {z_spec.shape} differ in shape")
    index = np.searchsorted(edges, by, side="right") - 1  # (N,)
    index[by == edges[-1]] = edges.size - 2
    out = np.zeros(edges.size - 1, dtype=BINNED_DTYPE)
    out["lo"], out["hi"] = edges[:-1], edges[1:]
    for i in range(out.size):
        sel = index == i
        row = point_metrics(z_phot[sel], z_spec[sel], outlier_threshold, strict_threshold)
        for name, value in row.items():
            out[i][name] = value
    return out


def completeness_curve(
    quality: ArrayLike,
    z_phot: ArrayLike,
    z_spec: ArrayLike,
    completeness: ArrayLike = DEFAULT_COMPLETENESS,
    outlier_threshold: float = OUTLIER_THRESHOLD,
    strict_threshold: float = STRICT_OUTLIER_THRESHOLD,
) -> NDArray[np.void]:
    """Point metrics of the best-quality fraction of the sample (DEEPZ Fig. 9).

    For each completeness c the ``ceil(c · N)`` sources of highest ``quality`` (e.g. ODDS) are
    kept; ties are broken by input order.

    Parameters
    ----------
    quality
        Quality parameter, higher is better, shape [N]; NaN counts as the worst.
    z_phot, z_spec
        Photometric and spectroscopic redshifts, finite, shape [N].
    completeness
        Fractions kept, each in (0, 1].
    outlier_threshold, strict_threshold
        As in :func:`~distributed_pz.metrics.point.point_metrics`.

    Returns
    -------
    numpy.ndarray
        Structured array of :data:`COMPLETENESS_DTYPE`, one row per completeness value.
    """
    quality = np.asarray(quality, dtype=np.float64)
    z_phot = np.asarray(z_phot, dtype=np.float64)
    z_spec = np.asarray(z_spec, dtype=np.float64)
    completeness = np.asarray(completeness, dtype=np.float64)
    if np.any((completeness <= 0) | (completeness > 1)):
        raise ValueError("completeness values must lie in (0, 1]")
    order = np.argsort(-np.nan_to_num(quality, nan=-np.inf), kind="stable")  # best first
    out = np.zeros(completeness.size, dtype=COMPLETENESS_DTYPE)
    for i, frac in enumerate(completeness):
        keep = order[: int(np.ceil(frac * quality.size - 1e-9))]
        row = point_metrics(z_phot[keep], z_spec[keep], outlier_threshold, strict_threshold)
        out[i]["completeness"] = frac
        out[i]["quality_min"] = quality[keep[-1]] if keep.size else np.nan
        for name, value in row.items():
            out[i][name] = value
    return out


def rows_to_dicts(rows: NDArray[np.void]) -> list[dict[str, float | int]]:
    """A structured array as a list of plain dicts (Python scalars), e.g. for JSON."""
    return [{name: row[name].item() for name in rows.dtype.names} for row in rows]
