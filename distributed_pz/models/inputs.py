"""From a tile's arrays to model inputs: band selection, coadds, augmentation, standardisation.

One path serves training and prediction, so both see the same features:

1. :func:`batch_tensors` — the rows and bands a model needs, as float tensors on a device;
2. :func:`raw_features` — catalogue values (NaN where missing), cutouts and input flags, with
   the training augmentations (randomized coadds, whole-pixel cutout moves) when asked;
3. :func:`model_inputs` — standardised with the bundle's :class:`FeatureStats`, NaN-free.

:func:`fit_feature_stats` computes the statistics on training rows (no augmentation).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from distributed_pz.bands import DEFAULT_ZEROPOINT_SCATTER_MAG, get_band_set
from distributed_pz.catalog import Flag
from distributed_pz.models.augment import jitter_zeropoints, move_cutouts, random_coadd, random_cutout_moves
from distributed_pz.models.features import (
    FeatureStats,
    InputSpec,
    coadd_exposures,
    fit_robust_stats,
    flux_ratio_features,
    flux_to_mag,
    mag_colour_features,
    mag_to_flux,
    standardize_with_mask,
    stretch_image,
)
from distributed_pz.survey.store.schema import CLASS_UNKNOWN
from distributed_pz.survey.store.tiles import TileArrays

IGNORE_CLASS = -100
"""Class target of rows without a usable label (ignored by the cross-entropy)."""
IMAGE_STATS_ROWS = 4096
"""Cutouts used to fit the image statistics (evenly spaced rows)."""


def batch_tensors(
    tile: TileArrays,
    spec: InputSpec,
    rows: np.ndarray | slice | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, torch.Tensor]:
    """The arrays ``spec`` needs for ``rows`` of ``tile``, bands in the model's order.

    Returns
    -------
    dict with, as needed: ``mag`` ``(N, B)``; ``flux_exp``, ``flux_exp_err`` ``(N, B, E)`` or
    ``flux`` ``(N, B)`` (both at the tile's zero points) and, for a reference magnitude,
    ``reference_zeropoint`` ``(N,)`` (the reference band's); ``cutout`` ``(N, C, P, P)``; targets
    ``z`` ``(N,)`` and ``class`` ``(N,)`` (int64, :data:`IGNORE_CLASS` where unknown) when the
    tile has them.
    """
    rows = slice(None) if rows is None else rows
    a = tile.arrays

    def tensor(x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)

    reads = spec.arrays(a.keys())
    out: dict[str, torch.Tensor] = {}
    if spec.catalog != "none":
        idx = tile.band_indices(spec.bands)
        if spec.catalog == "mag_colour":
            out["mag"] = tensor(a["mag"][rows][:, idx])
        elif "flux_exp" in reads:
            out["flux_exp"] = tensor(a["flux_exp"][rows][:, idx])
            out["flux_exp_err"] = tensor(a["flux_exp_err"][rows][:, idx])
        else:
            zp = tensor(np.array([tile.zeropoint(b) for b in spec.bands]))
            out["flux"] = mag_to_flux(tensor(a["mag"][rows][:, idx]), zp)
        if spec.reference_magnitude:
            n = next(iter(out.values())).shape[0]
            out["reference_zeropoint"] = tensor(np.full(n, tile.zeropoint(spec.reference_band)))
    if "cutout" in reads:
        out["cutout"] = tensor(a["cutout"][rows][:, tile.image_band_indices(spec.image_bands)])
    if "z_spec" in a:
        out["z"] = tensor(a["z_spec"][rows])
    if "class" in a:
        labels = np.asarray(a["class"][rows]).astype(np.int64)
        out["class"] = tensor(np.where(labels == CLASS_UNKNOWN, IGNORE_CLASS, labels), torch.int64)
    return out


def raw_features(
    spec: InputSpec,
    batch: dict[str, torch.Tensor],
    *,
    coadd_alpha: float | None = None,
    max_shift: int | None = None,
    zeropoint_jitter: tuple[Sequence[float], Sequence[float]] | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Unstandardised features of a batch, with optional training augmentation.

    Parameters
    ----------
    spec
        The model's inputs.
    batch
        Output of :func:`batch_tensors`.
    coadd_alpha
        Randomized coadds keeping each exposure with this probability (``None`` = all exposures).
    max_shift
        Random quarter turns, flips and circular shifts up to this many pixels (``None`` = none).
    zeropoint_jitter
        ``(tile_mag, exposure_mag)``: random zero-point offsets per source and band (and
        exposure) of these RMS, in the model's band order
        (:func:`~distributed_pz.models.augment.jitter_zeropoints`; ``None`` = none).
    generator
        Random source of the augmentations.

    Returns
    -------
    dict with ``catalog`` ``(N, F)`` (NaN = missing) and/or ``image`` ``(N, C, P, P)``, and
    ``flags`` ``(N,)`` int32 (bits from :mod:`distributed_pz.models.features`).
    """
    if zeropoint_jitter is not None and spec.catalog != "none":
        batch = jitter_zeropoints(batch, *zeropoint_jitter, generator=generator)
    raw: dict[str, torch.Tensor] = {}
    n = next(iter(batch.values())).shape[0]
    device = next(iter(batch.values())).device
    flags = torch.zeros(n, dtype=torch.int32, device=device)
    if spec.catalog == "mag_colour":
        raw["catalog"] = mag_colour_features(batch["mag"])
    elif spec.catalog == "flux_ratio":
        if "flux_exp" in batch and coadd_alpha is not None and coadd_alpha < 1:
            flux, _ = random_coadd(batch["flux_exp"], batch["flux_exp_err"], coadd_alpha, generator)
        elif "flux_exp" in batch:
            flux, _ = coadd_exposures(batch["flux_exp"], batch["flux_exp_err"])
        else:
            flux = batch["flux"]
        ref_index = spec.bands.index(spec.reference_band)
        reference = flux[:, ref_index]
        flags |= torch.where(torch.isfinite(reference) & (reference > 0), 0, Flag.NO_REFERENCE).int()
        raw["catalog"] = flux_ratio_features(flux, ref_index)
        if spec.reference_magnitude:
            magnitude = flux_to_mag(reference, batch["reference_zeropoint"])
            raw["catalog"] = torch.cat([raw["catalog"], magnitude[:, None]], dim=1)
        flags |= torch.where(torch.isfinite(flux).any(dim=1), 0, Flag.NO_PHOTOMETRY).int()
    if spec.catalog == "mag_colour":
        flags |= torch.where(torch.isfinite(batch["mag"]).any(dim=1), 0, Flag.NO_PHOTOMETRY).int()
    if spec.image_bands:
        image = batch["cutout"]
        if max_shift is not None:
            moves = random_cutout_moves(n, max_shift, generator, device)
            image = move_cutouts(image, moves["rot"], moves["flip"], moves["shift"])
        raw["image"] = image
        no_pixel = ~torch.isfinite(image).flatten(2).any(dim=2).all(dim=1)  # a channel without data
        flags |= torch.where(no_pixel, Flag.NO_IMAGE, 0).int()
    raw["flags"] = flags
    return raw


def model_inputs(
    spec: InputSpec, raw: dict[str, torch.Tensor], stats: FeatureStats
) -> dict[str, torch.Tensor]:
    """Standardised, NaN-free network inputs: ``catalog`` ``(N, 2F)``, ``image`` ``(N, C, P, P)``."""
    inputs: dict[str, torch.Tensor] = {}
    if "catalog" in raw:
        x = raw["catalog"]
        center = torch.tensor(stats.catalog_center, dtype=x.dtype, device=x.device)
        scale = torch.tensor(stats.catalog_scale, dtype=x.dtype, device=x.device)
        inputs["catalog"] = standardize_with_mask(x, center, scale, spec.clip)
    if "image" in raw:
        x = raw["image"]
        center = torch.tensor(stats.image_center, dtype=x.dtype, device=x.device)
        scale = torch.tensor(stats.image_scale, dtype=x.dtype, device=x.device)
        inputs["image"] = stretch_image(x, center, scale)
    return inputs


def zeropoint_scatter(
    bands: Sequence[str], band_set: str | None, scale: float = 1.0
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """Tile and exposure zero-point scatter [mag] of ``bands`` (in their order) in a survey of
    ``band_set``, times ``scale`` (:meth:`~distributed_pz.bands.BandSet.zeropoint_scatter`; the
    default scatter for an unknown set); ``None`` when ``scale`` is 0 — the ``zeropoint_jitter``
    of :func:`raw_features`."""
    if scale <= 0:
        return None
    try:
        known = get_band_set(band_set) if band_set else None
    except KeyError:
        known = None
    if known is None or not set(bands) <= set(known.bands):
        tile, exposure = (DEFAULT_ZEROPOINT_SCATTER_MAG,) * len(bands), (0.0,) * len(bands)
    else:
        tile, exposure = known.zeropoint_scatter(tuple(bands))
    return tuple(scale * t for t in tile), tuple(scale * e for e in exposure)


def fit_feature_stats(spec: InputSpec, batch: dict[str, torch.Tensor]) -> FeatureStats:
    """Robust centre and scale of each catalogue feature and image channel over training rows."""
    raw = raw_features(spec, batch)
    stats: dict[str, tuple[float, ...]] = {}
    if "catalog" in raw:
        center, scale = fit_robust_stats(raw["catalog"], dim=0)
        stats.update(catalog_center=tuple(center), catalog_scale=tuple(scale))
    if "image" in raw:
        image = raw["image"]
        pick = torch.linspace(0, len(image) - 1, min(len(image), IMAGE_STATS_ROWS)).round().long()
        center, scale = fit_robust_stats(image[pick.to(image.device)], dim=(0, 2, 3))
        stats.update(image_center=tuple(center), image_scale=tuple(scale))
    return FeatureStats(**stats)
