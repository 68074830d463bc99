"""Galaxy SED diversity beyond a one-dimensional template sequence.

Three ingredients, each drawn per galaxy, make the colour → redshift map many-to-one as in real
data (a noiseless random forest on a single template sequence reaches NMAD 0.0005; real
galaxies have an intrinsic floor near 0.01):

- **a real-galaxy partner**: one of the Brown et al. (2014) spectra whose rest-frame u − r is
  close to the galaxy's sequence position (within ± ``partner_spread`` ranks), mixed in with a
  weight uniform in [0, ``partner_weight_max``] — real SED shapes (metallicity, star-formation
  history, AGN, their own lines) that no template sequence spans;
- **a variable dust law**: Calzetti k(λ) tilted by (λ/5500 Å)^δ, δ ~ N(0, σ_δ) (the spread of
  attenuation slopes of Salim et al. 2018 and Kriek & Conroy 2013), applied at each band's rest
  pivot wavelength as ``Δm_b = E(B−V) k(λ_b) ((λ_b/5500)^δ − 1)``;
- **an intrinsic colour perturbation**: a smooth random function of rest wavelength, the sum of
  Legendre polynomials P1–P3 of ``t = log10(λ_rest / 5500 Å) / 0.5`` with N(0, σ_k)
  coefficients — the residual SED scatter that gives the red sequence its real width.

- **an empirical mean SED correction** (:func:`calibrated_offsets`): a smooth function of rest
  wavelength and redshift, ``Δm(λ_rest, z)``, calibrated against zCOSMOS-bright colours (see
  ``SED_CORRECTION``) — what the template population misses on average (a 4000 Å break too
  strong at z ≳ 0.6, UV too blue), in the way LePhare-style template optimisation corrects
  templates, but in the rest frame so it applies to any band set.

All magnitude terms are taken relative to the selection band, so they change colours, not
the galaxy's selection magnitude.
"""

from __future__ import annotations

import numpy as np

from distributed_pz.survey.sim import package_data, sed

_LEGENDRE_SCALES = np.array([1.0, 0.6, 0.4])  # relative σ of the P1, P2, P3 coefficients


def brown_partners(
    rng: np.random.Generator, grids: sed.SedGrids, colour: np.ndarray, spread: int
) -> np.ndarray:
    """Index (into ``grids.template_names``) of a Brown spectrum near rest colour ``colour``, ``(N,)``."""
    brown_colour = grids.template_colour[sed.N_SEQUENCE :]
    order = np.argsort(brown_colour)
    rank = np.searchsorted(brown_colour[order], colour)
    rank = np.clip(rank + rng.integers(-spread, spread + 1, len(colour)), 0, len(order) - 1)
    return sed.N_SEQUENCE + order[rank]


def sequence_colour(grids: sed.SedGrids, sed_index: np.ndarray) -> np.ndarray:
    """Rest colour proxy of a continuous COSMOS-sequence position, ``(N,)``."""
    return np.interp(sed_index, np.arange(sed.N_SEQUENCE), grids.template_colour[: sed.N_SEQUENCE])


def rest_coordinate(grids: sed.SedGrids, z: np.ndarray) -> np.ndarray:
    """``log10(λ_pivot,b / (1+z) / 5500 Å)`` per galaxy and band, ``(N, B)``."""
    return np.log10(grids.passbands.pivot[None, :] / (1.0 + z[:, None]) / 5500.0)


def dust_slope_offsets(
    grids: sed.SedGrids, z: np.ndarray, ebv: np.ndarray, slope: np.ndarray, reference: int
) -> np.ndarray:
    """Magnitude change ``(N, B)`` from tilting the Calzetti law by (λ/5500 Å)^slope, relative to band ``reference``."""
    x = rest_coordinate(grids, z)
    k = sed.calzetti_k(5500.0 * 10.0**x)
    delta = ebv[:, None] * k * (10.0 ** (slope[:, None] * x) - 1.0)
    return delta - delta[:, reference : reference + 1]


def intrinsic_offsets(
    rng: np.random.Generator, grids: sed.SedGrids, z: np.ndarray, sigma: float, reference: int
) -> np.ndarray:
    """Smooth random rest-frame colour perturbation ``(N, B)`` [mag], relative to band ``reference``."""
    t = rest_coordinate(grids, z) / 0.5
    basis = np.stack([t, 0.5 * (3 * t**2 - 1), 0.5 * (5 * t**3 - 3 * t)], axis=-1)  # (N, B, 3)
    coeff = rng.normal(0.0, 1.0, (len(z), 3)) * (sigma * _LEGENDRE_SCALES)[None, :]
    delta = np.einsum("nbk,nk->nb", basis, coeff)
    return delta - delta[:, reference : reference + 1]


SED_CORRECTION_X = np.round(np.arange(3.15, 4.4501, 0.05), 3)
"""log10 rest wavelength [Å] of the :data:`SED_CORRECTION` columns (1 413 Å … 28 184 Å)."""
SED_CORRECTION_Z = np.round(np.arange(0.05, 1.0501, 0.1), 3)
"""Redshifts of the :data:`SED_CORRECTION` rows (zCOSMOS-bright bins of 0.1)."""
SED_CORRECTION = package_data.sed_correction()
"""Mean magnitude correction ``Δm(z, log10 λ_rest)`` added to every galaxy (relative to the selection
band), ``(11, 27)``; how it was calibrated is in the header of
``distributed_pz/data/templates/sed_correction_zcosmos.txt``."""


def calibrated_offsets(grids: sed.SedGrids, z: np.ndarray, strength: float, reference: int) -> np.ndarray:
    """Empirical mean SED correction ``(N, B)`` [mag] at each band's rest pivot, relative to band ``reference``.

    Bilinear in (z, log10 λ_rest) on :data:`SED_CORRECTION`, held constant outside the wavelength
    range and below z = 0.05, and tapered linearly to zero between z = 1.05 and 1.5 (no real
    colours beyond), times ``strength`` (0 turns it off).
    """
    if strength == 0.0:
        return np.zeros((len(z), len(grids.passbands.pivot)))
    x = np.clip(
        np.log10(grids.passbands.pivot[None, :] / (1.0 + z[:, None])),
        SED_CORRECTION_X[0],
        SED_CORRECTION_X[-1],
    )
    zc = np.clip(z, SED_CORRECTION_Z[0], SED_CORRECTION_Z[-1])
    fz = np.interp(zc, SED_CORRECTION_Z, np.arange(len(SED_CORRECTION_Z)))
    iz = np.minimum(fz.astype(int), len(SED_CORRECTION_Z) - 2)
    tz = (fz - iz)[:, None]
    fx = np.interp(x, SED_CORRECTION_X, np.arange(len(SED_CORRECTION_X)))
    ix = np.minimum(fx.astype(int), len(SED_CORRECTION_X) - 2)
    tx = fx - ix
    t = SED_CORRECTION
    rows = iz[:, None]
    value = (1 - tz) * ((1 - tx) * t[rows, ix] + tx * t[rows, ix + 1]) + tz * (
        (1 - tx) * t[rows + 1, ix] + tx * t[rows + 1, ix + 1]
    )
    taper = np.clip((1.5 - z) / (1.5 - SED_CORRECTION_Z[-1]), 0.0, 1.0)[:, None]
    delta = strength * taper * value
    return delta - delta[:, reference : reference + 1]
