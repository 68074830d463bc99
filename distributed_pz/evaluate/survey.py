"""Evaluation as a survey is used: per tile and pooled, galaxies apart from stars and QSOs.

An ensemble is trained on the few tiles with spectroscopy and predicts every other one; each
tile has its own photometric calibration, so a p(z) can be calibrated over the survey and still
biased on every single tile. :func:`survey_summary` measures both: the pooled galaxies' point and
PDF metrics, each tile's (NMAD, median δz, PIT KS, 68 % coverage), and the spread across tiles —
the median per-tile KS and the worst tile's |median δz| in units of the pooled σ68. Stars and QSOs
(truth class) are counted apart: a star's z = 0 is a label, not a redshift.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from distributed_pz.metrics.pdf import RedshiftPDF, pit, pit_coverage, pit_uniformity
from distributed_pz.metrics.point import delta_z, point_metrics
from distributed_pz.survey.store.schema import CLASS_GALAXY, CLASS_QSO, CLASS_STAR

CLASS_NAMES = {CLASS_GALAXY: "galaxies", CLASS_STAR: "stars", CLASS_QSO: "QSOs"}
"""Truth classes and their names in reports."""


def survey_summary(
    z_phot: np.ndarray,
    z_spec: np.ndarray,
    tile: np.ndarray,
    truth_class: np.ndarray | None,
    pdf: RedshiftPDF | None,
    thresholds: tuple[float, float],
) -> dict[str, Any]:
    """Pooled and per-tile metrics of the galaxies (every source where the truth has no class).

    Parameters
    ----------
    z_phot, z_spec, tile
        ``(N,)`` the evaluated rows and the tile each comes from.
    truth_class
        ``(N,)`` truth class codes, or ``None``.
    pdf
        The rows' p(z), or ``None``.
    thresholds
        Outlier and strict-outlier |δz| thresholds.

    Returns
    -------
    dict with ``sample`` (what "galaxies" means here), ``counts`` per class, ``pooled`` (point
    metrics, ``pit_ks``, ``coverage_68``), ``tiles`` (per tile: ``n``, ``nmad``, ``bias`` — the
    median δz —, ``bias_over_sigma68``, ``pit_ks``, ``coverage_68``) and ``spread`` (``ks_median``,
    ``ks_max``, ``abs_bias_over_sigma68_median``, ``abs_bias_over_sigma68_max``, ``bias_std``).
    """
    tile = np.asarray(tile).astype(str)
    if truth_class is None:
        galaxies, sample, counts = np.ones(len(z_spec), bool), "every source (the truth has no class)", {}
    else:
        codes = np.asarray(truth_class)
        galaxies, sample = codes == CLASS_GALAXY, "galaxies (truth class)"
        counts = {name: int((codes == code).sum()) for code, name in CLASS_NAMES.items()}
    pit_values = pit(pdf, z_spec) if pdf is not None else np.full(len(z_spec), np.nan)
    pooled = _metrics(z_phot[galaxies], z_spec[galaxies], pit_values[galaxies], thresholds)
    width = pooled["sigma68"]
    tiles = {}
    for name in sorted(set(tile[galaxies])):
        rows = galaxies & (tile == name)
        m = _metrics(z_phot[rows], z_spec[rows], pit_values[rows], thresholds)
        tiles[name] = {
            "n": m["n"],
            "nmad": m["nmad"],
            "bias": m["median_bias"],
            "bias_over_sigma68": m["median_bias"] / width if width > 0 else np.nan,
            "pit_ks": m["pit_ks"],
            "coverage_68": m["coverage_68"],
        }
    return {
        "sample": sample,
        "counts": counts,
        "pooled": pooled,
        "tiles": tiles,
        "spread": _spread(tiles),
    }


def _metrics(
    z_phot: np.ndarray, z_spec: np.ndarray, pit_values: np.ndarray, thresholds: tuple[float, float]
) -> dict[str, Any]:
    out: dict[str, Any] = point_metrics(z_phot, z_spec, *thresholds) if len(z_spec) else {"n": 0}
    # a tile's shift: the median δz (the mean, point_metrics' "bias", follows its outliers)
    out["median_bias"] = float(np.median(delta_z(z_phot, z_spec))) if len(z_spec) else np.nan
    finite = pit_values[np.isfinite(pit_values)]
    out["pit_ks"] = pit_uniformity(finite)["ks"] if finite.size else np.nan
    out["coverage_68"] = pit_coverage(finite, 0.6827) if finite.size else np.nan
    if "sigma68" not in out:
        out.update(nmad=np.nan, bias=np.nan, sigma68=np.nan)
    return out


def _spread(tiles: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    if not tiles:
        return {}
    ks = np.array([t["pit_ks"] for t in tiles.values()], dtype=float)
    bias = np.array([t["bias"] for t in tiles.values()], dtype=float)
    over = np.abs([t["bias_over_sigma68"] for t in tiles.values()])
    return {
        "n_tiles": len(tiles),
        "ks_median": float(np.nanmedian(ks)) if np.isfinite(ks).any() else np.nan,
        "ks_max": float(np.nanmax(ks)) if np.isfinite(ks).any() else np.nan,
        "abs_bias_over_sigma68_median": float(np.nanmedian(over)),
        "abs_bias_over_sigma68_max": float(np.nanmax(over)),
        "bias_std": float(np.nanstd(bias)),
    }
