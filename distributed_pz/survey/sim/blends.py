"""Unrecognised blends: a chance projection whose light the catalogue's aperture picks up.

Real catalogue photometry is not always one galaxy's: a second galaxy of another redshift closer
than the seeing is not deblended, and the GAaP-like aperture adds part of its light in every band,
so the colours mix two SEDs — GaZNet's outliers near bright neighbours and in apparent mergers
(Li et al. 2022, §4.1), which its CNN resolves from the cutout. Here a share of the galaxies gets
a partner (another galaxy of the same row group: its colours, scaled to be 0–3 mag fainter than
the primary in r, uniformly, so the spectroscopic redshift stays the brighter one's) at a
separation uniform in [0.3″, ``max_separation``]. Its leak into the primary's
catalogue flux is that of a Gaussian source (σ² = partner size² + PSF σ²) offset by d, seen
through the primary's Gaussian aperture (σ_w² = σ_min² + size²) and normalised by the primary's
own response:

    leak = [σ_w² / (σ_w² + σ_p²)] exp(−d² / 2(σ_w² + σ_p²)) / [σ_w² / (σ_w² + σ_psf² + size²)]

per band with that band's seeing. The cutouts draw the partner at its offset, so the image shows
what the catalogue mixed.
"""

from __future__ import annotations

import numpy as np

from distributed_pz.survey.sim.photometry import aperture_response
from distributed_pz.survey.store.schema import CLASS_GALAXY

MIN_SEPARATION_ARCSEC = 0.3
"""Closest partner: two cores this close look like one source in 0.7″ seeing."""
FAINTER_RANGE_MAG = (0.0, 3.0)
"""The partner is fainter than its primary in r by a difference drawn uniformly in this range."""


def draw_blends(
    rng: np.random.Generator,
    truth: dict[str, np.ndarray],
    fraction: float,
    max_separation: float,
    r_index: int,
) -> dict[str, np.ndarray]:
    """Partners of a share ``fraction`` of one row group's galaxies (``r_index``: the r band's column).

    Returns
    -------
    dict
        ``blend_partner`` (row of the partner within the group, −1 for none), ``blend_dx`` and
        ``blend_dy`` (its offset [arcsec]), ``blend_dimming`` (the factor on its own fluxes, 0
        for none).
    """
    n = len(truth["class"])
    is_galaxy = truth["class"] == CLASS_GALAXY
    galaxies = np.flatnonzero(is_galaxy)
    blended = is_galaxy & (rng.random(n) < fraction) & (len(galaxies) > 1)
    pick = galaxies[rng.integers(0, max(len(galaxies), 1), n)] if len(galaxies) else np.zeros(n, int)
    blended &= pick != np.arange(n)
    separation = rng.uniform(MIN_SEPARATION_ARCSEC, max_separation, n)
    angle = rng.uniform(0.0, 2.0 * np.pi, n)
    r = truth["mag_true"][:, r_index]
    dimming = 10.0 ** (-0.4 * (r + rng.uniform(*FAINTER_RANGE_MAG, n) - r[pick]))
    return {
        "blend_partner": np.where(blended, pick, -1),
        "blend_dx": np.where(blended, separation * np.cos(angle), 0.0),
        "blend_dy": np.where(blended, separation * np.sin(angle), 0.0),
        "blend_dimming": np.where(blended, dimming, 0.0),
    }


def leaked_flux(truth: dict[str, np.ndarray], flux_true: np.ndarray, aperture_min: float) -> np.ndarray:
    """The partner's flux in each primary's catalogue aperture, ``(N, B)`` (0 where unblended)."""
    partner = truth["blend_partner"]
    has = partner >= 0
    j = np.where(has, partner, 0)
    size2 = truth["sigma_source_arcsec"][:, None] ** 2
    psf2 = (truth["psf_fwhm_arcsec"] / 2.3548) ** 2  # (N, B), at the primary
    sigma_w2 = aperture_min**2 + size2
    d2 = (truth["blend_dx"] ** 2 + truth["blend_dy"] ** 2)[:, None]
    seen = aperture_response(sigma_w2, psf2, truth["sigma_source_arcsec"][j][:, None] ** 2, d2)
    own = aperture_response(sigma_w2, psf2, size2)
    partner_flux = np.nan_to_num(flux_true[j]) * truth["blend_dimming"][:, None]
    return np.where(has[:, None], seen / own * partner_flux, 0.0)
