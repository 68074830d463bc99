"""Survey photometry: depths to noise, individual exposures, calibration jitter, outliers, coadds.

Model (per band b; fluxes linear in the tile zero point, ``mag = zp − 2.5 log10 flux``):

- The 5σ depth m5 fixes the coadd flux error at the nominal exposure count
  n̄ = (n_min + n_max)/2: σ_coadd = 10^(−0.4 (m5 − zp)) / 5, so one exposure has
  σ_exp = σ_coadd √n̄ (sky-limited; the source's own shot noise is neglected). Each of the
  tile's exposures scales that by its own factor (seeing and transparency, log-normal), so a
  source's depth depends on which exposures cover it and how many (uniform in [n_min, n_max]);
  the factors are rescaled so that the tile as a whole reaches the nominal depth.
- Every exposure of the tile has a zero-point offset (calibration jitter, ~1–3 %) shared by all
  its sources, plus a small per-source residual (flat field, illumination). Quoted errors do
  not include these, as in real catalogues.
- Rare photometric outliers (DEEPZ §5: scattered light, cross-talk, reduction glitches) add
  5–50 σ plus 20–100 % of the flux, positive 70 % of the time; quoted errors are unchanged.
- A band can be missing over a strip of the tile (VIKING coverage gaps): no exposures there.
- Catalogue magnitudes are the inverse-variance coadd of the exposures; a coadd with S/N < 1
  or flux ≤ 0 is a non-detection (mag NaN, ``mag_err`` = the 1σ limiting magnitude).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distributed_pz.survey.schema import FLAG_NOT_DETECTED, FLAG_NOT_OBSERVED, FLAG_OK

_MAG_PER_LN = 2.5 / np.log(10.0)  # 1.0857


def flux_from_mag(mag: np.ndarray, zeropoint: float | np.ndarray) -> np.ndarray:
    """Linear flux for AB magnitude ``mag`` at ``zeropoint``."""
    return 10.0 ** (-0.4 * (np.asarray(mag) - zeropoint))


def coadd_sigma(depth_5sigma: np.ndarray, zeropoint: float | np.ndarray) -> np.ndarray:
    """1σ coadd flux error at the 5σ limiting magnitude ``depth_5sigma``, shape ``(B,)``."""
    return flux_from_mag(np.asarray(depth_5sigma, dtype=np.float64), zeropoint) / 5.0


@dataclass(frozen=True)
class ExposurePlan:
    """Exposure properties shared by every source of a tile.

    Attributes
    ----------
    zp_offset
        Zero-point offset [mag] of each exposure, shape ``(B, E)``.
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
    noise_scale = np.exp(rng.normal(0.0, depth_scatter, (n_bands, n_exposures)))
    noise_scale *= np.sqrt(np.mean(noise_scale**-2, axis=1, keepdims=True))  # tile depth = nominal depth
    lo, hi = dec_range
    width = gap_fraction * (hi - lo)
    start = lo + rng.random(n_bands) * (hi - lo - width)
    gap = np.stack([start, start + width], axis=1)
    gap[~np.asarray(gap_bands) | (width <= 0)] = np.nan
    return ExposurePlan(zp_offset=zp_offset, noise_scale=noise_scale, gap_dec=gap)


def observe(
    rng: np.random.Generator,
    flux_true: np.ndarray,
    dec: np.ndarray,
    plan: ExposurePlan,
    sigma_coadd: np.ndarray,
    n_exp_min: int,
    n_exp_max: int,
    zp_jitter_source_mag: float,
    outlier_rate: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Individual-exposure fluxes and quoted errors, NaN-padded, each shape ``(N, B, E)`` float32.

    Parameters
    ----------
    flux_true
        Noiseless flux, shape ``(N, B)``.
    dec
        Declination [deg], shape ``(N,)`` (for coverage gaps).
    sigma_coadd
        Coadd 1σ flux error at the nominal exposure count, shape ``(B,)``.
    """
    n, n_bands = flux_true.shape
    n_max = plan.zp_offset.shape[1]
    sigma_exp = sigma_coadd[:, None] * np.sqrt(0.5 * (n_exp_min + n_exp_max)) * plan.noise_scale  # (B, E)
    n_exp = rng.integers(n_exp_min, n_exp_max + 1, (n, n_bands))  # (N, B)
    rank = np.argsort(np.argsort(rng.random((n, n_bands, n_max)), axis=-1), axis=-1)
    covered = rank < n_exp[..., None]  # a random subset of the tile's exposures
    exposure = np.argsort(~covered, axis=-1, kind="stable")  # covered ids first, ascending
    valid = np.arange(n_max) < n_exp[..., None]  # (N, B, E)
    band = np.arange(n_bands)[None, :, None]
    zp = plan.zp_offset[band, exposure] + rng.normal(0.0, zp_jitter_source_mag, (n, n_bands, n_max))
    sigma = sigma_exp[band, exposure]
    flux = flux_true[..., None] * 10.0 ** (-0.4 * zp) + sigma * rng.standard_normal((n, n_bands, n_max))
    outlier = rng.random((n, n_bands, n_max)) < outlier_rate
    sign = np.where(rng.random((n, n_bands, n_max)) < 0.7, 1.0, -1.0)
    amplitude = rng.uniform(5.0, 50.0, outlier.shape) * sigma + rng.uniform(0.2, 1.0, outlier.shape) * np.abs(
        flux_true[..., None]
    )
    flux += np.where(outlier, sign * amplitude, 0.0)
    in_gap = (dec[:, None] >= plan.gap_dec[None, :, 0]) & (dec[:, None] < plan.gap_dec[None, :, 1])  # (N, B)
    valid &= ~in_gap[..., None]
    return (
        np.where(valid, flux, np.nan).astype(np.float32),
        np.where(valid, sigma, np.nan).astype(np.float32),
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
