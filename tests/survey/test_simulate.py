"""The survey simulator: real properties of simulated tiles, not just shapes."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from distributed_pz.bands import KIDS_VIKING
from distributed_pz.survey.sim import photometry, sed
from distributed_pz.survey.sim.package_data import load_calzetti, load_filters, load_templates
from distributed_pz.survey.sim.simulate import (
    SimulationConfig,
    simulate_blocks,
    simulate_catalogue,
    simulate_tile,
    simulate_truth,
    tile_attrs,
)
from distributed_pz.survey.store.schema import (
    ARRAY_SPECS,
    CLASS_GALAXY,
    CLASS_QSO,
    CLASS_STAR,
    FLAG_NOT_DETECTED,
    FLAG_NOT_OBSERVED,
    FLAG_OK,
    REQUIRED_ATTRS,
)
from distributed_pz.survey.store.store import open_store
from distributed_pz.survey.store.validate import validate_tile

BANDS = KIDS_VIKING.bands
G, R, U = BANDS.index("g"), BANDS.index("r"), BANDS.index("u")
CATALOGUE = SimulationConfig(n_sources=3000, seed=11)


@pytest.fixture(scope="module")
def catalogue() -> dict[str, np.ndarray]:
    return simulate_catalogue(CATALOGUE)


@pytest.fixture(scope="module")
def truth() -> dict[str, np.ndarray]:
    return simulate_truth(CATALOGUE)


@pytest.fixture(scope="module")
def small_tile() -> tuple[dict[str, np.ndarray], dict]:
    return simulate_tile(SimulationConfig(n_sources=700, seed=3, star_fraction=0.2))


def test_package_data_loads_without_shared_paths():
    curves = load_filters(KIDS_VIKING)
    assert [c.band for c in curves] == list(BANDS)
    pivots = sed.Passbands.from_band_set(KIDS_VIKING).pivot
    assert np.all(np.diff(pivots) > 0) and 3400 < pivots[U] < 3800 and 20000 < pivots[-1] < 22500
    templates = load_templates()
    assert templates.flux.shape == (14, len(templates.wave)) and templates.names[0] == "Ell1_A_0"
    wave, k = load_calzetti()
    assert k[np.searchsorted(wave, 1500)] > k[np.searchsorted(wave, 5500)] > k[np.searchsorted(wave, 22000)]


def test_madau_igm_blankets_blueward_of_lyman_alpha():
    wave = np.array([3000.0, 4000.0, 4800.0, 5000.0, 6000.0])
    t = sed.madau_transmission(wave, 3.0)
    assert t[-1] == 1.0 and t[3] == 1.0  # redward of 1216 × 4 = 4863 Å
    assert 0.4 < t[2] < 0.9 and 0.4 < t[1] < 0.9  # Lyα forest (and Lyβ below 1026 × 4 Å)
    assert t[0] < 0.1  # Lyman-limit systems below 912 × 4 = 3647 Å


def test_arrays_match_schema_and_store_validates(small_tile):
    arrays, attrs = small_tile
    n = 700
    dims = {"B": len(BANDS), "C": len(KIDS_VIKING.image_bands), "E": 5, "P": 40}
    assert set(arrays) == set(ARRAY_SPECS)
    for name, spec in ARRAY_SPECS.items():
        assert arrays[name].dtype == spec.dtype, name
        assert arrays[name].shape == spec.shape(n, dims), name
    assert set(REQUIRED_ATTRS) - {"complete"} <= set(attrs)
    json.dumps(attrs)  # zarr attributes must be JSON
    store = open_store(f"memory://{uuid.uuid4().hex}/s.zarr", mode="a")
    tile = store.write_tile(attrs["tile"], arrays, attrs, chunk_rows=128, shard_rows=256)
    validate_tile(tile, deep=True)


def test_reproducible_and_independent_of_block_rows(small_tile):
    config = SimulationConfig(n_sources=700, seed=3, star_fraction=0.2)
    arrays, _ = small_tile
    for block_rows, workers in ((100, 1), (333, 2), (10_000, 1)):
        starts = []
        for start, block in simulate_blocks(config, block_rows, workers=workers):
            starts.append(start)
            for name, values in block.items():
                np.testing.assert_array_equal(values, arrays[name][start : start + len(values)], err_msg=name)
        assert starts == list(range(0, 700, block_rows))
    catalogue = simulate_catalogue(config)
    for name, values in catalogue.items():
        np.testing.assert_array_equal(values, arrays[name], err_msg=name)
    other = simulate_catalogue(SimulationConfig(n_sources=700, seed=4, star_fraction=0.2))
    assert not np.array_equal(other["z_spec"], catalogue["z_spec"])


def test_class_fractions_match_config():
    for star, qso in ((0.08, 0.02), (0.3, 0.1)):
        cls = simulate_catalogue(
            SimulationConfig(n_sources=2500, seed=5, star_fraction=star, qso_fraction=qso)
        )["class"]
        for code, p in ((CLASS_STAR, star), (CLASS_QSO, qso), (CLASS_GALAXY, 1 - star - qso)):
            assert abs(np.mean(cls == code) - p) < 4 * np.sqrt(p * (1 - p) / len(cls)), (code, p)


def test_redshift_and_magnitude_distributions_are_gaznet_like(catalogue, truth):
    gal = catalogue["class"] == CLASS_GALAXY
    z, r = catalogue["z_spec"][gal], truth["mag_true"][gal, R]
    assert z.min() >= CATALOGUE.z_min and z.max() <= CATALOGUE.z_max
    assert np.mean(z < 0.8) > 0.85 and np.mean(r < 21) > 0.7  # dominated by bright, low-z galaxies
    assert 0.15 < np.median(z) < 0.45  # the GAMA-like peak
    assert np.mean(z > 1.5) > 0.01  # ... with a tail to z = 3
    stars = catalogue["class"] == CLASS_STAR
    assert np.all(catalogue["z_spec"][stars] == 0)
    qso_z = catalogue["z_spec"][catalogue["class"] == CLASS_QSO]
    assert 1.0 < np.median(qso_z) < 2.2


def _direct_magnitudes(
    passbands: sed.Passbands, index: float, partner: int, partner_weight: float, ebv: float, z: float
) -> np.ndarray:
    """m_b − M_r − DM of a template mix by direct integration on the filter grids (no tables)."""
    _, wave, flux_all = sed.all_templates()
    dust = 10.0 ** (-0.4 * sed.calzetti_k(wave) * ebv)
    t0 = int(min(np.floor(index), sed.N_SEQUENCE - 2))
    mix = np.zeros_like(wave)
    parts = ((t0, 1 - (index - t0)), (t0 + 1, index - t0))
    for t, w in (*((t, w * (1 - partner_weight)) for t, w in parts), (partner, partner_weight)):
        flux = flux_all[t] * dust
        mix += w * flux / passbands.synthetic_flux(wave, flux, 0.0)[R]
    return -2.5 * np.log10(passbands.synthetic_flux(wave, mix, z))


def test_early_type_colours_follow_templates(catalogue, truth):
    passbands = sed.Passbands.from_band_set(KIDS_VIKING)
    early = (truth["class"] == CLASS_GALAXY) & (truth["sed_index"] < 4.5)
    true_gr = truth["mag_true"][:, G] - truth["mag_true"][:, R]
    # the tabulated photometry agrees with direct synthetic photometry of the same SED
    offset = truth["colour_offset"][:, G] - truth["colour_offset"][:, R]
    for i in np.flatnonzero(early)[:25]:
        direct = _direct_magnitudes(
            passbands,
            truth["sed_index"][i],
            int(truth["partner"][i]),
            truth["partner_weight"][i],
            truth["ebv"][i],
            truth["z"][i],
        )
        assert abs((direct[G] - direct[R]) + offset[i] - true_gr[i]) < 0.02
    # g − r of early types reddens with z as the 4000 Å break crosses g then r, and stays red to 0.8
    bins = ((0.04, 0.15), (0.25, 0.35), (0.45, 0.6), (0.65, 0.8))
    medians = [np.median(true_gr[early & (truth["z"] >= lo) & (truth["z"] < hi)]) for lo, hi in bins]
    assert np.all(np.diff(medians[:3]) > 0.1) and medians[3] > medians[2] - 0.05, medians
    # ... and the observed catalogue colours scatter around the true ones by their errors
    ok = early & np.all(catalogue["mag_flag"][:, [G, R]] == FLAG_OK, axis=1) & (truth["mag_true"][:, R] < 21)
    obs_gr = catalogue["mag"][ok, G] - catalogue["mag"][ok, R]
    sigma = np.hypot(catalogue["mag_err"][ok, G], catalogue["mag_err"][ok, R])
    pull = (obs_gr - true_gr[ok]) / np.hypot(sigma, 0.03)  # 0.03: tile and exposure zero points
    assert abs(np.median(obs_gr - true_gr[ok])) < 0.03 and np.mean(np.abs(pull) < 3) > 0.95


def test_depth_gives_five_sigma():
    rng = np.random.default_rng(0)
    sigma = photometry.coadd_sigma(np.array(KIDS_VIKING.depth_5sigma), 30.0)
    plan = photometry.plan_exposures(rng, 5, 0.0, 0.02, 0.15, np.zeros(len(BANDS), bool), 0.0, (-0.5, 0.5))
    flux_true = np.tile(photometry.flux_from_mag(np.array(KIDS_VIKING.depth_5sigma), 30.0), (4000, 1))
    exposures = np.full(len(BANDS), 4)
    noise = photometry.SourceNoise(
        sigma_exp=sigma[:, None] * 2.0 * plan.noise_scale,
        nominal_exposures=exposures,
        exposure_loss=np.full(len(BANDS), 0.1),
        exposure_gain=np.full(len(BANDS), 0.1),
        norm_ratio=np.ones((4000, len(BANDS))),
        shot=np.zeros((4000, len(BANDS))),
    )
    flux_exp, flux_err, _ = photometry.observe(rng, flux_true, np.zeros(4000), plan, noise, 3, 5, 0.005, 0.0)
    mag, mag_err, flag, flux, err = photometry.coadd(flux_exp, flux_err, 30.0)
    np.testing.assert_allclose(np.median(flux_true / err, axis=0), 5.0, rtol=0.15)
    np.testing.assert_allclose(np.median(flux / err, axis=0), 5.0, rtol=0.2)
    np.testing.assert_allclose(np.nanmedian(mag_err, axis=0), 2.5 / np.log(10) / 5, rtol=0.2)


def test_catalogue_errors_match_survey_depths(catalogue, truth):
    _, _, flag, _, err = photometry.coadd(catalogue["flux_exp"], catalogue["flux_exp_err"], 30.0)
    implied_depth = 30.0 - 2.5 * np.log10(5 * err)  # (N, B); NaN where not observed
    stars = catalogue["class"] == CLASS_STAR  # point sources reach the survey depth (± seeing)
    np.testing.assert_allclose(
        np.nanmedian(implied_depth[stars], axis=0), KIDS_VIKING.depth_5sigma, atol=0.25
    )
    # extended galaxies are shallower, the more the larger (GAaP-like errors grow with size)
    gal = catalogue["class"] == CLASS_GALAXY
    size = truth["sigma_source_arcsec"]
    small, large = gal & (size < np.quantile(size[gal], 0.25)), gal & (size > np.quantile(size[gal], 0.75))
    assert np.all(np.nanmedian(implied_depth[large], 0) < np.nanmedian(implied_depth[small], 0) - 0.3)
    detected = flag == FLAG_OK
    snr = 2.5 / np.log(10) / catalogue["mag_err"]
    brighter = detected & (catalogue["mag"] < np.array(KIDS_VIKING.depth_5sigma) - 1)
    assert np.median(snr[brighter]) > 10


def test_catalogue_is_the_inverse_variance_coadd_of_exposures(catalogue):
    f = catalogue["flux_exp"].astype(np.float64)
    e = catalogue["flux_exp_err"].astype(np.float64)
    n_exp = np.isfinite(f).sum(axis=-1)
    flag = catalogue["mag_flag"]
    observed = flag != FLAG_NOT_OBSERVED
    # the survey's exposure counts: KiDS u 4, g r i 5 (chip gaps: one fewer), VIKING 2 (1–3)
    typical = [int(np.median(n_exp[observed[:, b], b])) for b in range(len(BANDS))]
    assert typical == [4, 5, 5, 5, 2, 2, 2, 2, 2]
    assert np.all((n_exp >= 1) & (n_exp <= 5) | ~observed) and np.all(n_exp[~observed] == 0)
    assert 0.05 < np.mean(n_exp[observed[:, 0], 0] == 3) < 0.15
    padded = np.isfinite(f)
    assert np.all(padded[..., :-1] >= padded[..., 1:])  # NaN padding only at the end
    w = np.where(padded, 1 / np.where(padded, e, 1) ** 2, 0)
    flux = (w * np.nan_to_num(f)).sum(-1) / np.maximum(w.sum(-1), 1e-300)
    sigma = 1 / np.sqrt(np.maximum(w.sum(-1), 1e-300))
    ok = flag == FLAG_OK
    np.testing.assert_allclose(catalogue["mag"][ok], 30 - 2.5 * np.log10(flux[ok]), atol=2e-5)
    np.testing.assert_allclose(catalogue["mag_err"][ok], 1.0857362 * sigma[ok] / flux[ok], rtol=1e-5)
    assert np.all(np.isnan(catalogue["mag"][~ok]))
    undetected = flag == FLAG_NOT_DETECTED
    assert np.all((flux[undetected] <= 0) | (flux[undetected] < sigma[undetected]))
    assert np.all(flux[ok] >= sigma[ok]) and 0 < undetected.mean() < 0.1 and 0 < (~observed).mean() < 0.05


def _half_max_fwhm(image: np.ndarray) -> np.ndarray:
    """FWHM [px] of a centred point source from the area above half its peak, per image ``(N, P, P)``."""
    core = image[:, 15:26, 15:26]
    peak = core.max(axis=(1, 2), keepdims=True)
    return 2 * np.sqrt((core > peak / 2).sum(axis=(1, 2)) / np.pi)


def test_psf_and_fluxes_in_cutouts(small_tile):
    arrays, attrs = small_tile
    stars = (arrays["class"] == CLASS_STAR) & (arrays["mag"][:, U] < 21) & (arrays["mag"][:, R] < 20.5)
    assert stars.sum() >= 10
    scale = attrs["pixel_scale_arcsec"]
    fwhm = {
        b: np.median(_half_max_fwhm(arrays["cutout"][stars, c])) * scale
        for c, b in enumerate(attrs["image_bands"])
    }
    assert abs(fwhm["r"] - attrs["psf_fwhm_arcsec"]["r"]) < 0.12
    assert abs(fwhm["u"] - attrs["psf_fwhm_arcsec"]["u"]) < 0.15
    assert fwhm["r"] < fwhm["g"] and fwhm["r"] < fwhm["u"]
    # a star's cutout sums to its catalogue flux (zero point 30), up to noise and neighbours
    total = arrays["cutout"][stars, 2].sum(axis=(1, 2))
    assert abs(np.median(total / 10 ** (-0.4 * (arrays["mag"][stars, R] - 30))) - 1) < 0.03
    # galaxies are resolved: their r-band light is less concentrated than a star's
    gal = (arrays["class"] == CLASS_GALAXY) & (arrays["mag"][:, R] < 19)
    concentration = {
        k: np.median(
            arrays["cutout"][m, 2, 18:23, 18:23].sum(axis=(1, 2)) / arrays["cutout"][m, 2].sum(axis=(1, 2))
        )
        for k, m in (("star", stars), ("galaxy", gal))
    }
    assert concentration["galaxy"] < 0.8 * concentration["star"]


def test_sizes_shrink_with_redshift(truth):
    gal = truth["class"] == CLASS_GALAXY
    low, high = gal & (truth["z"] < 0.1), gal & (truth["z"] > 0.5)
    assert np.median(truth["r_eff_arcsec"][low]) > 2 * np.median(truth["r_eff_arcsec"][high])


def test_tile_attrs_describe_the_simulation():
    config = SimulationConfig(n_sources=10, tile="SIM_0042", seed=9)
    attrs = tile_attrs(config)
    assert attrs["tile"] == "SIM_0042" and attrs["band_set"] == "kids_viking" and attrs["n_rows"] == 10
    assert attrs["zeropoint"] == {b: 30.0 for b in BANDS}
    assert attrs["psf_fwhm_arcsec"]["r"] < attrs["psf_fwhm_arcsec"]["u"]
    assert attrs["simulator"]["config"]["seed"] == 9 and "version" in attrs["simulator"]


def test_tile_attrs_record_the_tile_s_zero_points_as_its_sources_see_them():
    config = SimulationConfig(n_sources=1500, seed=4, star_fraction=0.5, zp_tile_mag=0.05, outlier_rate=0.0)
    recorded = np.array(list(tile_attrs(config)["simulator"]["zeropoint_offset_mag"].values()))
    arrays, truth = simulate_catalogue(config), simulate_truth(config)
    bright = (truth["class"] == 1) & (arrays["mag_err"] < 0.02).all(axis=1)
    measured = np.median(arrays["mag"][bright] - truth["mag_true"][bright], axis=0)
    assert np.abs(recorded).max() > 0.03  # drawn at 0.05 mag per band
    np.testing.assert_allclose(measured, recorded, atol=0.006)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_sources": 0},
        {"star_fraction": 0.7, "qso_fraction": 0.4},
        {"z_max": 10.0},
        {"n_exp_min": 6},
        {"psf_fwhm_arcsec": (0.7,)},
    ],
)
def test_invalid_config_is_refused(kwargs):
    with pytest.raises(ValueError, match="invalid SimulationConfig"):
        SimulationConfig(**kwargs)
