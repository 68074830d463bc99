"""Spectral energy distributions and synthetic photometry for the survey simulator.

Physics, in the order light meets it:

- **Galaxies**: a mixture of the 14 shipped COSMOS templates (Ilbert et al. 2009), red to blue
  (Ell1, Ell3, Ell5, Ell7, S0, Sa, Sb, Sc, Sd, Sdm, SB2, SB5, SB8, SB11), mixed linearly between
  neighbours of the sequence, and 32 real galaxy spectra of the Brown et al. (2014) atlas
  (:func:`galaxy_fluxes` takes any K components and weights per source); **Calzetti et al. (2000)** dust on the stellar continuum with
  E(B−V)_star and on the nebular lines with E(B−V)_gas = E(B−V)_star / 0.44; **emission lines**
  whose Hα luminosity follows the template's own unreddened UV continuum through the
  Kennicutt (1998) star-formation calibrations (UV: SFR = 1.4e-28 L_ν, Hα: SFR = 7.9e-42 L),
  and the other lines from Case-B / typical nebular ratios (Lyα with a small escape fraction,
  [O II], Hγ, Hβ, [O III], [N II], [S II], Paβ, Paα). Early-type templates (Ell*, S0) get no lines;
  the Brown spectra carry their own.
- **QSOs**: a broken power law, f_ν ∝ ν^α blueward of 5000 Å (α ≈ −0.44 in the Vanden Berk
  et al. 2001 composite) and ν^(α−1) redward, a milder turn-up than the composite's −2.45
  (dominated by host light of low-luminosity QSOs) that keeps i − Ks ≈ 1–1.5 as for survey
  QSOs; plus broad and narrow lines with the composite's equivalent widths.
- **Stars**: blackbodies with analytic M-dwarf molecular bands (:mod:`distributed_pz.survey.sim.stars`).
- **IGM**: Madau (1995) Lyman-series line blanketing (Lyα–Lyδ plus the metal-line term) and
  photoelectric absorption (the analytic approximation of Madau's footnote), for galaxies
  and QSOs.

Synthetic photometry: for a rest-frame luminosity density L_λ at redshift z the band "flux"
used throughout is ``g_b(z) = ∫ L_λ(λ/(1+z)) T_b(λ) λ dλ / ((1+z) ∫ T_b(λ)/λ dλ)``, i.e. the
AB-weighted f_ν times 4π d_L² (up to one constant), so that
``m_b = M_r − 2.5 log10(g_b(z) / g_r(0)) + DM(z)`` with DM the distance modulus. To make
100k sources cheap the continua are tabulated once on a redshift grid (per template and
E(B−V), per QSO slope, per stellar temperature) and interpolated linearly in log flux;
lines are added analytically per source, so they are exact whatever the grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from distributed_pz.bands import BandSet
from distributed_pz.survey.sim.package_data import (
    FilterCurve,
    load_brown_templates,
    load_calzetti,
    load_filters,
    load_templates,
)
from distributed_pz.survey.sim.stars import stellar_sed

# --- IGM (Madau 1995) -------------------------------------------------------------------------
_LYMAN_SERIES = ((1215.67, 3.6e-3), (1025.72, 1.7e-3), (972.54, 1.2e-3), (949.74, 9.3e-4))
_LYMAN_LIMIT = 911.75


def madau_transmission(wave_obs: np.ndarray, z: np.ndarray | float) -> np.ndarray:
    """Mean IGM transmission exp(−τ_eff) at observed wavelength ``wave_obs`` [Å] for a source at ``z``.

    Madau (1995): Lyα…Lyδ blanketing, ``τ_j = A_j (λ/λ_j)^3.46`` for λ_j < λ < λ_j (1+z), the
    metal-line term ``0.0017 (λ/λ_α)^1.68`` with Lyα, and the photoelectric absorption by
    Lyman-limit systems below 912 (1+z) Å. Arrays broadcast; observed wavelengths below 912 Å
    are fully absorbed.
    """
    wave = np.asarray(wave_obs, dtype=np.float64)
    x_em = 1.0 + np.asarray(z, dtype=np.float64)
    tau = np.zeros(np.broadcast_shapes(wave.shape, x_em.shape))
    for line, coeff in _LYMAN_SERIES:
        ratio = wave / line
        inside = ratio < x_em
        tau += np.where(inside, coeff * ratio**3.46, 0.0)
        if line == _LYMAN_SERIES[0][0]:
            tau += np.where(inside, 1.7e-3 * ratio**1.68, 0.0)
    x_c = np.clip(wave / _LYMAN_LIMIT, 1.0, None)
    tau_c = (
        0.25 * x_c**3 * (x_em**0.46 - x_c**0.46)
        + 9.4 * x_c**1.5 * (x_em**0.18 - x_c**0.18)
        - 0.7 * x_c**3 * (x_c**-1.32 - x_em**-1.32)
        - 0.023 * (x_em**1.68 - x_c**1.68)
    )
    tau += np.where(wave / _LYMAN_LIMIT < x_em, np.clip(tau_c, 0.0, None), 0.0)
    return np.where(wave < _LYMAN_LIMIT, 0.0, np.exp(-tau))


def calzetti_k(wave_rest: np.ndarray) -> np.ndarray:
    """Calzetti et al. (2000) k(λ) = A_λ / E(B−V) at rest wavelength [Å] (0 redward of 2.8 µm)."""
    wave, k = load_calzetti()
    return np.interp(wave_rest, wave, k, left=k[0], right=0.0)


# --- emission lines --------------------------------------------------------------------------
GALAXY_LINES = (
    "Lya",
    "OII3727",
    "Hg",
    "Hb",
    "OIII4959",
    "OIII5007",
    "NII6548",
    "Ha",
    "NII6584",
    "SII",
    "Pab",
    "Paa",
)
"""Galaxy emission lines (vacuum wavelengths in :data:`GALAXY_LINE_WAVE`)."""
GALAXY_LINE_WAVE = np.array(
    [1215.67, 3728.5, 4341.7, 4862.7, 4960.3, 5008.2, 6549.9, 6564.6, 6585.3, 6725.0, 12821.6, 18756.1]
)
_HA_OVER_HB = 2.86  # Case B, 10^4 K
_LYA_OVER_HA = 8.7  # Case B
_KENNICUTT_HA_PER_UV_NU = 1.4e-28 / 7.9e-42  # L(Hα) [erg/s] per L_ν(UV) [erg/s/Hz]
_C_ANGSTROM = 2.99792458e18

QSO_LINES = ("LyB_OVI", "Lya_NV", "SiIV_OIV", "CIV", "CIII", "MgII", "Hg", "Hb", "OIII5007", "Ha")
QSO_LINE_WAVE = np.array([1033.8, 1216.3, 1397.6, 1546.2, 1905.9, 2800.3, 4342.0, 4862.7, 5008.2, 6564.6])
QSO_LINE_EW = np.array([9.1, 92.9, 8.1, 23.8, 21.2, 32.3, 12.6, 46.2, 13.2, 194.5])
"""Rest equivalent widths [Å] of the Vanden Berk et al. (2001) SDSS composite quasar."""
_QSO_BREAK = 5000.0


def galaxy_line_ratios(log_o3_hb: np.ndarray, n2_ha: np.ndarray, lya_escape: np.ndarray) -> np.ndarray:
    """Intrinsic line luminosities relative to Hα, shape ``(N, J)`` in :data:`GALAXY_LINES` order.

    Parameters
    ----------
    log_o3_hb
        log10 [O III] 5007 / Hβ, shape ``(N,)`` (about −0.5 for metal-rich discs, +0.6 for
        young starbursts).
    n2_ha
        [N II] 6584 / Hα, shape ``(N,)``.
    lya_escape
        Fraction of the Case-B Lyα that escapes the galaxy, shape ``(N,)``.
    """
    hb = np.full_like(n2_ha, 1.0 / _HA_OVER_HB)
    o3 = 10.0**log_o3_hb * hb
    columns = (
        _LYA_OVER_HA * lya_escape,
        np.full_like(hb, 0.8),  # [O II] 3727 (Kennicutt 1998 calibrations: ~0.6–1 × Hα)
        0.468 * hb,  # Hγ / Hβ, Case B
        hb,
        o3 / 2.98,
        o3,
        n2_ha / 3.05,
        np.ones_like(hb),
        n2_ha,
        np.full_like(hb, 0.3),  # [S II] 6717+6731
        0.163 * hb,  # Paβ / Hβ, Case B
        0.332 * hb,  # Paα / Hβ, Case B
    )
    return np.stack(columns, axis=-1)


# --- passbands -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Passbands:
    """Filter curves of a band set, with the normalisations synthetic photometry needs.

    Attributes
    ----------
    norm
        ``∫ T_b(λ)/λ dλ`` per band, shape ``(B,)``.
    pivot
        Pivot wavelength [Å] per band, shape ``(B,)``.
    """

    bands: tuple[str, ...]
    curves: tuple[FilterCurve, ...]
    norm: np.ndarray
    pivot: np.ndarray

    @classmethod
    def from_band_set(cls, band_set: BandSet, filter_files: tuple[str, ...] = ()) -> Passbands:
        """Passbands of ``band_set``: its shipped curves, or the user's ``filter_files`` (one per band)."""
        curves = load_filters(band_set, filter_files)
        norm = np.array([np.trapezoid(c.trans / c.wave, c.wave) for c in curves])
        pivot = np.sqrt(np.array([np.trapezoid(c.trans * c.wave, c.wave) for c in curves]) / norm)
        return cls(bands=band_set.bands, curves=curves, norm=norm, pivot=pivot)

    def transmission(self, wave_obs: np.ndarray) -> np.ndarray:
        """T_b at observed wavelengths, shape ``(B, *wave_obs.shape)`` (0 outside each curve)."""
        return np.stack([np.interp(wave_obs, c.wave, c.trans, left=0.0, right=0.0) for c in self.curves])

    def continuum_weights(self, wave_rest: np.ndarray, z: np.ndarray, igm: bool = True) -> np.ndarray:
        """Weights W with ``g_b(z) = W[z, b] @ L_λ`` for an SED sampled on the log-spaced ``wave_rest``.

        Returns shape ``(Z, B, L)``: ``T_b(λ(1+z)) λ² Δlnλ (1+z) / norm_b``, times the IGM
        transmission when ``igm``.
        """
        dln = np.log(wave_rest[-1] / wave_rest[0]) / (len(wave_rest) - 1)
        wave_obs = wave_rest[None, :] * (1.0 + z[:, None])  # (Z, L)
        weights = self.transmission(wave_obs).transpose(1, 0, 2)  # (Z, B, L)
        weights *= (wave_rest**2 * dln)[None, None, :] * (1.0 + z)[:, None, None] / self.norm[None, :, None]
        if igm:
            weights *= madau_transmission(wave_obs, z[:, None])[:, None, :]
        return weights

    def line_weights(self, line_wave: np.ndarray, z: np.ndarray, igm: bool = True) -> np.ndarray:
        """Band flux per unit line luminosity, shape ``(Z, J, B)``: ``T_b(λ_j(1+z)) λ_j (1+z) / norm_b``."""
        wave_obs = line_wave[None, :] * (1.0 + z[:, None])  # (Z, J)
        weights = self.transmission(wave_obs).transpose(1, 2, 0) * wave_obs[:, :, None] / self.norm
        if igm:
            weights *= madau_transmission(wave_obs, z[:, None])[:, :, None]
        return weights

    def synthetic_flux(self, wave: np.ndarray, flux: np.ndarray, z: float, igm: bool = True) -> np.ndarray:
        """Direct synthetic photometry ``g_b(z)`` of one rest-frame SED, shape ``(B,)``.

        Integrates on each filter's own wavelength grid (an independent path from the
        tabulated grids, used to check them).
        """
        out = np.empty(len(self.curves))
        for b, curve in enumerate(self.curves):
            sed = np.interp(curve.wave / (1.0 + z), wave, flux, left=0.0, right=0.0)
            if igm:
                sed = sed * madau_transmission(curve.wave, z)
            out[b] = np.trapezoid(sed * curve.trans * curve.wave, curve.wave) / ((1.0 + z) * self.norm[b])
        return out


# --- tabulated grids -------------------------------------------------------------------------
Z_STEP = 0.0025
Z_GRID_MAX = 4.0
EBV_GRID = np.array([0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8])
QSO_ALPHA_GRID = np.linspace(-2.0, 1.0, 13)
STAR_LOG_T_GRID = np.linspace(np.log10(2300.0), np.log10(40000.0), 80)


@dataclass(frozen=True)
class SedGrids:
    """Continuum photometry tabulated on a redshift grid, for one band set.

    Attributes
    ----------
    z
        Redshift grid, shape ``(Z,)``, uniform with step :data:`Z_STEP` from 0.
    template_names
        Galaxy templates: the :data:`N_SEQUENCE` COSMOS sequence (red to blue), then the Brown
        et al. (2014) spectra (red to blue), shape ``(T,)``.
    template_colour
        Rest-frame colour proxy of each template, −2.5 log10 of the f_ν ratio of 3400–3800 Å to
        6000–6600 Å (≈ u − r), shape ``(T,)``.
    galaxy_log_flux
        ln g_b per template and E(B−V) (:data:`EBV_GRID`), shape ``(T, E, Z, B)``, each (T, E)
        normalised to g_r(0) = 1 (so M_r is the dust-attenuated absolute magnitude).
    galaxy_halpha
        Intrinsic Hα luminosity in the same normalisation, shape ``(T, E)`` (0 for early types).
    galaxy_line_weights, qso_line_weights
        :meth:`Passbands.line_weights` of the galaxy / QSO lines on the grid, ``(Z, J, B)``.
    qso_log_flux
        ln g_b of the QSO continuum per slope (:data:`QSO_ALPHA_GRID`), ``(A, Z, B)``, in the
        units of :func:`qso_continuum`.
    star_colour
        m_b − m_r of :func:`~distributed_pz.survey.sim.stars.stellar_sed` per log10 T
        (:data:`STAR_LOG_T_GRID`), ``(S, B)``.
    """

    passbands: Passbands
    z: np.ndarray
    template_names: tuple[str, ...]
    template_colour: np.ndarray
    galaxy_log_flux: np.ndarray
    galaxy_halpha: np.ndarray
    galaxy_line_weights: np.ndarray
    qso_log_flux: np.ndarray
    qso_line_weights: np.ndarray
    star_colour: np.ndarray

    @property
    def r_index(self) -> int:
        return self.passbands.bands.index("r")


def qso_continuum(wave_rest: np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
    """QSO continuum f_λ (1 at 5000 Å): f_ν ∝ ν^α below 5000 Å, ν^(α−1) above; arrays broadcast."""
    slope = np.where(wave_rest < _QSO_BREAK, -(2.0 + np.asarray(alpha)), -(1.0 + np.asarray(alpha)))
    return (wave_rest / _QSO_BREAK) ** slope


N_SEQUENCE = 14
"""The first 14 templates of :class:`SedGrids` are the COSMOS sequence; the rest are Brown et al. (2014)."""


def all_templates() -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Names, rest wavelength ``(L,)`` and f_λ ``(T, L)`` of the COSMOS sequence then the Brown spectra."""
    cosmos, brown = load_templates(), load_brown_templates()
    if not np.array_equal(cosmos.wave, brown.wave):
        raise ValueError("shipped template files must share one wavelength grid")
    return cosmos.names + brown.names, cosmos.wave, np.concatenate([cosmos.flux, brown.flux])


def attenuated_templates(ebv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Template f_λ with Calzetti dust for every template and E(B−V): wave ``(L,)`` and ``(T, E, L)``."""
    _, wave, flux = all_templates()
    dust = 10.0 ** (-0.4 * calzetti_k(wave)[None, :] * ebv[:, None])  # (E, L)
    return wave, flux[:, None, :] * dust[None, :, :]


def template_colour(wave: np.ndarray, flux: np.ndarray) -> np.ndarray:
    """Rest-frame ≈ u − r of each template ``(T, L)``: f_ν ratio of 3400–3800 Å to 6000–6600 Å, in mag."""
    blue = flux[:, (wave > 3400.0) & (wave < 3800.0)].mean(axis=1) * 3600.0**2
    red = flux[:, (wave > 6000.0) & (wave < 6600.0)].mean(axis=1) * 6300.0**2
    return -2.5 * np.log10(blue / red)


def template_halpha(wave: np.ndarray, flux: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Kennicutt (1998) Hα luminosity of each unreddened template ``flux`` ``(T, L)`` → ``(T,)``.

    ``L(Hα) = (1.4e-28 / 7.9e-42) <L_ν>_{1500–2800 Å}`` for the star-forming COSMOS templates;
    early types (Ell*, S0), whose UV comes from old stars, get none, and neither do the Brown
    spectra (their own lines are in the spectrum).
    """
    uv = (wave >= 1500.0) & (wave <= 2800.0)
    l_nu = (flux[:, uv] * wave[uv] ** 2 / _C_ANGSTROM).mean(axis=1)
    forming = np.array(
        [i < N_SEQUENCE and not (n.startswith("Ell") or n.startswith("S0")) for i, n in enumerate(names)]
    )
    return _KENNICUTT_HA_PER_UV_NU * l_nu * forming


@lru_cache(maxsize=4)
def sed_grids(band_set: BandSet, filter_files: tuple[str, ...] = ()) -> SedGrids:
    """Tabulate continuum photometry for ``band_set`` (a few seconds; cached per process).

    ``filter_files`` replace the shipped curves (one per band, as :func:`load_filters`).
    """
    passbands = Passbands.from_band_set(band_set, filter_files)
    r = passbands.bands.index("r")
    z = np.arange(0.0, Z_GRID_MAX + Z_STEP / 2, Z_STEP)
    names, _, unreddened = all_templates()
    wave, sed = attenuated_templates(EBV_GRID)  # (T, E, L)
    n_t, n_e, _ = sed.shape
    qso = qso_continuum(wave[None, :], QSO_ALPHA_GRID[:, None])  # (A, L)
    flat = np.concatenate([sed.reshape(n_t * n_e, -1), qso])
    flux = np.empty((len(flat), len(z), len(passbands.bands)))
    for start in range(0, len(z), 200):
        stop = min(start + 200, len(z))
        weights = passbands.continuum_weights(wave, z[start:stop])  # (Zc, B, L)
        flux[:, start:stop] = np.einsum("zbl,sl->szb", weights, flat, optimize=True)
    tiny = np.finfo(np.float64).tiny
    galaxy = flux[: n_t * n_e].reshape(n_t, n_e, len(z), -1)
    norm = galaxy[:, :, :1, r : r + 1]  # (T, E, 1, 1): g_r(0)
    halpha = template_halpha(wave, unreddened, names)[:, None] / norm[:, :, 0, 0]
    star_wave = np.exp(np.linspace(np.log(900.0), np.log(60000.0), 4000))
    stars = np.stack(
        [passbands.synthetic_flux(star_wave, stellar_sed(star_wave, 10.0**lt), 0.0) for lt in STAR_LOG_T_GRID]
    )
    return SedGrids(
        passbands=passbands,
        z=z,
        template_names=names,
        template_colour=template_colour(wave, unreddened),
        galaxy_log_flux=np.log(np.maximum(galaxy / norm, tiny)),
        galaxy_halpha=halpha,
        galaxy_line_weights=passbands.line_weights(GALAXY_LINE_WAVE, z),
        qso_log_flux=np.log(np.maximum(flux[n_t * n_e :], tiny)),
        qso_line_weights=passbands.line_weights(QSO_LINE_WAVE, z),
        star_colour=-2.5 * np.log10(stars / stars[:, r : r + 1]),
    )


# --- per-source photometry -------------------------------------------------------------------
def _grid_position(values: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower index and fractional offset of ``values`` on an increasing ``grid`` (clamped)."""
    index = np.clip(np.searchsorted(grid, values, side="right") - 1, 0, len(grid) - 2)
    frac = np.clip((values - grid[index]) / (grid[index + 1] - grid[index]), 0.0, 1.0)
    return index, frac


def _lerp_z(table: np.ndarray, grids: SedGrids, z: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``table`` (redshift on axis 0) at per-source ``z``: ``(N, ...)``."""
    iz, fz = _grid_position(z, grids.z)
    fz = fz.reshape((-1,) + (1,) * (table.ndim - 1))
    return (1 - fz) * table[iz] + fz * table[iz + 1]


def sequence_mixture(sed_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Components and weights ``(N, 2)`` of a continuous position ``0 … N_SEQUENCE−1`` in the COSMOS sequence."""
    it = np.clip(np.floor(sed_index).astype(np.intp), 0, N_SEQUENCE - 2)
    ft = np.clip(sed_index - it, 0.0, 1.0)
    return np.stack([it, it + 1], axis=1), np.stack([1.0 - ft, ft], axis=1)


def galaxy_fluxes(
    grids: SedGrids,
    components: np.ndarray,
    weights: np.ndarray,
    ebv: np.ndarray,
    z: np.ndarray,
    line_ratios: np.ndarray | None = None,
) -> np.ndarray:
    """Band fluxes g_b of galaxies, shape ``(N, B)``, continuum normalised to g_r(z=0) = 1.

    Parameters
    ----------
    components, weights
        Template indices into ``grids.template_names`` and their weights, shape ``(N, K)``:
        the galaxy's f_λ is the weighted sum of the normalised template f_λ (and of their Hα).
    ebv
        Stellar E(B−V), shape ``(N,)``; interpolated linearly in magnitude between grid values.
    z
        Redshift, shape ``(N,)``.
    line_ratios
        Emission-line luminosities relative to the template's Hα, shape ``(N, J)``
        (:func:`galaxy_line_ratios`, times any per-source scaling); ``None`` for the continuum only.
    """
    ie, fe = _grid_position(ebv, EBV_GRID)
    iz, fz = _grid_position(z, grids.z)
    flux = np.zeros((len(z), len(grids.passbands.bands)))  # (N, B)
    halpha = np.zeros(len(z))
    for t, weight in zip(components.T, weights.T, strict=True):
        log_flux = np.zeros_like(flux)
        for de, we in ((0, 1.0 - fe), (1, fe)):
            for dz, wz in ((0, 1.0 - fz), (1, fz)):
                log_flux += (we * wz)[:, None] * grids.galaxy_log_flux[t, ie + de, iz + dz]
        flux += weight[:, None] * np.exp(log_flux)
        halpha += weight * ((1 - fe) * grids.galaxy_halpha[t, ie] + fe * grids.galaxy_halpha[t, ie + 1])
    if line_ratios is None:
        return flux
    dust = 10.0 ** (-0.4 * calzetti_k(GALAXY_LINE_WAVE)[None, :] * (ebv / 0.44)[:, None])  # (N, J)
    lines = halpha[:, None] * line_ratios * dust  # (N, J)
    return flux + np.einsum("nj,njb->nb", lines, _lerp_z(grids.galaxy_line_weights, grids, z))


def qso_fluxes(grids: SedGrids, alpha: np.ndarray, z: np.ndarray, line_scale: np.ndarray) -> np.ndarray:
    """Band fluxes g_b of QSOs (continuum + lines, IGM-attenuated), shape ``(N, B)``.

    Parameters
    ----------
    alpha
        Blue continuum slope (f_ν ∝ ν^α), shape ``(N,)``.
    z
        Redshift, shape ``(N,)``.
    line_scale
        Per-source multiplier of each line's composite equivalent width, shape ``(N, J)``.
    """
    ia, fa = _grid_position(alpha, QSO_ALPHA_GRID)
    iz, fz = _grid_position(z, grids.z)
    log_flux = np.zeros((len(z), len(grids.passbands.bands)))  # (N, B)
    for da, wa in ((0, 1.0 - fa), (1, fa)):
        for dz, wz in ((0, 1.0 - fz), (1, fz)):
            log_flux += (wa * wz)[:, None] * grids.qso_log_flux[ia + da, iz + dz]
    lines = (
        QSO_LINE_EW[None, :] * line_scale * qso_continuum(QSO_LINE_WAVE[None, :], alpha[:, None])
    )  # (N, J)
    return np.exp(log_flux) + np.einsum("nj,njb->nb", lines, _lerp_z(grids.qso_line_weights, grids, z))


def star_colours(grids: SedGrids, temperature: np.ndarray) -> np.ndarray:
    """Stellar colours m_b − m_r at effective ``temperature`` [K], shape ``(N, B)``."""
    it, ft = _grid_position(np.log10(temperature), STAR_LOG_T_GRID)
    return (1 - ft)[:, None] * grids.star_colour[it] + ft[:, None] * grids.star_colour[it + 1]
