"""Who is in a simulated tile: classes, redshifts, luminosities, SED types, dust and shapes.

The galaxy sample mimics the GaZNet spectroscopic sample (Li et al. 2022, §2.2 and Fig. 2):
three selections, each magnitude-limited in the selection band (r by default) and drawn from
luminosity functions through the Planck18 volume element with exact K-corrections,

- **wide** (GAMA-like, most of the sample): r < 20, which puts the n(z) peak at z ≈ 0.2;
- **deep** (zCOSMOS-bright/DEEP2-like): r < 22.5, median z ≈ 0.6;
- **high-z** (zCOSMOS-deep-like): z in [0.8, z_max], half flat and half in a peak at z ≈ 2.3,
  down to the tile's r limit,

so most galaxies have r < 21 and z < 0.8 with a thin tail to z = 3. Every limit is smeared by a
logistic (``selection_softness_mag``), so completeness falls smoothly. Two populations, early
(Ell–S0 templates) and late (Sa–SB), each have a Schechter r-band luminosity function (GAMA,
Loveday et al. 2012, at h = 0.7: M* = −21.3, α = −0.5 and M* = −20.9, α = −1.3) with M*
brightening by one magnitude per unit redshift (up to z = 2) and the early-type density falling
as (1+z)^−3 (the red fraction of i-selected samples drops with z, as in zCOSMOS). The SED depends
on luminosity (fainter galaxies are bluer, a colour–luminosity relation) and redshift (late types
younger at high z); :mod:`~distributed_pz.survey.sim.diversity` adds real-galaxy partners, dust-law
slopes and intrinsic colour scatter. Sizes follow size–luminosity relations by type with
van der Wel et al. (2014)-like redshift evolution; bulge fractions follow the Hubble type and
the colour; star-forming galaxies carry clumps.

Stars have :mod:`~distributed_pz.survey.sim.stars` SEDs (blackbodies with M-dwarf molecular bands)
with a halo-turn-off / M-dwarf / hot-star temperature mixture and shallow number counts; QSOs
have z peaking near 1.2–2 and steep counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from astropy.cosmology import Planck18

from distributed_pz.survey.sim import diversity, sed
from distributed_pz.survey.store.schema import CLASS_GALAXY, CLASS_QSO, CLASS_STAR

N_EARLY_TEMPLATES = 5
"""Templates 0–4 (Ell1, Ell3, Ell5, Ell7, S0) are early types; 5–13 (Sa … SB11) late types."""
_BULGE_FRACTION = np.array([0.95, 0.95, 0.95, 0.95, 0.6, 0.45, 0.3, 0.15, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0])
"""Typical bulge-to-total ratio per template (Hubble type)."""
_LATE_SPAN = 6.0
"""Ordinary late types span Sa (5) … SB5 (11) of the sequence."""
_BURST_FRACTION = 0.04
"""Share of late types (× (1+z)) that are young starbursts (SB5 … SB11)."""


@dataclass(frozen=True)
class Schechter:
    """An r-band Schechter luminosity function with simple evolution.

    ``M*(z) = m_star − q_evol · min(z, 2)``, ``φ*(z) = phi_star · (1+z)^phi_evol``.
    """

    m_star: float
    alpha: float
    phi_star: float
    q_evol: float
    phi_evol: float

    def m_star_at(self, z: np.ndarray) -> np.ndarray:
        return self.m_star - self.q_evol * np.minimum(z, 2.0)

    def phi_star_at(self, z: np.ndarray) -> np.ndarray:
        return self.phi_star * (1.0 + z) ** self.phi_evol


EARLY = Schechter(m_star=-21.3, alpha=-0.5, phi_star=2.2e-3, q_evol=1.0, phi_evol=-3.0)
LATE = Schechter(m_star=-20.9, alpha=-1.3, phi_star=4.0e-3, q_evol=1.0, phi_evol=0.0)
_X_GRID = np.linspace(-6.0, 10.0, 1601)
"""M − M* grid of the tabulated luminosity-function CDFs."""


@dataclass(frozen=True)
class Selection:
    """One magnitude-limited galaxy selection: its share of galaxies, limit in the selection band and z range.

    ``peak_fraction`` of a ``uniform_z`` selection is drawn instead from a Gaussian in z at
    ``peak_z`` (σ ``peak_width``), clipped to the range: the z ≈ 2.3 peak of zCOSMOS-deep-like
    samples.
    """

    fraction: float
    r_limit: float
    z_lo: float
    z_hi: float
    uniform_z: bool
    peak_fraction: float = 0.0
    peak_z: float = 2.3
    peak_width: float = 0.35


@dataclass(frozen=True)
class GalaxyKnobs:
    """Per-galaxy realism settings (see :class:`~distributed_pz.survey.sim.simulate.SimulationConfig`)."""

    selection_softness_mag: float
    colour_luminosity: float
    partner_weight_max: float
    dust_slope_mean: float
    dust_slope_sigma: float
    colour_scatter_mag: float
    line_strength: float
    line_scatter_dex: float
    sed_correction: float = 1.0
    partner_spread: int = 2


@dataclass(frozen=True)
class Cosmology:
    """Planck18 distances on the SED redshift grid (z = 0 entries are unused placeholders)."""

    z: np.ndarray
    distance_modulus: np.ndarray
    angular_diameter_kpc: np.ndarray
    volume_element: np.ndarray


@cache
def cosmology(z_grid_key: tuple[float, float, int]) -> Cosmology:
    """Planck18 distance modulus, D_A [kpc] and dV/dz/dΩ on ``linspace(*z_grid_key)``."""
    z = np.linspace(*z_grid_key)
    zz = np.maximum(z, 1e-4)
    return Cosmology(
        z=z,
        distance_modulus=Planck18.distmod(zz).value,
        angular_diameter_kpc=Planck18.angular_diameter_distance(zz).to("kpc").value,
        volume_element=Planck18.differential_comoving_volume(zz).value,
    )


def _lf_cdf(lf: Schechter) -> np.ndarray:
    """Cumulative number (bright to faint) of ``lf`` on :data:`_X_GRID`, per unit φ*."""
    ten = 10.0 ** (-0.4 * _X_GRID)
    density = 0.4 * np.log(10.0) * ten ** (lf.alpha + 1.0) * np.exp(-ten)
    return np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(_X_GRID))])


def _interp_table(x: np.ndarray, grid: np.ndarray, table: np.ndarray) -> np.ndarray:
    return np.interp(np.clip(x, grid[0], grid[-1]), grid, table)


class GalaxyModel:
    """Tabulated n(z) per selection and population, and the per-galaxy sampling that uses them.

    Parameters
    ----------
    grids
        SED grids of the band set (for K-corrections).
    selections
        The magnitude-limited selections (fractions sum to 1).
    r_bright
        Bright magnitude limit of every selection.
    selection_band
        Band index of the selection magnitude (r for KiDS and SDSS, i for zCOSMOS).
    knobs
        Realism settings.
    """

    def __init__(
        self,
        grids: sed.SedGrids,
        selections: tuple[Selection, ...],
        r_bright: float,
        selection_band: int,
        knobs: GalaxyKnobs,
    ) -> None:
        self.grids = grids
        self.selections = selections
        self.r_bright = r_bright
        self.band = selection_band
        self.knobs = knobs
        z = grids.z
        self.cosmo = cosmology((float(z[0]), float(z[-1]), len(z)))
        self.lfs = (EARLY, LATE)
        self.cdfs = tuple(_lf_cdf(lf) for lf in self.lfs)
        # representative K-corrections for the n(z) tables: Ell5–Ell7 and Sc with E(B−V) = 0.1
        n = len(z)
        reps = ((2.5, 0.0), (7.0, 0.1))
        self.k_rep = tuple(
            -2.5
            * np.log10(
                sed.galaxy_fluxes(grids, *sed.sequence_mixture(np.full(n, t)), np.full(n, e), z)[:, self.band]
            )
            for t, e in reps
        )
        self.density = tuple(self._density(s) for s in selections)  # each (2, Z)

    def _density(self, sel: Selection) -> np.ndarray:
        """dN/dz per population for one selection, shape ``(2, Z)``."""
        z, out = self.grids.z, []
        inside = (z >= sel.z_lo) & (z <= sel.z_hi) & (z > 0)
        for lf, cdf, k in zip(self.lfs, self.cdfs, self.k_rep, strict=True):
            shift = self.cosmo.distance_modulus + k + lf.m_star_at(z)
            count = _interp_table(sel.r_limit - shift, _X_GRID, cdf) - _interp_table(
                self.r_bright - shift, _X_GRID, cdf
            )
            out.append(np.where(inside, self.cosmo.volume_element * lf.phi_star_at(z) * count, 0.0))
        return np.array(out)

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Draw ``n`` galaxies: redshift, luminosity, SED, dust, lines, size and shape.

        The luminosity quantile is drawn first and gives a provisional M − M* (with a
        representative K-correction), on which the SED depends (fainter galaxies are bluer);
        the final M_r then comes from the same quantile with the galaxy's exact K-correction.
        Each galaxy's magnitude limit is its selection's, smeared by a logistic of scale
        ``selection_softness_mag`` (clipped at ±5 scales): completeness falls smoothly.

        Returns
        -------
        dict
            ``z``, ``sed_index``, ``partner``, ``partner_weight``, ``ebv``, ``dust_slope``,
            ``abs_mag_r``, ``early`` (bool), ``line_ratios`` ``(n, J)``, ``mag`` ``(n, B)``,
            ``colour_offset`` ``(n, B)``, ``r_eff_arcsec``, ``bulge_fraction``,
            ``bulge_r_eff_arcsec``, ``q_disk``, ``q_bulge``, ``pa``, ``clump_fraction``.
        """
        k = self.knobs
        fractions = np.array([s.fraction for s in self.selections])
        which = rng.choice(len(self.selections), size=n, p=fractions / fractions.sum())
        z = np.empty(n)
        early = np.empty(n, dtype=bool)
        for i in range(len(self.selections)):
            rows = np.flatnonzero(which == i)
            z[rows], early[rows] = self._sample_z(rng, i, len(rows))
        soft = k.selection_softness_mag * np.clip(rng.logistic(0.0, 1.0, n), -5.0, 5.0)
        limits = np.array([s.r_limit for s in self.selections])[which] + soft
        quantile = rng.random(n)
        k_rep = np.where(
            early, np.interp(z, self.grids.z, self.k_rep[0]), np.interp(z, self.grids.z, self.k_rep[1])
        )
        dm_guess = self._abs_mag(z, early, 10.0 ** (-0.4 * k_rep), limits, quantile) - self._m_star(z, early)
        sed_index, ebv = self._sample_sed(rng, z, early, dm_guess)
        colour = diversity.sequence_colour(self.grids, sed_index)
        partner = diversity.brown_partners(rng, self.grids, colour, k.partner_spread)
        partner_weight = k.partner_weight_max * rng.random(n)
        seq_components, seq_weights = sed.sequence_mixture(sed_index)
        components = np.concatenate([seq_components, partner[:, None]], axis=1)
        weights = np.concatenate(
            [seq_weights * (1.0 - partner_weight)[:, None], partner_weight[:, None]], axis=1
        )
        continuum = sed.galaxy_fluxes(self.grids, components, weights, ebv, z)
        abs_mag = self._abs_mag(z, early, continuum[:, self.band], limits, quantile)
        line_ratios = self._sample_lines(rng, sed_index)
        flux = sed.galaxy_fluxes(self.grids, components, weights, ebv, z, line_ratios)
        slope = rng.normal(k.dust_slope_mean, k.dust_slope_sigma, n)
        offset = diversity.dust_slope_offsets(self.grids, z, ebv, slope, self.band)
        offset += diversity.intrinsic_offsets(rng, self.grids, z, k.colour_scatter_mag, self.band)
        offset += diversity.calibrated_offsets(self.grids, z, k.sed_correction, self.band)
        distmod = np.interp(z, self.cosmo.z, self.cosmo.distance_modulus)
        mag = abs_mag[:, None] - 2.5 * np.log10(np.maximum(flux, 1e-300)) + distmod[:, None] + offset
        rest_colour = colour + offset[:, 0] - offset[:, self.grids.r_index]
        shapes = self._sample_shapes(
            rng, z, early, sed_index, rest_colour - colour, abs_mag - self._m_star(z, early)
        )
        return {
            "z": z,
            "sed_index": sed_index,
            "partner": partner.astype(np.float64),
            "partner_weight": partner_weight,
            "ebv": ebv,
            "dust_slope": slope,
            "abs_mag_r": abs_mag,
            "early": early,
            "line_ratios": line_ratios,
            "mag": mag,
            "colour_offset": offset,
            **shapes,
        }

    def _m_star(self, z: np.ndarray, early: np.ndarray) -> np.ndarray:
        return np.where(early, EARLY.m_star_at(z), LATE.m_star_at(z))

    def _sample_z(self, rng: np.random.Generator, i: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        sel, density, z = self.selections[i], self.density[i], self.grids.z
        if sel.uniform_z:
            peaked = rng.random(n) < sel.peak_fraction
            zs = np.where(
                peaked,
                np.clip(rng.normal(sel.peak_z, sel.peak_width, n), sel.z_lo, sel.z_hi),
                rng.uniform(sel.z_lo, sel.z_hi, n),
            )
            at = np.stack([np.interp(zs, z, d) for d in density])  # (2, n)
            early = rng.random(n) * at.sum(axis=0) < at[0]
            return zs, early
        cells = (density[:, :-1] + density[:, 1:]).ravel()  # (2 * (Z-1),) piecewise-constant cells
        cdf = np.cumsum(cells) / cells.sum()
        cell = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cells) - 1)
        pop, iz = np.divmod(cell, len(z) - 1)
        zs = np.clip(z[iz] + rng.random(n) * (z[1] - z[0]), sel.z_lo, sel.z_hi)
        return zs, pop == 0

    def _sample_sed(
        self, rng: np.random.Generator, z: np.ndarray, early: np.ndarray, dm_star: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Continuous COSMOS-sequence position and E(B−V), bluer for fainter galaxies.

        Early types: index ``4 − U w(z) − c_L max(dm, 0) · 2`` with w = min(4, 2 + 2z) (the S0/Ell7
        end at low z, towards the younger Ell1 at z ≳ 1 and at low luminosity). Late types:
        ``5 + 6 U^a`` (Sa … SB5) with ``a = 1.5/(1+z)³ · 10^(−c_L dm)`` (Sb–Sd typical for L* at
        z ≈ 0, bluer towards high z and low luminosity), ``dm = M − M*`` (clipped to [−2, 3]),
        ``c_L`` = ``colour_luminosity``; a share 0.04 (1+z) of late types are young starbursts
        (uniform over SB5 … SB11). Dust: E(B−V) exponential with mean 0.08 (1+z) (≤ 0.6), a third of it
        at Sa ramping to all of it from Sdm on (Ilbert et al. 2009 redden only blue templates).
        """
        c_l = self.knobs.colour_luminosity
        u = rng.random(len(z))
        late_power = 1.5 / (1.0 + z) ** 3 * 10.0 ** (-c_l * np.clip(dm_star, -2.0, 3.0))
        index = np.where(
            early,
            np.clip(
                (N_EARLY_TEMPLATES - 1)
                - u * np.minimum(N_EARLY_TEMPLATES - 1, 2.0 + 2.0 * z)
                - 2.0 * c_l * np.clip(dm_star, 0.0, 5.0),
                0.0,
                N_EARLY_TEMPLATES - 1,
            ),
            N_EARLY_TEMPLATES + _LATE_SPAN * u**late_power,
        )
        burst = ~early & (rng.random(len(z)) < _BURST_FRACTION * (1.0 + z))
        index = np.where(
            burst, rng.uniform(N_EARLY_TEMPLATES + _LATE_SPAN, len(_BULGE_FRACTION) - 1, len(z)), index
        )
        ramp = np.clip((index - 5.0) / 5.0, 0.0, 1.0) * (2.0 / 3.0) + np.where(index >= 5.0, 1.0 / 3.0, 0.0)
        ebv = np.minimum(0.08 * (1.0 + z) * rng.exponential(1.0, len(z)), 0.6) * ramp
        return index, ebv

    def _abs_mag(
        self,
        z: np.ndarray,
        early: np.ndarray,
        g_band: np.ndarray,
        limit: np.ndarray,
        quantile: np.ndarray,
    ) -> np.ndarray:
        """M_r at luminosity-function ``quantile`` truncated so that r_bright ≤ m (continuum) ≤ ``limit``."""
        shift = np.interp(z, self.cosmo.z, self.cosmo.distance_modulus) - 2.5 * np.log10(g_band)
        out = np.empty(len(z))
        for pop, (lf, cdf) in enumerate(zip(self.lfs, self.cdfs, strict=True)):
            rows = np.flatnonzero(early == (pop == 0))
            m_star = lf.m_star_at(z[rows])
            lo = _interp_table(self.r_bright - shift[rows] - m_star, _X_GRID, cdf)
            hi = _interp_table(limit[rows] - shift[rows] - m_star, _X_GRID, cdf)
            x = np.interp(lo + quantile[rows] * (hi - lo), cdf, _X_GRID)
            out[rows] = np.minimum(m_star + x, limit[rows] - shift[rows])
        return out

    def _sample_lines(self, rng: np.random.Generator, sed_index: np.ndarray) -> np.ndarray:
        """Line luminosities relative to the template's Hα, ``(n, J)``.

        The Hα luminosity is the star-formation rate of the template's UV (Kennicutt 1998) times
        ``line_strength`` (UV-to-Hα ratios of real galaxies scatter below the Case-B value:
        bursty histories, escape of ionising photons) with a log-normal scatter of
        ``line_scatter_dex``. Starburstiness s = 0 (Sa) … 1 (SB11) sets log [O III]/Hβ =
        −0.4 + s (±0.15 dex), [N II]/Hα = 0.45 − 0.35 s and a Lyα escape fraction up to 0.2 s.
        """
        n = len(sed_index)
        s = np.clip((sed_index - N_EARLY_TEMPLATES) / (len(_BULGE_FRACTION) - 1 - N_EARLY_TEMPLATES), 0, 1)
        ratios = sed.galaxy_line_ratios(
            log_o3_hb=-0.4 + s + rng.normal(0.0, 0.15, n),
            n2_ha=(0.45 - 0.35 * s) * 10.0 ** rng.normal(0.0, 0.1, n),
            lya_escape=0.2 * s * rng.random(n),
        )
        scale = self.knobs.line_strength * 10.0 ** rng.normal(0.0, self.knobs.line_scatter_dex, n)
        return ratios * scale[:, None]

    def _sample_shapes(
        self,
        rng: np.random.Generator,
        z: np.ndarray,
        early: np.ndarray,
        sed_index: np.ndarray,
        redder: np.ndarray,
        dm_star: np.ndarray,
    ) -> dict[str, np.ndarray]:
        """Half-light radii, bulge/disc shapes and star-forming clumps.

        R_e = R0 (L/L*)^β (1+z)^−γ with scatter σ (dex): early R0 = 4 kpc, β = 0.6, γ = 1.3,
        σ = 0.15; late R0 = 5 kpc, β = 0.3, γ = 0.75, σ = 0.2 (Shen et al. 2003 slopes,
        van der Wel et al. 2014 evolution), converted to arcsec with the Planck18 D_A and
        clipped to [0.05″, 8″]. The bulge fraction follows the template's Hubble type and the
        galaxy's colour: +0.8 per magnitude the rest u − r is redder than its template (±0.08);
        the bulge radius is (0.25 + 0.75 B/T) R_e; discs are thick (q₀ = 0.2) and randomly
        inclined, bulges have q ~ N(0.75, 0.15); one position angle for both. Late types put
        ``clump_fraction`` of their r light into compact star-forming knots: up to 0.25 s
        (starburstiness s) at z = 0, growing as (1+z) (clumpy discs at z ~ 2, capped at 0.5).
        """
        n = len(z)
        lum = 10.0 ** (-0.4 * dm_star)
        r0, beta, gamma, sigma = (
            np.where(early, a, b) for a, b in ((4.0, 5.0), (0.6, 0.3), (1.3, 0.75), (0.15, 0.2))
        )
        r_kpc = r0 * lum**beta * (1.0 + z) ** -gamma * 10.0 ** (sigma * rng.normal(size=n))
        d_a = np.interp(z, self.cosmo.z, self.cosmo.angular_diameter_kpc)
        r_eff = np.clip(r_kpc / d_a * 206264.806, 0.05, 8.0)
        bt = np.clip(
            np.interp(sed_index, np.arange(len(_BULGE_FRACTION)), _BULGE_FRACTION)
            + 0.8 * redder
            + rng.normal(0, 0.08, n),
            0,
            1,
        )
        s = np.clip((sed_index - N_EARLY_TEMPLATES) / (len(_BULGE_FRACTION) - 1 - N_EARLY_TEMPLATES), 0, 1)
        clumps = np.where(early, 0.0, np.minimum(0.25 * s * (1.0 + z) * rng.random(n), 0.5))
        cos_i = rng.random(n)
        return {
            "r_eff_arcsec": r_eff,
            "bulge_fraction": bt,
            "bulge_r_eff_arcsec": (0.25 + 0.75 * bt) * r_eff,
            "q_disk": np.sqrt(cos_i**2 * (1 - 0.2**2) + 0.2**2),
            "q_bulge": np.clip(rng.normal(0.75, 0.15, n), 0.4, 1.0),
            "pa": rng.uniform(0.0, np.pi, n),
            "clump_fraction": clumps,
        }


def truncated_counts(rng: np.random.Generator, n: int, slope: float, lo: float, hi: float) -> np.ndarray:
    """Magnitudes in [lo, hi] with number counts dN/dm ∝ 10^(slope · m)."""
    a, b = 10.0 ** (slope * lo), 10.0 ** (slope * hi)
    return np.log10(a + rng.random(n) * (b - a)) / slope


def sample_stars(
    rng: np.random.Generator, grids: sed.SedGrids, n: int, r_bright: float, r_limit: float
) -> dict[str, np.ndarray]:
    """Stars: ``temperature`` [K] and ``mag`` ``(n, B)``.

    log T from a mixture: 55 % halo turn-off/G–K (N(log 5600 K, 0.05 dex)), 40 % M dwarfs
    (N(log 3400 K, 0.04 dex)), 5 % hot stars (uniform 7000–20 000 K in log); r counts
    dN/dm ∝ 10^(0.1 m) (high-latitude field).
    """
    kind = rng.choice(3, size=n, p=[0.55, 0.40, 0.05])
    log_t = np.choose(
        kind,
        [
            rng.normal(np.log10(5600.0), 0.05, n),
            rng.normal(np.log10(3400.0), 0.04, n),
            rng.uniform(np.log10(7000.0), np.log10(20000.0), n),
        ],
    )
    temperature = 10.0 ** np.clip(log_t, sed.STAR_LOG_T_GRID[0], sed.STAR_LOG_T_GRID[-1])
    r = truncated_counts(rng, n, 0.1, r_bright, r_limit)
    return {"temperature": temperature, "mag": r[:, None] + sed.star_colours(grids, temperature)}


def sample_qsos(
    rng: np.random.Generator, grids: sed.SedGrids, n: int, r_bright: float, r_limit: float, z_max: float
) -> dict[str, np.ndarray]:
    """QSOs: ``z``, ``alpha`` and ``mag`` ``(n, B)``.

    p(z) ∝ z² exp(−z/0.6) on [0.3, z_max] (mode 1.2, mean ≈ 1.5 below z = 3); α ~ N(−0.44, 0.3);
    every line's EW scatters by 0.15 dex around the composite, all lines together by 0.2 dex;
    r counts dN/dm ∝ 10^(0.3 m) from r_bright + 1.
    """
    z_grid = np.linspace(0.3, max(z_max, 0.31), 512)
    cdf = np.cumsum(z_grid**2 * np.exp(-z_grid / 0.6))
    z = np.interp(rng.random(n) * cdf[-1], cdf, z_grid)
    alpha = np.clip(rng.normal(-0.44, 0.3, n), sed.QSO_ALPHA_GRID[0], sed.QSO_ALPHA_GRID[-1])
    line_scale = 10.0 ** (rng.normal(0.0, 0.2, (n, 1)) + rng.normal(0.0, 0.15, (n, len(sed.QSO_LINES))))
    flux = sed.qso_fluxes(grids, alpha, z, line_scale)
    r = truncated_counts(rng, n, 0.3, r_bright + 1.0, r_limit)
    mag = r[:, None] - 2.5 * np.log10(np.maximum(flux, 1e-300) / flux[:, grids.r_index : grids.r_index + 1])
    return {"z": z, "alpha": alpha, "mag": mag}


def sample_classes(rng: np.random.Generator, n: int, star_fraction: float, qso_fraction: float) -> np.ndarray:
    """Class codes (schema) with the given expected star and QSO fractions, shape ``(n,)`` uint8."""
    u = rng.random(n)
    return np.where(
        u < star_fraction, CLASS_STAR, np.where(u < star_fraction + qso_fraction, CLASS_QSO, CLASS_GALAXY)
    ).astype(np.uint8)


def sample_positions(
    rng: np.random.Generator, n: int, ra_center: float, dec_center: float, size_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec [deg] uniform on the sphere within a ``size_deg`` × ``size_deg`` tile."""
    half = np.radians(size_deg / 2.0)
    dec0 = np.radians(dec_center)
    lo, hi = (
        np.sin(np.clip(dec0 - half, -np.pi / 2, np.pi / 2)),
        np.sin(np.clip(dec0 + half, -np.pi / 2, np.pi / 2)),
    )
    dec = np.degrees(np.arcsin(rng.uniform(lo, hi, n)))
    width = size_deg / max(np.cos(dec0), 1e-3)
    ra = np.mod(ra_center + (rng.random(n) - 0.5) * min(width, 360.0), 360.0)
    return ra, dec
