"""Network inputs from photometry and cutouts: pure functions of tensors.

Two catalogue encodings, one per family:

- GaZNet (Li et al. 2022 §2.2): the magnitudes of the model's bands followed by the colours of
  adjacent bands (``u-g, g-r, ...``): ``B + (B - 1)`` values.
- DEEPZ (Eriksen et al. 2020 §2.2): fluxes divided by the flux of a reference band (i), the
  reference band itself left out: ``B - 1`` values; with ``reference_magnitude`` the reference
  band's magnitude follows (``B`` values), so the network also knows how bright a source is.

A missing measurement (NaN magnitude or flux, a colour with a missing band, a ratio over a
missing or non-positive reference flux) becomes the fill value 0 after standardisation and a 1
in a mask appended to the vector, so the network input is ``[values (F), missing (F)]`` and
never holds a NaN. Standardisation uses robust statistics (median, 1.4826 × MAD) of the
training set, clipped at ±``clip``; they are stored in the model bundle.

Cutouts (flux per pixel) are stretched per channel with ``asinh((x - sky) / noise)`` where sky
and noise are the channel's median and 1.4826 × MAD over training pixels: linear at the noise
level, logarithmic in bright cores, no resampling.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch

CatalogKind = Literal["mag_colour", "flux_ratio", "none"]
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class InputSpec:
    """What a model reads from a tile: derived from its config, used by training and prediction.

    Parameters
    ----------
    catalog
        Catalogue encoding: ``"mag_colour"`` (GaZNet), ``"flux_ratio"`` (DEEPZ) or ``"none"``.
    bands
        Catalogue bands, in the order of the feature vector (bluest first).
    image_bands
        Cutout channels the model reads, in order; empty for catalogue-only models.
    reference_band
        Denominator of the flux ratios (``"flux_ratio"`` only).
    use_exposures
        ``"flux_ratio"`` only: build fluxes from ``flux_exp`` (randomized coadds while
        training) when the tile has them, else from ``mag``.
    reference_magnitude
        ``"flux_ratio"`` only: append the reference band's magnitude, from the same flux as the
        ratios and the tile's zero point, as one more catalogue value.
    clip
        Standardised catalogue values are clipped to ``[-clip, clip]``.
    """

    catalog: CatalogKind
    bands: tuple[str, ...] = ()
    image_bands: tuple[str, ...] = ()
    reference_band: str = "i"
    use_exposures: bool = True
    reference_magnitude: bool = False
    clip: float = 10.0

    def __post_init__(self) -> None:
        if self.reference_magnitude and self.catalog != "flux_ratio":
            raise ValueError(f"a reference magnitude needs the flux_ratio encoding, not {self.catalog!r}")
        if self.catalog == "flux_ratio" and self.reference_band not in self.bands:
            raise ValueError(f"reference band {self.reference_band!r} is not among the bands {self.bands}")
        if self.catalog != "none" and len(self.bands) < 2:
            raise ValueError(f"catalogue features need at least two bands, got {self.bands}")

    @property
    def n_catalog(self) -> int:
        """Number of catalogue feature values ``F`` (the network input is ``2 F`` with the mask)."""
        nb = len(self.bands)
        if self.catalog == "flux_ratio":
            return nb - 1 + int(self.reference_magnitude)
        return {"mag_colour": 2 * nb - 1, "none": 0}[self.catalog]

    @property
    def n_image(self) -> int:
        return len(self.image_bands)

    def arrays(self, available: Collection[str]) -> list[str]:
        """Tile arrays this input reads, for a tile holding the arrays ``available``.

        ``flux_exp`` and ``flux_exp_err`` for flux ratios with ``use_exposures`` when the tile
        has ``flux_exp``, else ``mag`` for a catalogue encoding; ``cutout`` when there are image
        bands. Arrays the input cannot do without are listed even when not ``available`` (so a
        caller can say which are missing). The one answer to "which arrays does this model read".
        """
        names = []
        if self.catalog == "flux_ratio" and self.use_exposures and "flux_exp" in available:
            names += ["flux_exp", "flux_exp_err"]
        elif self.catalog != "none":
            names.append("mag")
        if self.image_bands:
            names.append("cutout")
        return names


@dataclass(frozen=True)
class FeatureStats:
    """Standardisation statistics fitted on training data (one value per feature or channel)."""

    catalog_center: tuple[float, ...] = ()
    catalog_scale: tuple[float, ...] = ()
    image_center: tuple[float, ...] = ()
    image_scale: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name, values in asdict(self).items():
            object.__setattr__(self, name, tuple(float(v) for v in values))

    def to_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureStats:
        return cls(**{k: tuple(v) for k, v in d.items()})


def mag_to_flux(mag: torch.Tensor, zeropoint: torch.Tensor | float) -> torch.Tensor:
    """AB magnitudes to linear fluxes, ``10**(-0.4 (mag - zp))``; NaN stays NaN."""
    return torch.pow(10.0, -0.4 * (mag - zeropoint))


def flux_to_mag(flux: torch.Tensor, zeropoint: torch.Tensor | float) -> torch.Tensor:
    """Linear fluxes to AB magnitudes, ``zp - 2.5 log10(flux)``; NaN where the flux is missing or not positive."""
    positive = torch.where(flux > 0, flux, torch.full_like(flux, float("nan")))
    return zeropoint - 2.5 * torch.log10(positive)


def adjacent_colours(mag: torch.Tensor) -> torch.Tensor:
    """Colours of adjacent bands, ``mag[:, b] - mag[:, b + 1]``: ``(N, B) -> (N, B - 1)``."""
    return mag[:, :-1] - mag[:, 1:]


def mag_colour_features(mag: torch.Tensor) -> torch.Tensor:
    """GaZNet catalogue values: magnitudes then adjacent colours, ``(N, B) -> (N, 2B - 1)``."""
    return torch.cat([mag, adjacent_colours(mag)], dim=1)


def flux_ratio_features(flux: torch.Tensor, reference: int) -> torch.Tensor:
    """DEEPZ catalogue values: ``flux[:, b] / flux[:, reference]`` for ``b != reference``.

    ``(N, B) -> (N, B - 1)``; a row whose reference flux is missing or not positive is all NaN.
    """
    ref = flux[:, reference : reference + 1]  # (N, 1)
    ref = torch.where(ref > 0, ref, torch.full_like(ref, float("nan")))
    keep = [b for b in range(flux.shape[1]) if b != reference]
    return flux[:, keep] / ref


def coadd_exposures(
    flux_exp: torch.Tensor, flux_exp_err: torch.Tensor, keep: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse-variance coadd of individual exposures.

    Parameters
    ----------
    flux_exp, flux_exp_err
        ``(N, B, E)`` fluxes and 1σ errors; NaN (or a non-positive error) marks an absent exposure.
    keep
        Optional boolean ``(N, B, E)``: exposures to use (absent ones are never used).

    Returns
    -------
    flux, flux_err
        ``(N, B)`` coadded flux and its error; NaN where no exposure is used.
    """
    present = torch.isfinite(flux_exp) & torch.isfinite(flux_exp_err) & (flux_exp_err > 0)
    if keep is not None:
        present = present & keep
    weight = torch.where(
        present, flux_exp_err.clamp_min(1e-30).pow(-2), torch.zeros_like(flux_exp)
    )  # (N, B, E)
    flux = torch.where(present, flux_exp, torch.zeros_like(flux_exp))
    total = weight.sum(dim=2)  # (N, B)
    nan = torch.full_like(total, float("nan"))
    coadd = torch.where(total > 0, (weight * flux).sum(dim=2) / total.clamp_min(1e-30), nan)
    error = torch.where(total > 0, total.clamp_min(1e-30).rsqrt(), nan)
    return coadd, error


def fit_robust_stats(values: torch.Tensor, dim: int | tuple[int, ...] = 0) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826 × MAD of finite values along ``dim``, per remaining index.

    Features with no finite value get center 0, scale 1; a zero MAD falls back to the
    standard deviation, then to 1.
    """
    x = values.detach().double().cpu().numpy()
    axes = (dim,) if isinstance(dim, int) else dim
    x = np.moveaxis(x, axes, tuple(range(len(axes))))
    x = x.reshape(int(np.prod(x.shape[: len(axes)])), -1)  # (samples, features)
    center = np.zeros(x.shape[1])
    scale = np.ones(x.shape[1])
    for j in range(x.shape[1]):
        col = x[:, j][np.isfinite(x[:, j])]
        if col.size == 0:
            continue
        center[j] = np.median(col)
        mad = MAD_TO_SIGMA * np.median(np.abs(col - center[j]))
        std = col.std()
        scale[j] = mad if mad > 0 else (std if std > 0 else 1.0)
    return center, scale


def standardize_with_mask(
    values: torch.Tensor, center: torch.Tensor, scale: torch.Tensor, clip: float
) -> torch.Tensor:
    """``[(x - center) / scale clipped, missing]``: ``(N, F) -> (N, 2F)``, NaN -> 0 with mask 1."""
    missing = ~torch.isfinite(values)
    z = ((values - center) / scale).clamp(-clip, clip)
    z = torch.where(missing, torch.zeros_like(z), z)
    return torch.cat([z, missing.to(z.dtype)], dim=1)


def stretch_image(cutout: torch.Tensor, center: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``asinh((x - sky) / noise)`` per channel, non-finite pixels -> 0: ``(N, C, H, W)``."""
    z = torch.asinh((cutout - center.view(1, -1, 1, 1)) / scale.view(1, -1, 1, 1))
    return torch.where(torch.isfinite(z), z, torch.zeros_like(z))
