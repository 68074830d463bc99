"""Image cutouts: bulge + disc + clump galaxies and point sources, PSF-convolved, with the catalogue's noise.

Rendering is done in Fourier space, fully vectorised over sources and bands:

- An elliptical profile ``p(|A x|)`` has Fourier transform ``P(|A^-T k|)``, so each component
  needs only its circular 1-D transform P(s): analytic for the exponential disc
  (``(1 + (2π s h)²)^-3/2``, h = R_e / 1.678) and tabulated once for the de Vaucouleurs
  bulge (n = 4, truncated smoothly between 7 and 8 R_e as in SDSS) by a Hankel transform.
- Star-forming knots are compact Gaussians (σ = 0.1″) scattered over the disc, bluer than it.
- The PSF is a Moffat profile (β = 4.765, Trujillo et al. 2001) whose FWHM varies per source
  and band (:mod:`distributed_pz.survey.sim.psf`); its transform is analytic,
  ``2 (x/2)^ν K_ν(x) / Γ(ν)`` with x = 2π k α, ν = β − 1, tabulated once per tile on a bank of
  FWHMs 0.01″ apart.
- Pixels integrate the light: the product is multiplied by the box-pixel transform
  sinc(k_x) sinc(k_y), and the sub-pixel centre is a phase ramp.
- One inverse real FFT per source and band on a 64 × 64 grid, cropped to the 40 × 40 cutout
  centred on pixel (20, 20); light within 44 px (8.8″) of the centre never wraps into the crop.

Pixel values are fluxes in the tile's zero point (a noiseless source sums to its flux, less
what falls outside the cutout). **The cutout and the catalogue are one measurement**
(:func:`conditioned_noise`): the pixel noise is white with the σ that the catalogue's coadd
error implies for its GAaP-like Gaussian-weighted estimator, and its projection on that
estimator *is* the catalogue's error (noise and outliers): measuring the cutout as the
catalogue does returns the catalogue flux, and a 2″ aperture on the cutout shares its errors.
Given the catalogue, this is the exact conditional distribution of white noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.special import gamma, gammaincinv, j0, kv

from distributed_pz.survey.store.schema import CUTOUT_SIZE

FFT_SIZE = 64
"""Side of the Fourier grid; the cutout is its corner, the source at pixel (20, 20)."""
CENTRE = CUTOUT_SIZE // 2
_DISC_H_PER_RE = 1.0 / 1.678347  # exponential scale length per half-light radius
_SERSIC_S_MAX = 20.0  # cycles per R_e covered by the bulge table (beyond: PSF-suppressed)
_SERSIC_S_STEP = 0.01
_LOOKUP_STEP = 0.0025
PSF_FWHM_RANGE_ARCSEC = (0.3, 2.5)
"""FWHMs covered by the PSF bank."""
_PSF_STEP_ARCSEC = 0.01
CLUMP_SIGMA_ARCSEC = 0.1
N_CLUMPS = 3


def moffat_fourier(k: np.ndarray, fwhm: float, beta: float) -> np.ndarray:
    """Fourier transform (unit at k = 0) of a Moffat PSF; ``k`` and ``fwhm`` in the same (inverse) units."""
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    nu = beta - 1.0
    x = 2.0 * np.pi * np.asarray(k, dtype=np.float64) * alpha
    safe = np.maximum(x, 1e-12)
    return np.where(x > 1e-12, 2.0 * (safe / 2.0) ** nu * kv(nu, safe) / gamma(nu), 1.0)


@cache
def sersic_fourier_table(n: float) -> np.ndarray:
    """Circular Sérsic-n profile's Fourier transform on ``s = 0, Δs, …, s_max`` cycles per R_e.

    Hankel transform ``P(s) = ∫ I(r) J0(2π s r) r dr / ∫ I(r) r dr`` of
    ``I = exp(−b_n (r^{1/n} − 1))`` truncated smoothly between 7 and 8 R_e, integrated in
    t = r^{1/n} (smooth through the cusp).
    """
    b_n = gammaincinv(2.0 * n, 0.5)
    t = np.linspace(0.0, 8.0 ** (1.0 / n), 4001)
    r = t**n
    taper = np.where(r < 7.0, 1.0, np.clip(1.0 - (r - 7.0) ** 2, 0.0, None) ** 2)
    weight = np.exp(-b_n * (t - 1.0)) * taper * r * n * t ** (n - 1.0)  # I(r) r dr/dt
    norm = np.trapezoid(weight, t)
    s = np.arange(0.0, _SERSIC_S_MAX + _SERSIC_S_STEP, _SERSIC_S_STEP)
    out = np.empty(len(s))
    for start in range(0, len(s), 256):
        chunk = s[start : start + 256]
        out[start : start + 256] = (
            np.trapezoid(weight * j0(2.0 * np.pi * chunk[:, None] * r), t, axis=1) / norm
        )
    return out


@dataclass(frozen=True)
class ImageModel:
    """Everything fixed for a tile's cutouts.

    Attributes
    ----------
    psf_bank
        PSF × pixel transform on the rfft grid for FWHMs ``psf_fwhm_pixels``, ``(L, F, F//2+1)``.
    psf_fwhm_pixels
        FWHM [pixels] of each bank entry, increasing, shape ``(L,)``.
    clump_fourier
        Transform of a clump (circular Gaussian), ``(F, F//2+1)``.
    kx, ky
        Frequencies [cycles/pixel] of the rfft grid, shapes ``(1, 1, F//2+1)`` and ``(1, F, 1)``.
    bulge_table
        :func:`sersic_fourier_table` of the bulge resampled to steps of :data:`_LOOKUP_STEP`
        (nearest-neighbour lookup), float32.
    """

    psf_bank: np.ndarray
    psf_fwhm_pixels: np.ndarray
    clump_fourier: np.ndarray
    kx: np.ndarray
    ky: np.ndarray
    bulge_table: np.ndarray

    def psf_level(self, fwhm_pixels: np.ndarray) -> np.ndarray:
        """Nearest bank entry for each FWHM [pixels] (clamped to the bank)."""
        step = self.psf_fwhm_pixels[1] - self.psf_fwhm_pixels[0]
        level = np.rint((np.asarray(fwhm_pixels) - self.psf_fwhm_pixels[0]) / step).astype(np.intp)
        return np.clip(level, 0, len(self.psf_fwhm_pixels) - 1)


def build_image_model(
    pixel_scale: float,
    moffat_beta: float,
    fwhm_range: tuple[float, float] = PSF_FWHM_RANGE_ARCSEC,
    bulge_sersic_n: float = 4.0,
) -> ImageModel:
    """Image model for a pixel scale [arcsec]: the PSF bank over ``fwhm_range`` [arcsec], clump profile, bulge table."""
    kx = np.fft.rfftfreq(FFT_SIZE)
    ky = np.fft.fftfreq(FFT_SIZE)
    k = np.hypot(kx[None, :], ky[:, None])
    pixel = np.sinc(kx)[None, :] * np.sinc(ky)[:, None]
    lo, hi = np.round(np.clip(fwhm_range, *PSF_FWHM_RANGE_ARCSEC), 2)
    fwhms = np.arange(lo, hi + _PSF_STEP_ARCSEC / 2, _PSF_STEP_ARCSEC) / pixel_scale
    psf = np.stack([moffat_fourier(k, fwhm, moffat_beta) * pixel for fwhm in fwhms])
    clump = np.exp(-2.0 * (np.pi * CLUMP_SIGMA_ARCSEC / pixel_scale * k) ** 2)
    table = sersic_fourier_table(bulge_sersic_n)
    fine = np.arange(0.0, _SERSIC_S_MAX + _LOOKUP_STEP, _LOOKUP_STEP)
    return ImageModel(
        psf_bank=psf.astype(np.float32),
        psf_fwhm_pixels=fwhms,
        clump_fourier=clump.astype(np.float32),
        kx=kx.astype(np.float32)[None, None, :],
        ky=ky.astype(np.float32)[None, :, None],
        bulge_table=np.interp(fine, np.arange(len(table)) * _SERSIC_S_STEP, table).astype(np.float32),
    )


def _radius2(model: ImageModel, r_eff: np.ndarray, q: np.ndarray, pa: np.ndarray) -> np.ndarray:
    """(s in cycles per R_e)² on the grid for ellipses (major-axis R_e [px], axis ratio, PA), ``(N, F, F/2+1)``.

    ``s² = R² [(k·e_major)² + q² (k·e_minor)²]``, expanded into a quadratic form in (k_x, k_y).
    """
    c, s, r2, q2 = np.cos(pa), np.sin(pa), r_eff**2, q**2
    a = (r2 * (c * c + q2 * s * s)).astype(np.float32)[:, None, None]
    b = (2.0 * r2 * c * s * (1.0 - q2)).astype(np.float32)[:, None, None]
    d = (r2 * (s * s + q2 * c * c)).astype(np.float32)[:, None, None]
    out = b * (model.kx * model.ky)
    out += a * (model.kx * model.kx)
    out += d * (model.ky * model.ky)
    return out


def _disk(s2: np.ndarray) -> np.ndarray:
    """Exponential disc transform ``(1 + (2π h s)²)^-3/2`` (h in units of R_e), in place of ``s2``."""
    s2 *= np.float32((2.0 * np.pi * _DISC_H_PER_RE) ** 2)
    s2 += 1.0
    root = np.sqrt(s2)
    root *= s2
    return np.reciprocal(root, out=root)


def _bulge(model: ImageModel, s2: np.ndarray) -> np.ndarray:
    """Bulge transform by nearest-neighbour lookup (s beyond the table: its last value, PSF-suppressed)."""
    index = np.sqrt(s2)
    index *= np.float32(1.0 / _LOOKUP_STEP)
    np.minimum(index, np.float32(len(model.bulge_table) - 1), out=index)
    return model.bulge_table[(index + 0.5).astype(np.int32)]


def fourier_sources(
    model: ImageModel,
    flux: np.ndarray,
    r_disk: np.ndarray,
    r_bulge: np.ndarray,
    bulge_fraction: np.ndarray,
    q_disk: np.ndarray,
    q_bulge: np.ndarray,
    pa: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    psf_level: np.ndarray,
    clump_flux: np.ndarray | None = None,
    clump_x: np.ndarray | None = None,
    clump_y: np.ndarray | None = None,
) -> np.ndarray:
    """Fourier transform of PSF-convolved, pixel-integrated sources, shape ``(N, C, F, F//2+1)`` complex64.

    Parameters
    ----------
    flux
        Total flux per image band, shape ``(N, C)``.
    r_disk, r_bulge
        Major-axis half-light radii [pixels] of disc and bulge, shape ``(N,)``; a source with
        ``r_disk == 0`` and no bulge is a point source.
    bulge_fraction
        Bulge share of the flux per band, shape ``(N, C)``.
    q_disk, q_bulge, pa
        Axis ratios and position angle [rad, from +x towards +y], shape ``(N,)``.
    x, y
        Source centre [pixels] on the grid (column, row), shape ``(N,)``.
    psf_level
        PSF bank entry per source and band, shape ``(N, C)``.
    clump_flux, clump_x, clump_y
        Flux of the clumps per band ``(N, C)`` (shared equally by the clumps; part of the total
        ``flux``, taken from the disc) and clump centres [pixels] ``(N, K)``; ``None``: no clumps.
    """
    if clump_flux is not None:
        flux = flux - clump_flux
    disk_flux = (flux * (1.0 - bulge_fraction)).astype(np.float32)[:, :, None, None]  # (N, C, 1, 1)
    profile = disk_flux * _disk(_radius2(model, r_disk, q_disk, pa))[:, None]  # (N, C, F, F/2+1)
    has_bulge = np.flatnonzero(bulge_fraction.max(axis=1) > 0)
    if len(has_bulge):
        bulge = _bulge(model, _radius2(model, r_bulge[has_bulge], q_bulge[has_bulge], pa[has_bulge]))
        bulge_flux = (flux * bulge_fraction)[has_bulge].astype(np.float32)[:, :, None, None]
        profile[has_bulge] += bulge_flux * bulge[:, None]
    out = profile * _phase(model, x, y)[:, None]  # (N, C, F, F/2+1) complex64
    if clump_flux is not None:
        phases = sum(_phase(model, clump_x[:, j], clump_y[:, j]) for j in range(clump_x.shape[1]))
        per_clump = (clump_flux / clump_x.shape[1]).astype(np.float32)[:, :, None, None]
        out += (per_clump * model.clump_fourier) * phases[:, None]
    out *= model.psf_bank[psf_level]
    return out


def _phase(model: ImageModel, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Shift theorem phase ramp for centres (x, y) [pixels], shape ``(N, F, F//2+1)`` complex64."""
    phase_x = np.exp(-2j * np.pi * model.kx[0] * x.astype(np.float32)[:, None]).astype(
        np.complex64
    )  # (N, F/2+1)
    phase_y = np.exp(-2j * np.pi * model.ky[0, :, 0] * y.astype(np.float32)[:, None]).astype(
        np.complex64
    )  # (N, F)
    return phase_y[:, :, None] * phase_x[:, None, :]


def to_cutouts(fourier: np.ndarray) -> np.ndarray:
    """Inverse FFT of :func:`fourier_sources` output, cropped to ``(N, C, P, P)`` (a float32 view)."""
    return np.fft.irfft2(fourier, s=(FFT_SIZE, FFT_SIZE))[..., :CUTOUT_SIZE, :CUTOUT_SIZE]


def gaussian_weights(x: np.ndarray, y: np.ndarray, sigma_w: np.ndarray) -> np.ndarray:
    """Peak-1 Gaussian weight images centred on (x, y) with σ ``sigma_w`` [pixels], ``(N, P, P)`` float32."""
    grid = np.arange(CUTOUT_SIZE, dtype=np.float32)
    gx = np.exp(-0.5 * ((grid[None, :] - x[:, None]) / sigma_w[:, None]) ** 2).astype(np.float32)  # (N, P)
    gy = np.exp(-0.5 * ((grid[None, :] - y[:, None]) / sigma_w[:, None]) ** 2).astype(np.float32)
    return gy[:, :, None] * gx[:, None, :]


def conditioned_noise(
    rng: np.random.Generator,
    weights: np.ndarray,
    response: np.ndarray,
    sigma_catalogue: np.ndarray,
    error: np.ndarray,
) -> np.ndarray:
    """White pixel noise whose catalogue estimator returns the catalogue's own error, ``(N, C, P, P)`` float32.

    The estimator is ``F̂ = Σ w·image / response`` (``response`` = Σ w·profile for unit flux).
    With σ_pix = σ_cat · response / ‖w‖ and ``n = σ_pix ε + w (error · response − σ_pix w·ε) / ‖w‖²``
    the estimator of ``n`` is exactly ``error``; when ``error`` ~ N(0, σ_cat²), ``n`` is white
    noise of σ_pix.

    Parameters
    ----------
    weights
        Gaussian weight images, ``(N, P, P)``.
    response
        Estimator response to a unit-flux source, ``(N, C)``.
    sigma_catalogue
        Catalogue coadd 1σ error, ``(N, C)`` (NaN where not observed: the noise is then white
        with σ 0).
    error
        Catalogue flux minus the noiseless coadd signal, ``(N, C)``.
    """
    n, c = response.shape
    norm2 = (weights.astype(np.float64) ** 2).sum(axis=(1, 2))[:, None]  # (N, 1)
    sigma_pix = np.nan_to_num(sigma_catalogue * response / np.sqrt(norm2))
    eps = rng.standard_normal((n, c, CUTOUT_SIZE, CUTOUT_SIZE), dtype=np.float32)
    projection = np.matmul(eps.reshape(n, c, -1), weights.reshape(n, -1, 1))[..., 0]  # (N, C)
    gain = (np.nan_to_num(error) * response - sigma_pix * projection) / norm2  # (N, C)
    eps *= sigma_pix.astype(np.float32)[:, :, None, None]
    eps += gain.astype(np.float32)[:, :, None, None] * weights[:, None]
    return eps
