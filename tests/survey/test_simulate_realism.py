"""The simulator's realism features: band sets, catalogue-only tiles, one shared measurement, seeing, stars."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from distributed_pz.bands import KIDS_VIKING, SDSS
from distributed_pz.cli import main
from distributed_pz.survey.sim import images, sed, stars
from distributed_pz.survey.sim.package_data import load_filters
from distributed_pz.survey.sim.simulate import (
    SimulationConfig,
    simulate_catalogue,
    simulate_tile,
    simulate_truth,
    tile_attrs,
)
from distributed_pz.survey.store.schema import CLASS_GALAXY, CLASS_STAR
from distributed_pz.survey.store.store import open_store
from distributed_pz.survey.store.validate import validate_tile

R = KIDS_VIKING.bands.index("r")


def test_sdss_band_set_is_a_valid_catalogue_only_tile():
    config = SimulationConfig.for_survey("sdss", n_sources=600, seed=1)
    arrays, attrs = simulate_tile(config)
    assert (
        "cutout" not in arrays and arrays["mag"].shape == (600, 5) and arrays["flux_exp"].shape == (600, 5, 1)
    )
    assert attrs["bands"] == list(SDSS.bands) and attrs["image_bands"] == []
    assert np.all(arrays["class"] == CLASS_GALAXY)
    r = arrays["mag"][:, SDSS.bands.index("r")]
    assert np.nanmax(r) < 19.0 and np.nanmedian(r) < 17.9  # MGS-like r < 17.77, smooth edge
    store = open_store(f"memory://{uuid.uuid4().hex}/s.zarr", mode="a")
    validate_tile(store.write_tile(attrs["tile"], arrays, attrs, chunk_rows=128, shard_rows=256), deep=True)


def test_no_cutouts_cli_tile_is_valid_and_has_the_same_catalogue(tmp_path):
    url = str(tmp_path / "sim.zarr")
    assert main(["simulate", "--n", "300", "--seed", "4", "--out", url, "--no-cutouts"]) == 0
    tile = open_store(url).tile("SIM_0000")
    assert "cutout" not in tile.array_names()
    validate_tile(tile, deep=True)
    stored = tile.read(["mag", "flux_exp"])
    full, _ = simulate_tile(SimulationConfig(n_sources=300, seed=4))
    for name in ("mag", "flux_exp"):
        np.testing.assert_array_equal(stored[name], full[name])


def test_user_filter_files_reproduce_the_shipped_curves(tmp_path):
    files = []
    for curve in load_filters(KIDS_VIKING):
        path = Path(tmp_path) / f"{curve.band}.txt"
        np.savetxt(path, np.column_stack([curve.wave, curve.trans]), header="wavelength transmission")
        files.append(str(path))
    shipped = simulate_catalogue(SimulationConfig(n_sources=200, seed=2))
    own = simulate_catalogue(SimulationConfig(n_sources=200, seed=2, filter_files=tuple(files)))
    np.testing.assert_allclose(own["mag"], shipped["mag"], atol=1e-4)
    with pytest.raises(ValueError, match="filter_files needs one value per band"):
        SimulationConfig(filter_files=tuple(files[:3]))


def test_conditioned_noise_returns_the_catalogue_error_and_is_white():
    rng = np.random.default_rng(0)
    n = 4000
    x = y = np.full(n, float(images.CENTRE))
    weights = images.gaussian_weights(x, y, np.full(n, 3.5))
    response = np.full((n, 1), 0.8)
    sigma_cat = np.full((n, 1), 2.0)
    error = rng.normal(0.0, 2.0, (n, 1))
    noise = images.conditioned_noise(rng, weights, response, sigma_cat, error)
    estimate = (noise[:, 0] * weights).sum(axis=(1, 2)) / response[:, 0]
    np.testing.assert_allclose(estimate, error[:, 0], rtol=1e-3, atol=1e-3)
    sigma_pix = 2.0 * 0.8 / np.sqrt((weights[0].astype(float) ** 2).sum())
    assert abs(noise[:, 0, 0, 0].std() / sigma_pix - 1) < 0.05  # far from the source
    assert abs(noise[:, 0, images.CENTRE, images.CENTRE].std() / sigma_pix - 1) < 0.05  # at the source


def test_cutout_photometry_shares_the_catalogue_errors():
    config = SimulationConfig(
        n_sources=1024, seed=8, star_fraction=0.5, qso_fraction=0.0, neighbour_fraction=0.0
    )
    arrays, _ = simulate_tile(config)
    truth = simulate_truth(config)
    point = (arrays["class"] == CLASS_STAR) & (arrays["mag"][:, R] > 21.5) & (arrays["mag"][:, R] < 23.5)
    yy, xx = np.mgrid[:40, :40] - images.CENTRE
    aperture = arrays["cutout"][point, 2][:, np.hypot(xx, yy) < 5].sum(axis=1)
    err_cat = 10 ** (-0.4 * (arrays["mag"][point, R].astype(float) - 30)) - truth["flux_signal"][point, R]
    err_ap = aperture - 0.97 * truth["flux_signal"][point, R]  # 2″ aperture holds ≈ 97 % of a star
    assert point.sum() > 50 and np.corrcoef(err_cat, err_ap)[0, 1] > 0.8


def test_seeing_varies_across_and_between_tiles():
    truths = [simulate_truth(SimulationConfig(n_sources=600, seed=s)) for s in (1, 2)]
    fwhm = [t["psf_fwhm_arcsec"][:, R] for t in truths]
    assert all(0.01 < np.std(f) / np.mean(f) < 0.1 for f in fwhm)  # across a tile
    assert abs(np.median(fwhm[0]) - np.median(fwhm[1])) > 0.01  # between tiles
    attrs = tile_attrs(SimulationConfig(seed=1))
    assert attrs["psf_fwhm_arcsec"]["r"] == 0.7 and attrs["simulator"]["psf_fwhm_tile_arcsec"]["r"] != 0.7


def test_m_dwarfs_are_redder_than_blackbodies():
    passbands = sed.Passbands.from_band_set(SDSS)
    wave = np.exp(np.linspace(np.log(900.0), np.log(60000.0), 4000))
    colours = {}
    for kind, spectrum in (("bb", stars.blackbody(wave, 3200.0)), ("star", stars.stellar_sed(wave, 3200.0))):
        m = -2.5 * np.log10(passbands.synthetic_flux(wave, spectrum, 0.0))
        colours[kind] = (m[2] - m[3], m[3] - m[4])
    assert colours["bb"][0] < 0.8 and 1.3 < colours["star"][0] < 1.7  # r − i of an M4 dwarf ≈ 1.5
    assert 0.7 < colours["star"][1] < 1.2  # i − z ≈ 0.85
    hot = stars.stellar_sed(wave, 6000.0) / stars.blackbody(wave, 6000.0)
    np.testing.assert_allclose(hot, 1.0)


def test_selection_is_smooth_and_faint_galaxies_are_bluer():
    config = SimulationConfig(n_sources=6000, seed=6, star_fraction=0, qso_fraction=0, highz_z_min=1.0)
    truth = simulate_truth(config)
    r = truth["mag_true"][:, R]
    counts = [np.sum((r >= lo) & (r < lo + 0.2)) for lo in (19.6, 19.8, 20.0, 20.2)]
    assert counts[2] > 0.15 * counts[1] and counts[3] > 0.05 * counts[0]  # no ×15 cliff at r = 20
    at_z = (truth["z"] > 0.15) & (truth["z"] < 0.3)  # fixed redshift: same K-correction
    g_r = truth["mag_true"][:, 1] - truth["mag_true"][:, 2]
    faint, bright = at_z & (truth["abs_mag_r"] > -19.5), at_z & (truth["abs_mag_r"] < -21.0)
    assert faint.sum() > 50 and bright.sum() > 50
    assert np.median(g_r[faint]) < np.median(g_r[bright]) - 0.1


def test_sed_correction_changes_colours_not_the_selection_band():
    from distributed_pz.survey.sim import diversity

    grids = sed.sed_grids(KIDS_VIKING)
    z = np.array([0.0, 0.1, 0.5, 0.7, 1.05, 1.3, 1.6, 2.5])
    off = diversity.calibrated_offsets(grids, z, 1.0, R)
    assert off.shape == (len(z), len(KIDS_VIKING.bands))
    np.testing.assert_allclose(off[:, R], 0.0)
    assert np.all(np.abs(off) < 0.5)
    assert np.abs(off[2:4]).max() > 0.01  # the calibration does something where zCOSMOS has galaxies
    np.testing.assert_allclose(off[-2:], 0.0)  # and nothing beyond z = 1.5 (no real colours there)
    np.testing.assert_allclose(diversity.calibrated_offsets(grids, z, 0.0, R), 0.0)
    base = dict(n_sources=400, seed=3, cutouts=False, star_fraction=0.0, qso_fraction=0.0)
    on = simulate_truth(SimulationConfig(**base))
    off_cfg = simulate_truth(SimulationConfig(**base, sed_correction=0.0))
    np.testing.assert_array_equal(on["z"], off_cfg["z"])
    d = on["mag_true"] - off_cfg["mag_true"]
    assert np.nanmax(np.abs(d[:, R])) < 1e-3 and np.nanmax(np.abs(d)) > 0.01
