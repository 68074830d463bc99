"""The survey simulator: tiles of any shipped survey with truth, photometry, exposures and cutouts.

The embedded default data source of distributed_pz (demo, tests, benchmarks; KiDS+VIKING by
default, SDSS or a user's own band set and filter curves with :meth:`SimulationConfig.for_survey`).
A tile holds galaxies, stars and QSOs (``class``) whose true redshift is ``z_spec`` (0 for stars):

- who is there — :mod:`distributed_pz.survey.sim.population` (GaZNet-like magnitude and redshift
  distributions: mostly r < 21 and z < 0.8, a tail to z = 3 peaking at z ≈ 2.3; smooth
  selection limits; fainter galaxies bluer);
- what light they emit — :mod:`distributed_pz.survey.sim.sed` and :mod:`~distributed_pz.survey.sim.diversity`
  (COSMOS templates mixed with real Brown et al. 2014 spectra, Calzetti dust with a variable
  slope, intrinsic colour scatter, emission lines tied to star formation, Madau IGM; QSO power
  laws with broad lines; stars with M-dwarf molecular bands, :mod:`~distributed_pz.survey.sim.stars`),
  integrated through the band set's real filter curves;
- how the survey measures it — :mod:`distributed_pz.survey.sim.photometry` (the survey's exposure
  counts per band, GAaP-like errors that grow with size and seeing, source shot noise, tile and
  exposure zero points, documented outliers, coverage gaps, inverse-variance coadds;
  non-detections have ``mag`` NaN and ``mag_err`` = the 1σ limiting magnitude);
- what the cutouts look like — :mod:`distributed_pz.survey.sim.images` (bulge + disc Sérsic
  galaxies with star-forming clumps and point sources, Moffat PSFs varying across and between
  tiles, :mod:`~distributed_pz.survey.sim.psf`, neighbours) carrying the catalogue's own noise: one
  measurement, not two;
- optionally (``blend_fraction``), unrecognised blends — :mod:`~distributed_pz.survey.sim.blends`
  (a fainter galaxy of another redshift closer than the seeing, whose light the catalogue's
  aperture adds and the cutout shows).

Rows are simulated in fixed groups of :data:`GROUP_ROWS` with random streams
``default_rng([seed, stream, group])``, so every result is a function of the configuration
alone — never of how the rows are later split into blocks, nor of whether cutouts are made.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from distributed_pz import __version__
from distributed_pz.bands import BandSet, get_band_set
from distributed_pz.survey.sim import blends, images, population, sed
from distributed_pz.survey.sim.photometry import (
    ExposurePlan,
    SourceNoise,
    aperture_response,
    coadd,
    coadd_sigma,
    coadd_signal,
    flux_from_mag,
    measurement_norm,
    observe,
    plan_exposures,
    shot_noise_per_flux,
    zeropoint_offsets,
)
from distributed_pz.survey.sim.psf import PsfField
from distributed_pz.survey.sim.surveys import get_survey_design, survey_defaults
from distributed_pz.survey.store.schema import (
    ARRAY_SPECS,
    CLASS_GALAXY,
    CLASS_QSO,
    CLASS_STAR,
    CUTOUT_SIZE,
    SCHEMA_VERSION,
)

GROUP_ROWS = 512
"""Rows per random-stream group (the unit of reproducibility)."""
_RENDER_ROWS = 128
_STREAM_CATALOGUE, _STREAM_IMAGES, _STREAM_TILE, _STREAM_PSF, _STREAM_BLENDS = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class SimulationConfig:
    """Every knob of the simulator, with defaults that give a GaZNet-like KiDS+VIKING tile.

    :meth:`for_survey` starts from another survey's defaults (:mod:`distributed_pz.survey.sim.surveys`).

    Parameters
    ----------
    n_sources
        Rows of the tile.
    seed
        Master seed; all random streams derive from it.
    tile
        Tile name (a store group name).
    ra_center, dec_center, tile_size_deg
        Tile centre [deg] and side [deg]; positions are uniform on the sphere.
    object_id_start
        ``object_id`` of row 0 (ids are consecutive).
    band_set
        Band-set name (``"kids_viking"``, ``"sdss"`` or one registered with
        :func:`distributed_pz.bands.register_band_set` and
        :func:`~distributed_pz.survey.sim.surveys.register_survey_design`).
    filter_files
        The user's own filter curves, one two-column file per band (empty: the shipped curves).
    depth_5sigma
        5σ point-source depth per band (empty: the band set's).
    cutouts
        Render cutouts (False: catalogue-only tiles, much faster; the catalogue is identical).
    star_fraction, qso_fraction
        Expected fractions of stars and QSOs; the rest are galaxies.
    z_min, z_max
        Galaxy redshift range (GaZNet: 0.04 < z < 3); QSOs span 0.3–``z_max``.
    selection_band
        Band of the selection limits below (r for GAMA/KiDS/SDSS, i for zCOSMOS).
    r_mag_bright, r_mag_limit
        Brightest magnitude of any source, and the faint limit of the high-z galaxies, stars and
        QSOs (in ``selection_band`` for galaxies, r for stars and QSOs).
    wide_fraction, wide_r_limit
        Share of galaxies in the GAMA-like selection and its limit.
    deep_fraction, deep_r_limit
        Share of galaxies in the zCOSMOS-bright-like selection and its limit; the remaining
        ``1 − wide − deep`` are drawn with z in [``highz_z_min``, ``z_max``].
    highz_z_min
        Lower redshift of the high-z tail.
    highz_peak_fraction
        Share of the high-z tail in a Gaussian peak at z = 2.3 (σ 0.35); the rest is flat in z.
    selection_softness_mag
        Logistic scale [mag] of every selection limit (completeness falls smoothly; 0: hard cut).
    colour_luminosity
        Strength of the colour–luminosity relation (fainter galaxies bluer; 0: none).
    partner_weight_max
        Largest weight of a galaxy's real Brown et al. (2014) SED partner.
    dust_slope_mean, dust_slope_sigma
        Mean and RMS of the attenuation-curve slope δ, k(λ) (λ/5500 Å)^δ (Salim et al. 2018:
        star-forming galaxies have curves steeper than Calzetti, δ ≈ −0.3 on average).
    colour_scatter_mag
        RMS scale of the smooth intrinsic rest-frame colour perturbation [mag].
    line_strength, line_scatter_dex
        Emission-line luminosity relative to the Kennicutt UV star-formation rate, and its
        log-normal scatter.
    sed_correction
        Strength of the empirical mean rest-frame SED correction calibrated on zCOSMOS-bright
        colours (:func:`~distributed_pz.survey.sim.diversity.calibrated_offsets`; 0: off, 1: as calibrated).
    zeropoint
        AB zero point of every band's fluxes (``mag = zeropoint − 2.5 log10 flux``).
    n_exp_min, n_exp_max
        Bounds of the exposures per source and band (the survey design sets the typical count);
        ``n_exp_max`` is the padded exposure axis E.
    zp_tile_mag
        RMS zero-point offset of the tile per band [mag].
    zp_jitter_mag
        RMS zero-point offset of each exposure of the tile [mag].
    zp_jitter_source_mag
        RMS per-source, per-exposure calibration residual [mag].
    depth_scatter
        RMS of ln(noise) between exposures.
    outlier_rate
        Probability that an exposure measurement is a photometric outlier.
    not_observed_fraction
        Fraction of the tile (a declination strip, per band) without coverage in the bands
        that have no cutouts (VIKING).
    aperture_min_arcsec
        Minimum σ of the GAaP-like Gaussian aperture of the catalogue photometry.
    neighbour_fraction
        Probability that a cutout contains a neighbouring galaxy.
    blend_fraction, blend_max_separation_arcsec
        Share of galaxies with an unrecognised blend (:mod:`~distributed_pz.survey.sim.blends`:
        another galaxy of the tile within 0.3″–``blend_max_separation_arcsec`` whose light the
        catalogue's aperture adds in every band, and the cutouts show); 0, the default, keeps the
        catalogue's photometry every galaxy's own.
    pixel_scale_arcsec
        Cutout pixel scale.
    psf_fwhm_arcsec
        Nominal Moffat PSF FWHM per image band (KiDS DR4-like: r best).
    psf_tile_scatter
        RMS of ln(FWHM) between tiles, per band.
    psf_variation
        Relative amplitude of the FWHM variation across a tile.
    moffat_beta
        Moffat β of the PSF.
    """

    n_sources: int = 10_000
    seed: int = 0
    tile: str = "SIM_0000"
    ra_center: float = 180.0
    dec_center: float = 0.0
    tile_size_deg: float = 1.0
    object_id_start: int = 0
    band_set: str = "kids_viking"
    filter_files: tuple[str, ...] = ()
    depth_5sigma: tuple[float, ...] = ()
    cutouts: bool = True
    star_fraction: float = 0.08
    qso_fraction: float = 0.02
    z_min: float = 0.04
    z_max: float = 3.0
    selection_band: str = "r"
    r_mag_bright: float = 16.0
    r_mag_limit: float = 24.0
    wide_fraction: float = 0.72
    wide_r_limit: float = 20.0
    deep_fraction: float = 0.23
    deep_r_limit: float = 22.5
    highz_z_min: float = 0.8
    highz_peak_fraction: float = 0.5
    selection_softness_mag: float = 0.2
    colour_luminosity: float = 0.3
    partner_weight_max: float = 0.35
    dust_slope_mean: float = -0.3
    dust_slope_sigma: float = 0.15
    colour_scatter_mag: float = 0.02
    line_strength: float = 0.6
    line_scatter_dex: float = 0.3
    sed_correction: float = 1.0
    zeropoint: float = 30.0
    n_exp_min: int = 1
    n_exp_max: int = 5
    zp_tile_mag: float = 0.01
    zp_jitter_mag: float = 0.02
    zp_jitter_source_mag: float = 0.005
    depth_scatter: float = 0.15
    outlier_rate: float = 0.002
    not_observed_fraction: float = 0.02
    aperture_min_arcsec: float = 0.7
    neighbour_fraction: float = 0.2
    blend_fraction: float = 0.0
    blend_max_separation_arcsec: float = 1.2
    pixel_scale_arcsec: float = 0.2
    psf_fwhm_arcsec: tuple[float, ...] = (1.0, 0.9, 0.7, 0.8)
    psf_tile_scatter: float = 0.1
    psf_variation: float = 0.05
    moffat_beta: float = 4.765

    def __post_init__(self) -> None:
        problems = []
        if self.n_sources < 1:
            problems.append("n_sources must be positive")
        for name in (
            "star_fraction",
            "qso_fraction",
            "wide_fraction",
            "deep_fraction",
            "highz_peak_fraction",
            "outlier_rate",
            "not_observed_fraction",
            "neighbour_fraction",
            "blend_fraction",
            "partner_weight_max",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1]")
        if self.star_fraction + self.qso_fraction > 1.0:
            problems.append("star_fraction + qso_fraction exceeds 1")
        if self.wide_fraction + self.deep_fraction > 1.0:
            problems.append("wide_fraction + deep_fraction exceeds 1")
        if not 0.0 < self.z_min < self.z_max <= sed.Z_GRID_MAX - 0.5:
            problems.append(f"need 0 < z_min < z_max <= {sed.Z_GRID_MAX - 0.5}")
        if not self.r_mag_bright < min(self.wide_r_limit, self.deep_r_limit, self.r_mag_limit):
            problems.append("r_mag_bright must be brighter than every r limit")
        if not blends.MIN_SEPARATION_ARCSEC < self.blend_max_separation_arcsec <= 4.0:
            problems.append(f"blend_max_separation_arcsec must lie in ({blends.MIN_SEPARATION_ARCSEC}, 4]")
        if not 1 <= self.n_exp_min <= self.n_exp_max:
            problems.append("need 1 <= n_exp_min <= n_exp_max")
        band_set = get_band_set(self.band_set)
        if len(self.psf_fwhm_arcsec) != len(band_set.image_bands):
            problems.append(f"psf_fwhm_arcsec needs one value per image band {band_set.image_bands}")
        for name in ("filter_files", "depth_5sigma"):
            if getattr(self, name) and len(getattr(self, name)) != len(band_set.bands):
                problems.append(f"{name} needs one value per band {band_set.bands}")
        if not (self.depth_5sigma or band_set.depth_5sigma):
            problems.append(f"band set {band_set.name!r} has no depths: give depth_5sigma")
        if self.selection_band not in band_set.bands or "r" not in band_set.bands:
            problems.append(
                f"band set {band_set.name!r} needs an r band and selection_band {self.selection_band!r}"
            )
        lo, hi = images.PSF_FWHM_RANGE_ARCSEC
        if any(not lo <= f <= hi / 1.5 for f in self.psf_fwhm_arcsec):
            problems.append(f"psf_fwhm_arcsec must lie in [{lo}, {hi / 1.5:.2f}]")
        if problems:
            raise ValueError("invalid SimulationConfig: " + "; ".join(problems))

    @classmethod
    def for_survey(cls, survey: str, **overrides: Any) -> SimulationConfig:
        """A configuration with the survey defaults of band set ``survey`` (exposures, selection), then ``overrides``."""
        return cls(**{**survey_defaults(survey), **overrides})

    @property
    def n_groups(self) -> int:
        """Number of :data:`GROUP_ROWS`-row random-stream groups covering the tile."""
        return -(-self.n_sources // GROUP_ROWS)

    @property
    def depths(self) -> tuple[float, ...]:
        """5σ point-source depth per band (``depth_5sigma`` or the band set's)."""
        return tuple(self.depth_5sigma) or get_band_set(self.band_set).depth_5sigma

    @property
    def makes_cutouts(self) -> bool:
        """Whether tiles of this configuration carry a ``cutout`` array."""
        return self.cutouts and bool(get_band_set(self.band_set).image_bands)


def tile_attrs(config: SimulationConfig) -> dict:
    """Tile attributes for the store (all of schema ``REQUIRED_ATTRS`` but ``complete``), JSON-ready.

    ``psf_fwhm_arcsec`` is the survey's nominal seeing; the tile's own (drawn around it) is in
    ``simulator.psf_fwhm_tile_arcsec``.
    """
    band_set = get_band_set(config.band_set)
    psf = _TileSimulator.tile_psf(config)
    offsets = zeropoint_offsets(_TileSimulator.exposure_plan(config))
    return {
        "schema_version": SCHEMA_VERSION,
        "tile": config.tile,
        "band_set": band_set.name,
        "bands": list(band_set.bands),
        "image_bands": list(band_set.image_bands),
        "pixel_scale_arcsec": float(config.pixel_scale_arcsec),
        "psf_fwhm_arcsec": {
            b: float(f) for b, f in zip(band_set.image_bands, config.psf_fwhm_arcsec, strict=True)
        },
        "zeropoint": {b: float(config.zeropoint) for b in band_set.bands},
        "n_rows": int(config.n_sources),
        "simulator": {
            "name": "distributed_pz.survey.sim.simulate",
            "version": __version__,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
            "depth_5sigma": dict(zip(band_set.bands, config.depths, strict=True)),
            "psf_fwhm_tile_arcsec": dict(zip(band_set.bands, map(float, psf.tile_fwhm), strict=True)),
            "zeropoint_offset_mag": dict(zip(band_set.bands, map(float, offsets), strict=True)),
        },
    }


def nominal_seeing(config: SimulationConfig, band_set: BandSet) -> np.ndarray:
    """Nominal FWHM [arcsec] per band: the survey design's, the cutout bands' from the configuration."""
    seeing = np.array(get_survey_design(band_set.name).seeing_arcsec, dtype=np.float64)
    seeing[band_set.indices(band_set.image_bands)] = config.psf_fwhm_arcsec
    return seeing


class _TileSimulator:
    """Everything derived once from a configuration, and the per-group simulation steps."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = c = config
        self.band_set = get_band_set(c.band_set)
        self.design = get_survey_design(c.band_set)
        self.grids = sed.sed_grids(self.band_set, tuple(c.filter_files))
        selections = (
            population.Selection(c.wide_fraction, c.wide_r_limit, c.z_min, c.z_max, uniform_z=False),
            population.Selection(c.deep_fraction, c.deep_r_limit, c.z_min, c.z_max, uniform_z=False),
            population.Selection(
                1.0 - c.wide_fraction - c.deep_fraction,
                c.r_mag_limit,
                max(c.highz_z_min, c.z_min),
                c.z_max,
                True,
                peak_fraction=c.highz_peak_fraction,
            ),
        )
        knobs = population.GalaxyKnobs(
            selection_softness_mag=c.selection_softness_mag,
            colour_luminosity=c.colour_luminosity,
            partner_weight_max=c.partner_weight_max,
            dust_slope_mean=c.dust_slope_mean,
            dust_slope_sigma=c.dust_slope_sigma,
            colour_scatter_mag=c.colour_scatter_mag,
            line_strength=c.line_strength,
            line_scatter_dex=c.line_scatter_dex,
            sed_correction=c.sed_correction,
        )
        self.galaxies = population.GalaxyModel(
            self.grids,
            tuple(s for s in selections if s.fraction > 0),
            c.r_mag_bright,
            self.band_set.index(c.selection_band),
            knobs,
        )
        self.plan = self.exposure_plan(c)
        self.psf = self.tile_psf(c)
        self.seeing = nominal_seeing(c, self.band_set)
        self.exposures = np.array(self.design.exposures)
        point = measurement_norm(0.0, self.seeing, c.aperture_min_arcsec)  # (B,)
        self.point_norm = point
        sigma = coadd_sigma(np.array(c.depths), c.zeropoint)  # (B,): a nominal point source
        self.sigma_exp = sigma[:, None] * np.sqrt(self.exposures)[:, None] * self.plan.noise_scale  # (B, E)
        self.sky_flux = flux_from_mag(np.array(self.design.sky_mag_arcsec2), c.zeropoint)  # per arcsec²
        self.image_index = self.band_set.indices(self.band_set.image_bands)
        fwhm = self.psf.tile_fwhm[self.image_index]
        self.image_model = (
            images.build_image_model(
                c.pixel_scale_arcsec, c.moffat_beta, (0.69 * fwhm.min(), 1.31 * fwhm.max())
            )
            if c.makes_cutouts
            else None
        )

    @staticmethod
    def exposure_plan(config: SimulationConfig) -> ExposurePlan:
        """The tile's exposures: zero points, depths, gaps (their own random stream, like the seeing)."""
        band_set = get_band_set(config.band_set)
        half = config.tile_size_deg / 2.0
        return plan_exposures(
            np.random.default_rng([config.seed, _STREAM_TILE]),
            config.n_exp_max,
            config.zp_tile_mag,
            config.zp_jitter_mag,
            config.depth_scatter,
            np.array([b not in band_set.image_bands for b in band_set.bands]),
            config.not_observed_fraction,
            (config.dec_center - half, config.dec_center + half),
        )

    @staticmethod
    def tile_psf(config: SimulationConfig) -> PsfField:
        """The tile's seeing (its own random stream, so attributes need no simulation)."""
        band_set = get_band_set(config.band_set)
        rng = np.random.default_rng([config.seed, _STREAM_PSF])
        return PsfField.draw(
            rng, nominal_seeing(config, band_set), config.psf_tile_scatter, config.psf_variation
        )

    def rows(self, group: int) -> tuple[int, int]:
        start = group * GROUP_ROWS
        return start, min(start + GROUP_ROWS, self.config.n_sources)

    def catalogue(self, group: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Schema arrays (no cutout) and truth of one group."""
        c, grids = self.config, self.grids
        start, stop = self.rows(group)
        n, n_bands = stop - start, len(self.band_set.bands)
        rng = np.random.default_rng([c.seed, _STREAM_CATALOGUE, group])
        ra, dec = population.sample_positions(rng, n, c.ra_center, c.dec_center, c.tile_size_deg)
        cls = population.sample_classes(rng, n, c.star_fraction, c.qso_fraction)
        truth = _empty_truth(n, n_bands)
        truth["class"] = cls
        gal, star, qso = (np.flatnonzero(cls == k) for k in (CLASS_GALAXY, CLASS_STAR, CLASS_QSO))
        drawn = self.galaxies.sample(rng, len(gal))
        for key, values in drawn.items():
            if key in truth:
                truth[key][gal] = values
        truth["mag_true"][gal] = drawn["mag"]
        drawn = population.sample_stars(rng, grids, len(star), c.r_mag_bright, c.r_mag_limit)
        truth["temperature"][star], truth["mag_true"][star] = drawn["temperature"], drawn["mag"]
        drawn = population.sample_qsos(rng, grids, len(qso), c.r_mag_bright, c.r_mag_limit, c.z_max)
        truth["z"][qso], truth["qso_alpha"][qso], truth["mag_true"][qso] = (
            drawn["z"],
            drawn["alpha"],
            drawn["mag"],
        )
        half = c.tile_size_deg / 2.0
        x = np.clip(
            ((ra - c.ra_center + 180.0) % 360.0 - 180.0) * np.cos(np.radians(c.dec_center)) / half, -1, 1
        )
        truth["psf_fwhm_arcsec"] = self.psf.fwhm(x, np.clip((dec - c.dec_center) / half, -1, 1))
        truth["sigma_source_arcsec"] = _gaussian_size(truth)
        flux_true = flux_from_mag(truth["mag_true"], c.zeropoint)  # (N, B)
        if c.blend_fraction > 0:
            rng_blends = np.random.default_rng([c.seed, _STREAM_BLENDS, group])
            truth.update(
                blends.draw_blends(
                    rng_blends, truth, c.blend_fraction, c.blend_max_separation_arcsec, self.grids.r_index
                )
            )
            truth["blend_flux"] = blends.leaked_flux(truth, flux_true, c.aperture_min_arcsec)
            flux_true = flux_true + truth["blend_flux"]
        size = truth["sigma_source_arcsec"][:, None]
        noise = SourceNoise(
            sigma_exp=self.sigma_exp,
            nominal_exposures=self.exposures,
            exposure_loss=np.array(self.design.exposure_loss),
            exposure_gain=np.array(self.design.exposure_gain),
            norm_ratio=measurement_norm(size, truth["psf_fwhm_arcsec"], c.aperture_min_arcsec)
            / self.point_norm,
            shot=shot_noise_per_flux(size, truth["psf_fwhm_arcsec"], c.aperture_min_arcsec, self.sky_flux),
        )
        flux_exp, flux_exp_err, signal = observe(
            rng,
            flux_true,
            dec,
            self.plan,
            noise,
            c.n_exp_min,
            c.n_exp_max,
            c.zp_jitter_source_mag,
            c.outlier_rate,
        )
        mag, mag_err, mag_flag, _, _ = coadd(flux_exp, flux_exp_err, c.zeropoint)
        truth["flux_signal"] = coadd_signal(signal, flux_exp_err)
        arrays = {
            "object_id": np.arange(start, stop, dtype=np.int64) + c.object_id_start,
            "ra": ra,
            "dec": dec,
            "mag": mag,
            "mag_err": mag_err,
            "mag_flag": mag_flag,
            "flux_exp": flux_exp,
            "flux_exp_err": flux_exp_err,
            "z_spec": truth["z"].astype(np.float32),
            "class": cls,
        }
        return arrays, truth

    def cutouts(self, group: int, arrays: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> np.ndarray:
        """Cutouts of one group carrying the catalogue's noise, shape ``(N, C, P, P)`` float32."""
        c, model, ci = self.config, self.image_model, self.image_index
        n = len(truth["class"])
        rng = np.random.default_rng([c.seed, _STREAM_IMAGES, group])
        _, _, _, flux_cat, sigma_cat = coadd(
            arrays["flux_exp"][:, ci], arrays["flux_exp_err"][:, ci], c.zeropoint
        )
        signal = truth["flux_signal"][:, ci]
        flux = np.where(
            np.isfinite(signal), signal, flux_from_mag(truth["mag_true"][:, ci], c.zeropoint)
        )  # (N, C)
        if c.blend_fraction > 0:  # the catalogue's flux holds the partner's leak: draw each apart
            own = flux_from_mag(truth["mag_true"][:, ci], c.zeropoint)
            flux = flux * own / (own + truth["blend_flux"][:, ci])
        # bulges are redder than discs: B/T per band scales with (λ_pivot / λ_r)^1.5; clumps bluer
        pivot = self.grids.passbands.pivot
        redness = (pivot[ci] / pivot[self.grids.r_index]) ** 1.5  # (C,)
        bt = truth["bulge_fraction"][:, None]
        bt_band = bt * redness / (bt * redness + 1.0 - bt)  # (N, C)
        clump_flux = flux * np.minimum(truth["clump_fraction"][:, None] / redness**0.7, 0.8) * (1.0 - bt_band)
        scale = 1.0 / c.pixel_scale_arcsec
        shape = {
            "r_disk": truth["r_eff_arcsec"] * scale,
            "r_bulge": truth["bulge_r_eff_arcsec"] * scale,
            "bulge_fraction": bt_band,
            "q_disk": truth["q_disk"],
            "q_bulge": truth["q_bulge"],
            "pa": truth["pa"],
        }
        x, y = images.CENTRE + rng.uniform(-0.5, 0.5, (2, n))
        along, across = 0.6 * shape["r_disk"][:, None] * rng.normal(size=(2, n, images.N_CLUMPS))
        across = across * truth["q_disk"][:, None]
        cos, sin = np.cos(truth["pa"])[:, None], np.sin(truth["pa"])[:, None]
        clump_x, clump_y = x[:, None] + along * cos - across * sin, y[:, None] + along * sin + across * cos
        fwhm = truth["psf_fwhm_arcsec"][:, ci]  # (N, C)
        level = model.psf_level(fwhm * scale)
        donors = np.flatnonzero(truth["class"] == CLASS_GALAXY)
        has_neighbour = (rng.random(n) < c.neighbour_fraction) & (len(donors) > 0)
        pick = rng.integers(0, max(len(donors), 1), n)
        donor = donors[pick] if len(donors) else pick
        dimming = 10.0 ** (-0.4 * rng.uniform(-1.0, 3.0, n))
        radius, angle, nb_pa = (
            rng.uniform(8.0, 20.0, n),
            rng.uniform(0.0, 2 * np.pi, n),
            rng.uniform(0.0, np.pi, n),
        )
        out = np.empty((n, len(ci), CUTOUT_SIZE, CUTOUT_SIZE), dtype=np.float32)
        for lo in range(0, n, _RENDER_ROWS):
            rows = slice(lo, min(lo + _RENDER_ROWS, n))
            fourier = images.fourier_sources(
                model,
                flux[rows],
                **{k: v[rows] for k, v in shape.items()},
                x=x[rows],
                y=y[rows],
                psf_level=level[rows],
                clump_flux=clump_flux[rows],
                clump_x=clump_x[rows],
                clump_y=clump_y[rows],
            )
            near = lo + np.flatnonzero(has_neighbour[rows])
            self._add_galaxies(
                fourier,
                lo,
                near,
                donor[near],
                dimming[near],
                x[near] + radius[near] * np.cos(angle[near]),
                y[near] + radius[near] * np.sin(angle[near]),
                nb_pa[near],
                truth,
                shape,
                level,
            )
            if c.blend_fraction > 0:
                blended = lo + np.flatnonzero(truth["blend_partner"][rows] >= 0)
                partner = truth["blend_partner"][blended]
                self._add_galaxies(
                    fourier,
                    lo,
                    blended,
                    partner,
                    truth["blend_dimming"][blended],
                    x[blended] + truth["blend_dx"][blended] * scale,
                    y[blended] + truth["blend_dy"][blended] * scale,
                    truth["pa"][partner],
                    truth,
                    shape,
                    level,
                )
            out[rows] = images.to_cutouts(fourier)
        size = truth["sigma_source_arcsec"]
        sigma_w = np.sqrt(c.aperture_min_arcsec**2 + size**2)  # (N,) arcsec
        response = aperture_response(sigma_w[:, None] ** 2, (fwhm / 2.3548) ** 2, size[:, None] ** 2)
        weights = images.gaussian_weights(x, y, sigma_w * scale)
        out += images.conditioned_noise(rng, weights, response, sigma_cat, flux_cat - signal)
        return out

    def _add_galaxies(
        self,
        fourier: np.ndarray,
        lo: int,
        hosts: np.ndarray,
        donors: np.ndarray,
        flux_scale: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        pa: np.ndarray,
        truth: dict[str, np.ndarray],
        shape: dict[str, np.ndarray],
        level: np.ndarray,
    ) -> None:
        """Draw galaxies ``donors`` (their shapes, their fluxes × ``flux_scale``) at pixel positions
        ``x, y`` with position angles ``pa`` into the cutouts of rows ``hosts``, whose transforms
        are ``fourier[hosts - lo]``: neighbours and blend partners alike."""
        if len(hosts):
            fourier[hosts - lo] += images.fourier_sources(
                self.image_model,
                flux_from_mag(truth["mag_true"][donors][:, self.image_index], self.config.zeropoint)
                * flux_scale[:, None],
                **{k: v[donors] for k, v in shape.items() if k != "pa"},
                pa=pa,
                x=x,
                y=y,
                psf_level=level[hosts],
            )


def _gaussian_size(truth: dict[str, np.ndarray]) -> np.ndarray:
    """Intrinsic Gaussian-equivalent σ [arcsec] of each source's r-band light (0 for point sources).

    The flux-weighted half-light radius of bulge and disc, divided by 1.1774 (a Gaussian's
    r50/σ), times √q (the area-equivalent circle).
    """
    bt = truth["bulge_fraction"]
    r50 = (1.0 - bt) * truth["r_eff_arcsec"] + bt * truth["bulge_r_eff_arcsec"]
    q = (1.0 - bt) * truth["q_disk"] + bt * truth["q_bulge"]
    return r50 / 1.1774 * np.sqrt(q)


def _empty_truth(n: int, n_bands: int) -> dict[str, np.ndarray]:
    nan = np.full(n, np.nan)
    return {
        "class": np.zeros(n, dtype=np.uint8),
        "z": np.zeros(n),
        "mag_true": np.full((n, n_bands), np.nan),
        "sed_index": nan.copy(),
        "partner": nan.copy(),
        "partner_weight": nan.copy(),
        "ebv": nan.copy(),
        "dust_slope": nan.copy(),
        "abs_mag_r": nan.copy(),
        "colour_offset": np.zeros((n, n_bands)),
        "temperature": nan.copy(),
        "qso_alpha": nan.copy(),
        "r_eff_arcsec": np.zeros(n),
        "bulge_fraction": np.zeros(n),
        "bulge_r_eff_arcsec": np.zeros(n),
        "q_disk": np.ones(n),
        "q_bulge": np.ones(n),
        "pa": np.zeros(n),
        "clump_fraction": np.zeros(n),
    }


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def simulate_catalogue(config: SimulationConfig) -> dict[str, np.ndarray]:
    """Every schema array except ``cutout``, all rows: positions, photometry, exposures, ``z_spec``, ``class``.

    Cheap (no images); identical to the same arrays of :func:`simulate_tile`.
    """
    sim = _TileSimulator(config)
    return _concat([sim.catalogue(g)[0] for g in range(config.n_groups)])


def simulate_truth(config: SimulationConfig) -> dict[str, np.ndarray]:
    """Per-source truth behind the catalogue, all rows (not schema arrays; for checks and studies).

    Keys: ``class``; ``z`` (0 for stars); ``mag_true`` ``(N, B)`` noiseless AB magnitudes;
    ``flux_signal`` ``(N, B)`` the noiseless coadd flux (calibration offsets applied, NaN where
    not observed); ``psf_fwhm_arcsec`` ``(N, B)`` the seeing at the source;
    ``sigma_source_arcsec`` its intrinsic Gaussian-equivalent size; galaxies: ``sed_index``
    (continuous position in the COSMOS sequence), ``partner`` (template index of its Brown et
    al. 2014 partner) and ``partner_weight``, ``ebv``, ``dust_slope``, ``colour_offset``
    ``(N, B)`` (dust-slope and intrinsic colour perturbation [mag]), ``abs_mag_r`` (rest-frame,
    dust-attenuated, continuum), ``r_eff_arcsec``, ``bulge_fraction`` (r band),
    ``bulge_r_eff_arcsec``, ``q_disk``, ``q_bulge``, ``pa``, ``clump_fraction``; stars:
    ``temperature``; QSOs: ``qso_alpha``. Non-applicable entries are NaN (or 0 / 1 for shapes).
    With ``blend_fraction`` > 0 also ``blend_partner`` (the partner's row within its group of
    :data:`GROUP_ROWS`, −1 for none), ``blend_dx``, ``blend_dy`` [arcsec], ``blend_dimming`` and
    ``blend_flux`` ``(N, B)`` (the partner's flux in the catalogue's aperture, in ``flux_signal``).
    """
    sim = _TileSimulator(config)
    return _concat([sim.catalogue(g)[1] for g in range(config.n_groups)])


def _simulated_groups(sim: _TileSimulator, workers: int) -> Iterator[dict[str, np.ndarray]]:
    """Schema arrays (with cutouts if configured) of every group, in order; ``workers`` threads work ahead."""

    def one(group: int) -> dict[str, np.ndarray]:
        arrays, truth = sim.catalogue(group)
        if sim.config.makes_cutouts:
            arrays["cutout"] = sim.cutouts(group, arrays, truth)
        return arrays

    groups = range(sim.config.n_groups)
    if workers <= 1:
        yield from map(one, groups)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque[Future] = deque()
        for group in groups:
            pending.append(pool.submit(one, group))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def simulate_blocks(
    config: SimulationConfig, block_rows: int, *, workers: int = 1
) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(row_start, arrays)`` blocks of ``block_rows`` rows (the last may be shorter), in order.

    Parameters
    ----------
    block_rows
        Rows per block; the values never depend on it.
    workers
        Threads simulating groups ahead of the consumer (NumPy releases the GIL in the heavy
        parts: FFTs, random draws, array arithmetic). Results do not depend on it.

    Notes
    -----
    ``arrays`` holds every schema array, ``cutout`` only if ``config.makes_cutouts``
    (:attr:`SimulationConfig.makes_cutouts`); memory stays bounded by about
    ``max(block_rows, (workers + 1) × GROUP_ROWS)`` rows.
    """
    if block_rows < 1:
        raise ValueError(f"block_rows must be positive, got {block_rows}")
    sim = _TileSimulator(config)
    pending: list[dict[str, np.ndarray]] = []
    n_pending, start = 0, 0
    for group, arrays in enumerate(_simulated_groups(sim, workers)):
        pending.append(arrays)
        n_pending += len(arrays["object_id"])
        last = group == config.n_groups - 1
        while n_pending >= block_rows or (last and n_pending):
            merged = _concat(pending) if len(pending) > 1 else pending[0]
            take = min(block_rows, n_pending)
            yield start, {k: v[:take] for k, v in merged.items()}
            start += take
            n_pending -= take
            pending = [{k: v[take:] for k, v in merged.items()}] if n_pending else []


def simulate_tile(config: SimulationConfig, *, workers: int = 1) -> tuple[dict[str, np.ndarray], dict]:
    """Every schema array of a whole tile (``cutout`` if the configuration makes them) and its attributes.

    Holds the tile in memory (about 26 kB per row, mostly cutouts): use
    :func:`simulate_blocks` to stream large tiles. ``workers`` as in :func:`simulate_blocks`.
    """
    n = config.n_sources
    dims = {
        "B": len(get_band_set(config.band_set).bands),
        "C": len(get_band_set(config.band_set).image_bands),
        "E": config.n_exp_max,
        "P": CUTOUT_SIZE,
    }
    arrays = {
        name: np.empty(spec.shape(n, dims), dtype=spec.dtype)
        for name, spec in ARRAY_SPECS.items()
        if name != "cutout" or config.makes_cutouts
    }
    for start, block in simulate_blocks(config, GROUP_ROWS, workers=workers):
        for name, values in block.items():
            arrays[name][start : start + len(values)] = values
    return arrays, tile_attrs(config)
