"""The survey simulator: KiDS+VIKING-like tiles with truth, photometry, exposures and cutouts.

The embedded default data source of distributed_pz (demo, tests, benchmarks). A tile holds
galaxies, stars and QSOs (``class``) whose true redshift is ``z_spec`` (0 for stars):

- who is there — :mod:`distributed_pz.survey.population` (GaZNet-like magnitude and redshift
  distributions: mostly r < 21 and z < 0.8, a flat tail to z = 3);
- what light they emit — :mod:`distributed_pz.survey.sed` (COSMOS templates with Calzetti dust,
  emission lines and Madau IGM, QSO power laws with broad lines, blackbody stars, integrated
  through the real KiDS/VIKING filters);
- how the survey measures it — :mod:`distributed_pz.survey.photometry` (3–5 exposures per band
  at the survey depths, zero-point jitter, outliers, coverage gaps, inverse-variance coadds;
  non-detections have ``mag`` NaN and ``mag_err`` = the 1σ limiting magnitude);
- what the cutouts look like — :mod:`distributed_pz.survey.images` (bulge + disc Sérsic
  galaxies and point sources, Moffat PSFs, sky noise, neighbours).

Rows are simulated in fixed groups of :data:`GROUP_ROWS` with random streams
``default_rng([seed, stream, group])``, so every result is a function of the configuration
alone — never of how the rows are later split into blocks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from distributed_pz import __version__
from distributed_pz.bands import get_band_set
from distributed_pz.survey import images, population, sed
from distributed_pz.survey.photometry import coadd, coadd_sigma, flux_from_mag, observe, plan_exposures
from distributed_pz.survey.schema import (
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
_STREAM_CATALOGUE, _STREAM_IMAGES, _STREAM_TILE = 0, 1, 2


@dataclass(frozen=True)
class SimulationConfig:
    """Every knob of the simulator, with defaults that give a GaZNet-like KiDS+VIKING tile.

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
        Band-set name; the shipped filter curves cover ``"kids_viking"``.
    star_fraction, qso_fraction
        Expected fractions of stars and QSOs; the rest are galaxies.
    z_min, z_max
        Galaxy redshift range (GaZNet: 0.04 < z < 3); QSOs span 0.3–``z_max``.
    r_mag_bright, r_mag_limit
        Brightest r magnitude of any source, and the faint r limit of the high-z galaxies,
        stars and QSOs.
    wide_fraction, wide_r_limit
        Share of galaxies in the GAMA-like selection and its r limit.
    deep_fraction, deep_r_limit
        Share of galaxies in the zCOSMOS-bright-like selection and its r limit; the remaining
        ``1 − wide − deep`` are drawn with z uniform in [``highz_z_min``, ``z_max``].
    highz_z_min
        Lower redshift of the flat high-z tail.
    zeropoint
        AB zero point of every band's fluxes (``mag = zeropoint − 2.5 log10 flux``).
    n_exp_min, n_exp_max
        Exposures per source and band, uniform in this range; ``n_exp_max`` is the padded
        exposure axis E.
    zp_jitter_mag
        RMS zero-point offset of each exposure of the tile [mag].
    zp_jitter_source_mag
        RMS per-source, per-exposure calibration residual [mag].
    depth_scatter
        RMS of ln(noise) between exposures.
    outlier_rate
        Probability that an exposure measurement is a photometric outlier.
    not_observed_fraction
        Fraction of the tile (a declination strip, per band) without VIKING coverage.
    neighbour_fraction
        Probability that a cutout contains a neighbouring galaxy.
    pixel_scale_arcsec
        Cutout pixel scale.
    psf_fwhm_arcsec
        Moffat PSF FWHM per image band (KiDS DR4-like: r best).
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
    star_fraction: float = 0.08
    qso_fraction: float = 0.02
    z_min: float = 0.04
    z_max: float = 3.0
    r_mag_bright: float = 16.0
    r_mag_limit: float = 24.0
    wide_fraction: float = 0.72
    wide_r_limit: float = 20.0
    deep_fraction: float = 0.23
    deep_r_limit: float = 22.5
    highz_z_min: float = 0.8
    zeropoint: float = 30.0
    n_exp_min: int = 3
    n_exp_max: int = 5
    zp_jitter_mag: float = 0.02
    zp_jitter_source_mag: float = 0.005
    depth_scatter: float = 0.15
    outlier_rate: float = 0.005
    not_observed_fraction: float = 0.02
    neighbour_fraction: float = 0.2
    pixel_scale_arcsec: float = 0.2
    psf_fwhm_arcsec: tuple[float, ...] = (1.0, 0.9, 0.7, 0.8)
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
            "outlier_rate",
            "not_observed_fraction",
            "neighbour_fraction",
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
        if not 1 <= self.n_exp_min <= self.n_exp_max:
            problems.append("need 1 <= n_exp_min <= n_exp_max")
        band_set = get_band_set(self.band_set)
        if len(self.psf_fwhm_arcsec) != len(band_set.image_bands):
            problems.append(f"psf_fwhm_arcsec needs one value per image band {band_set.image_bands}")
        if problems:
            raise ValueError("invalid SimulationConfig: " + "; ".join(problems))

    @property
    def n_groups(self) -> int:
        """Number of :data:`GROUP_ROWS`-row random-stream groups covering the tile."""
        return -(-self.n_sources // GROUP_ROWS)


def tile_attrs(config: SimulationConfig) -> dict:
    """Tile attributes for the store (all of schema ``REQUIRED_ATTRS`` but ``complete``), JSON-ready."""
    band_set = get_band_set(config.band_set)
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
            "name": "distributed_pz.survey.simulate",
            "version": __version__,
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()},
            "depth_5sigma": dict(zip(band_set.bands, band_set.depth_5sigma, strict=True)),
        },
    }


class _TileSimulator:
    """Everything derived once from a configuration, and the per-group simulation steps."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.band_set = get_band_set(config.band_set)
        self.grids = sed.sed_grids(self.band_set)
        c = config
        selections = (
            population.Selection(c.wide_fraction, c.wide_r_limit, c.z_min, c.z_max, uniform_z=False),
            population.Selection(c.deep_fraction, c.deep_r_limit, c.z_min, c.z_max, uniform_z=False),
            population.Selection(
                1.0 - c.wide_fraction - c.deep_fraction,
                c.r_mag_limit,
                max(c.highz_z_min, c.z_min),
                c.z_max,
                True,
            ),
        )
        self.galaxies = population.GalaxyModel(
            self.grids, tuple(s for s in selections if s.fraction > 0), c.r_mag_bright
        )
        half = c.tile_size_deg / 2.0
        viking = np.array([b not in self.band_set.image_bands for b in self.band_set.bands])
        self.plan = plan_exposures(
            np.random.default_rng([c.seed, _STREAM_TILE]),
            c.n_exp_max,
            c.zp_jitter_mag,
            c.depth_scatter,
            viking,
            c.not_observed_fraction,
            (c.dec_center - half, c.dec_center + half),
        )
        self.sigma = coadd_sigma(np.array(self.band_set.depth_5sigma), c.zeropoint)
        self.image_index = self.band_set.indices(self.band_set.image_bands)
        depth = np.array(self.band_set.depth_5sigma)[self.image_index]
        self.image_model = images.build_image_model(
            np.array(c.psf_fwhm_arcsec) / c.pixel_scale_arcsec,
            c.moffat_beta,
            images.sky_sigma_per_pixel(depth, c.zeropoint, c.pixel_scale_arcsec),
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
        flux_true = flux_from_mag(truth["mag_true"], c.zeropoint)  # (N, B)
        flux_exp, flux_exp_err = observe(
            rng,
            flux_true,
            dec,
            self.plan,
            self.sigma,
            c.n_exp_min,
            c.n_exp_max,
            c.zp_jitter_source_mag,
            c.outlier_rate,
        )
        mag, mag_err, mag_flag, _, _ = coadd(flux_exp, flux_exp_err, c.zeropoint)
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

    def cutouts(self, group: int, truth: dict[str, np.ndarray]) -> np.ndarray:
        """Noisy cutouts of one group, shape ``(N, C, P, P)`` float32."""
        c, model = self.config, self.image_model
        n = len(truth["class"])
        rng = np.random.default_rng([c.seed, _STREAM_IMAGES, group])
        flux = flux_from_mag(truth["mag_true"][:, self.image_index], c.zeropoint)  # (N, C)
        # bulges are redder than discs: B/T per band scales with (λ_pivot / λ_r)^1.5
        pivot = self.grids.passbands.pivot
        redness = (pivot[self.image_index] / pivot[self.grids.r_index]) ** 1.5  # (C,)
        bt = truth["bulge_fraction"][:, None]
        bt_band = bt * redness / (bt * redness + 1.0 - bt)  # (N, C)
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
        out = np.empty((n, len(self.image_index), CUTOUT_SIZE, CUTOUT_SIZE), dtype=np.float32)
        for lo in range(0, n, _RENDER_ROWS):
            rows = slice(lo, min(lo + _RENDER_ROWS, n))
            fourier = images.fourier_sources(
                model, flux[rows], **{k: v[rows] for k, v in shape.items()}, x=x[rows], y=y[rows]
            )
            near = lo + np.flatnonzero(has_neighbour[rows])
            if len(near):
                j = donor[near]
                fourier[near - lo] += images.fourier_sources(
                    model,
                    flux[j] * dimming[near, None],
                    **{k: v[j] for k, v in shape.items() if k != "pa"},
                    pa=nb_pa[near],
                    x=x[near] + radius[near] * np.cos(angle[near]),
                    y=y[near] + radius[near] * np.sin(angle[near]),
                )
            out[rows] = images.to_cutouts(fourier)
        out += model.sky_sigma[None, :, None, None] * rng.standard_normal(out.shape, dtype=np.float32)
        return out


def _empty_truth(n: int, n_bands: int) -> dict[str, np.ndarray]:
    nan = np.full(n, np.nan)
    return {
        "class": np.zeros(n, dtype=np.uint8),
        "z": np.zeros(n),
        "mag_true": np.full((n, n_bands), np.nan),
        "sed_index": nan.copy(),
        "ebv": nan.copy(),
        "abs_mag_r": nan.copy(),
        "temperature": nan.copy(),
        "qso_alpha": nan.copy(),
        "r_eff_arcsec": np.zeros(n),
        "bulge_fraction": np.zeros(n),
        "bulge_r_eff_arcsec": np.zeros(n),
        "q_disk": np.ones(n),
        "q_bulge": np.ones(n),
        "pa": np.zeros(n),
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
    galaxies: ``sed_index`` (continuous position in the template sequence), ``ebv``,
    ``abs_mag_r`` (rest-frame, dust-attenuated, continuum), ``r_eff_arcsec``,
    ``bulge_fraction`` (r band), ``bulge_r_eff_arcsec``, ``q_disk``, ``q_bulge``, ``pa``;
    stars: ``temperature``; QSOs: ``qso_alpha``. Non-applicable entries are NaN (or 0 / 1
    for shapes).
    """
    sim = _TileSimulator(config)
    return _concat([sim.catalogue(g)[1] for g in range(config.n_groups)])


def _simulated_groups(sim: _TileSimulator, workers: int) -> Iterator[dict[str, np.ndarray]]:
    """Schema arrays (with cutouts) of every group, in order; ``workers`` threads work ahead."""

    def one(group: int) -> dict[str, np.ndarray]:
        arrays, truth = sim.catalogue(group)
        arrays["cutout"] = sim.cutouts(group, truth)
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
    ``arrays`` holds every schema array including ``cutout``; memory stays bounded by about
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
    """Every schema array of a whole tile (including ``cutout``) and its attributes.

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
    arrays = {name: np.empty(spec.shape(n, dims), dtype=spec.dtype) for name, spec in ARRAY_SPECS.items()}
    for start, block in simulate_blocks(config, GROUP_ROWS, workers=workers):
        for name, values in block.items():
            arrays[name][start : start + len(values)] = values
    return arrays, tile_attrs(config)
