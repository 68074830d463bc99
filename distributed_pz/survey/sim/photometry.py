"""Survey photometry: depths to noise, individual exposures, calibration jitter, outliers, coadds.

Model (per band b; fluxes linear in the tile zero point, ``mag = zp − 2.5 log10 flux``):

- Fluxes are measured GAaP-like (Kuijken et al. 2015): a Gaussian weight of σ_w² = σ_min² +
  σ_src² (σ_min = 0.7″, σ_src the source's intrinsic Gaussian-equivalent size) on the image,
  normalised to total flux. For a Gaussian-like PSF-convolved profile of σ_s² = σ_PSF² + σ_src²
  the sky noise of that estimator is σ_pix √π (σ_w² + σ_s²) / σ_w (:func:`measurement_norm`),
  so errors grow with the source's size and with the seeing.
- The 5σ depth m5 fixes the coadd flux error of a point source at the nominal seeing and
  exposure count n̄ of the band: σ_coadd = 10^(−0.4 (m5 − zp)) / 5, so one exposure has
  σ_exp = σ_coadd √n̄. Each of the tile's exposures scales that by its own factor (seeing and
  transparency, log-normal), rescaled so that the tile as a whole reaches the nominal depth.
  A source has n̄ exposures, one fewer or one more with the survey's per-band probabilities
  (:mod:`distributed_pz.survey.sim.surveys`), clamped to [n_min, n_max].
- The source's own shot noise adds ``F / (S_sky 2π (σ_w²/2 + σ_s²))`` to the relative variance
  (S_sky the sky brightness in flux per arcsec²; the sky-limited variance is 1).
- Every band of the tile has a zero-point offset (the tile's calibration, σ ≈ 1 %, KiDS DR4-like), every
  exposure another (jitter, ~2 %) shared by all its sources, plus a small per-source residual
  (flat field, illumination). Quoted errors do not include these, as in real catalogues, and a
  test on another tile is the honest split.
- Rare photometric outliers (DEEPZ §5: scattered light, cross-talk, reduction glitches) hit an
  exposure with probability ``outlier_rate`` (0.2 %: about 1 % of sources in a band, 7 % in at
  least one of 9 bands) and add 3–20 σ plus 5–50 % of the flux, positive 70 % of the time;
  quoted errors are unchanged.
- A band can be missing over a strip of the tile (VIKING coverage gaps): no exposures there.
- Catalogue magnitudes are the inverse-variance coadd of the exposures; a coadd with S/N < 1
  or flux ≤ 0 is a non-detection (mag NaN, ``mag_err`` = the 1σ limiting magnitude).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distributed_pz.survey.store.schema import FLAG_NOT_DETECTED, FLAG_NOT_OBSERVED, FLAG_OK

_MAG_PER_LN = 2.5 / np.log(10.0)  # 1.0857


def flux_from_mag(mag: np.ndarray, zeropoint: float | np.ndarray) -> np.ndarray:
    """Linear flux for AB magnitude ``mag`` at ``zeropoint``."""
    return 10.0 ** (-0.4 * (np.asarray(mag) - zeropoint))


def measurement_norm(sigma_source: np.ndarray, seeing_fwhm: np.ndarray, aperture_min: float) -> np.ndarray:
    """Sky-noise norm of the GAaP-like flux estimator, √π (σ_w² + σ_s²) / σ_w, in units of a pixel σ per arcsec.

    Parameters
    ----------
    sigma_source
        Intrinsic Gaussian-equivalent size σ_src [arcsec], broadcastable with ``seeing_fwhm``.
    seeing_fwhm
        PSF FWHM [arcsec].
    aperture_min
        Minimum Gaussian aperture σ_min [arcsec].
    """
    sigma_w2 = aperture_min**2 + np.asarray(sigma_source) ** 2
    sigma_s2 = (np.asarray(seeing_fwhm) / 2.3548) ** 2 + np.asarray(sigma_source) ** 2
    return np.sqrt(np.pi) * (sigma_w2 + sigma_s2) / np.sqrt(sigma_w2)


def aperture_response(
    sigma_w2: np.ndarray, psf_sigma2: np.ndarray, source_sigma2: np.ndarray, offset2: np.ndarray | float = 0.0
) -> np.ndarray:
    """What a peak-1 Gaussian aperture (σ_w²) returns of a unit-flux Gaussian source seen through a
    Gaussian PSF (σ_psf²), of intrinsic size σ_src², offset by d² [arcsec²] from its centre:
    σ_w² / (σ_w² + σ_psf² + σ_src²) · exp(−d² / 2(σ_w² + σ_psf² + σ_src²))."""
    total = sigma_w2 + psf_sigma2 + source_sigma2
    return sigma_w2 / total * np.exp(-0.5 * offset2 / total)


def shot_noise_per_flux(
    sigma_source: np.ndarray, seeing_fwhm: np.ndarray, aperture_min: float, sky_flux_arcsec2: np.ndarray
) -> np.ndarray:
    """Relative variance added by the source's own photons, per unit flux: 1 / (S_sky 2π (σ_w²/2 + σ_s²))."""
    sigma_w2 = aperture_min**2 + np.asarray(sigma_source) ** 2
    sigma_s2 = (np.asarray(seeing_fwhm) / 2.3548) ** 2 + np.asarray(sigma_source) ** 2
    return 1.0 / (sky_flux_arcsec2 * 2.0 * np.pi * (0.5 * sigma_w2 + sigma_s2))


def coadd_sigma(depth_5sigma: np.ndarray, zeropoint: float | np.ndarray) -> np.ndarray:
    """1σ coadd flux error at the 5σ limiting magnitude ``depth_5sigma``, shape ``(B,)``."""
    return flux_from_mag(np.asarray(depth_5sigma, dtype=np.float64), zeropoint) / 5.0


@dataclass(frozen=True)
class ExposurePlan:
    """Exposure properties shared by every source of a tile.

    Attributes
    ----------
    zp_offset
        Zero-point offset [mag] of each exposure (the tile's offset of the band included),
        shape ``(B, E)``.
    noise_scale
        Noise of each exposure relative to nominal, shape ``(B, E)``.
    gap_dec
        Declination interval [deg] of each band not observed, shape ``(B, 2)``; NaN = none.
    """

    zp_offset: np.ndarray
    noise_scale: np.ndarray
    gap_dec: np.ndarray


def plan_exposures(
    rng: np.random.Generator,
    n_exposures: int,
    zp_tile_mag: float,
    zp_jitter_mag: float,
    depth_scatter: float,
    gap_bands: np.ndarray,
    gap_fraction: float,
    dec_range: tuple[float, float],
) -> ExposurePlan:
    """Draw a tile's exposure plan.

    Parameters
    ----------
    n_exposures
        Most exposures a source can have per band (E).
    zp_tile_mag
        RMS zero-point offset of the tile per band [mag].
    zp_jitter_mag
        RMS zero-point offset of an exposure [mag].
    depth_scatter
        RMS of ln(noise) between exposures (rescaled so that the mean inverse variance, hence
        the tile's depth, stays nominal).
    gap_bands
        Which bands may have a coverage gap, bool shape ``(B,)``.
    gap_fraction
        Fraction of the tile's declination range missing in each such band (a strip at a
        random position).
    dec_range
        The tile's declination range [deg].
    """
    n_bands = len(gap_bands)
    zp_offset = rng.normal(0.0, zp_jitter_mag, (n_bands, n_exposures))
    zp_offset += rng.normal(0.0, zp_tile_mag, (n_bands, 1))
    noise_scale = np.exp(rng.normal(0.0, depth_scatter, (n_bands, n_exposures)))
    noise_scale *= np.sqrt(np.mean(noise_scale**-2, axis=1, keepdims=True))  # tile depth = nominal depth
    lo, hi = dec_range
    width = gap_fraction * (hi - lo)
    start = lo + rng.random(n_bands) * (hi - lo - width)
    gap = np.stack([start, start + width], axis=1)
    gap[~np.asarray(gap_bands) | (width <= 0)] = np.nan
    return ExposurePlan(zp_offset=zp_offset, noise_scale=noise_scale, gap_dec=gap)


def zeropoint_offsets(plan: ExposurePlan) -> np.ndarray:
    """Each band's effective zero-point offset ``(B,)`` [mag]: ``mag − mag_true`` of a noiseless
    coadd over all the tile's exposures (inverse-variance weights, as :func:`coadd_signal`)."""
    weight = plan.noise_scale**-2.0
    factor = (weight * 10.0 ** (-0.4 * plan.zp_offset)).sum(axis=1) / weight.sum(axis=1)
    return -2.5 * np.log10(factor)


@dataclass(frozen=True)
class SourceNoise:
    """What sets each source's measurement errors, per band.

    Attributes
    ----------
    sigma_exp
        Per-exposure 1σ flux error of a point source at nominal seeing, shape ``(B, E)``.
    nominal_exposures
        Exposures covering a typical source, shape ``(B,)``.
    exposure_loss, exposure_gain
        Probability of one exposure fewer / more, shape ``(B,)``.
    norm_ratio
        :func:`measurement_norm` of each source relative to a nominal point source, ``(N, B)``.
    shot
        :func:`shot_noise_per_flux` of each source, ``(N, B)``.
    """

    sigma_exp: np.ndarray
    nominal_exposures: np.ndarray
    exposure_loss: np.ndarray
    exposure_gain: np.ndarray
    norm_ratio: np.ndarray
    shot: np.ndarray


def observe(
    rng: np.random.Generator,
    flux_true: np.ndarray,
    dec: np.ndarray,
    plan: ExposurePlan,
    noise: SourceNoise,
    n_exp_min: int,
    n_exp_max: int,
    zp_jitter_source_mag: float,
    outlier_rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Individual-exposure fluxes, quoted errors and noiseless signals, NaN-padded, each ``(N, B, E)``.

    Parameters
    ----------
    flux_true
        Noiseless flux, shape ``(N, B)``.
    dec
        Declination [deg], shape ``(N,)`` (for coverage gaps).
    noise
        Per-source error model.

    Returns
    -------
    flux, flux_err, signal
        float32 measured fluxes and quoted errors, and the float64 noiseless flux of each
        exposure (calibration offsets applied, no noise and no outliers).
    """
    n, n_bands = flux_true.shape
    n_max = plan.zp_offset.shape[1]
    u = rng.random((n, n_bands))
    change = np.where(u < noise.exposure_loss, -1, np.where(u > 1.0 - noise.exposure_gain, 1, 0))
    n_exp = np.clip(noise.nominal_exposures[None, :] + change, n_exp_min, n_exp_max)  # (N, B)
    rank = np.argsort(np.argsort(rng.random((n, n_bands, n_max)), axis=-1), axis=-1)
    covered = rank < n_exp[..., None]  # a random subset of the tile's exposures
    exposure = np.argsort(~covered, axis=-1, kind="stable")  # covered ids first, ascending
    valid = np.arange(n_max) < n_exp[..., None]  # (N, B, E)
    band = np.arange(n_bands)[None, :, None]
    zp = plan.zp_offset[band, exposure] + rng.normal(0.0, zp_jitter_source_mag, (n, n_bands, n_max))
    relative = noise.norm_ratio * np.sqrt(1.0 + noise.shot * np.clip(flux_true, 0.0, None))  # (N, B)
    sigma = noise.sigma_exp[band, exposure] * relative[..., None]
    signal = flux_true[..., None] * 10.0 ** (-0.4 * zp)
    flux = signal + sigma * rng.standard_normal((n, n_bands, n_max))
    outlier = rng.random((n, n_bands, n_max)) < outlier_rate
    sign = np.where(rng.random((n, n_bands, n_max)) < 0.7, 1.0, -1.0)
    amplitude = rng.uniform(3.0, 20.0, outlier.shape) * sigma + rng.uniform(
        0.05, 0.5, outlier.shape
    ) * np.abs(flux_true[..., None])
    flux += np.where(outlier, sign * amplitude, 0.0)
    in_gap = (dec[:, None] >= plan.gap_dec[None, :, 0]) & (dec[:, None] < plan.gap_dec[None, :, 1])  # (N, B)
    valid &= ~in_gap[..., None]
    return (
        np.where(valid, flux, np.nan).astype(np.float32),
        np.where(valid, sigma, np.nan).astype(np.float32),
        np.where(valid, signal, np.nan),
    )


def coadd_signal(signal: np.ndarray, flux_exp_err: np.ndarray) -> np.ndarray:
    """Inverse-variance coadd ``(N, B)`` of noiseless exposure ``signal`` with the weights of the exposures' errors."""
    e = np.asarray(flux_exp_err, dtype=np.float64)
    ok = np.isfinite(signal) & np.isfinite(e) & (e > 0)
    weight = np.where(ok, 1.0 / np.where(ok, e, 1.0) ** 2, 0.0)
    total = weight.sum(axis=-1)
    return np.where(
        total > 0, (weight * np.where(ok, signal, 0.0)).sum(axis=-1) / np.where(total > 0, total, 1), np.nan
    )


def coadd(
    flux_exp: np.ndarray, flux_exp_err: np.ndarray, zeropoint: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-variance coadd of NaN-padded exposures and the catalogue magnitudes it implies.

    Parameters
    ----------
    flux_exp, flux_exp_err
        Exposure fluxes and 1σ errors, shape ``(N, B, E)``; NaN = no exposure.
    zeropoint
        Zero point(s), scalar or shape ``(B,)``.

    Returns
    -------
    mag, mag_err, mag_flag, flux, flux_err
        Shapes ``(N, B)``: float32 magnitudes (NaN unless detected), float32 errors (the 1σ
        limiting magnitude for non-detections, NaN if not observed), uint8 schema flags, and
        the float64 coadd flux and error (NaN if not observed).
    """
    f = np.asarray(flux_exp, dtype=np.float64)
    e = np.asarray(flux_exp_err, dtype=np.float64)
    ok = np.isfinite(f) & np.isfinite(e) & (e > 0)
    weight = np.where(ok, 1.0 / np.where(ok, e, 1.0) ** 2, 0.0)
    total = weight.sum(axis=-1)  # (N, B)
    observed = total > 0
    safe_total = np.where(observed, total, 1.0)
    flux = np.where(observed, (weight * np.where(ok, f, 0.0)).sum(axis=-1) / safe_total, np.nan)
    flux_err = np.where(observed, 1.0 / np.sqrt(safe_total), np.nan)
    detected = observed & (flux > 0) & (flux >= flux_err)
    safe_flux = np.where(detected, flux, 1.0)
    mag = np.where(detected, zeropoint - 2.5 * np.log10(safe_flux), np.nan)
    limit = zeropoint - 2.5 * np.log10(np.where(observed, flux_err, 1.0))
    mag_err = np.where(detected, _MAG_PER_LN * flux_err / safe_flux, np.where(observed, limit, np.nan))
    flag = np.where(detected, FLAG_OK, np.where(observed, FLAG_NOT_DETECTED, FLAG_NOT_OBSERVED))
    return mag.astype(np.float32), mag_err.astype(np.float32), flag.astype(np.uint8), flux, flux_err
