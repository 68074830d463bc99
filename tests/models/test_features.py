"""Feature functions and the input pipeline: colours, flux ratios, masks, statistics, flags."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distributed_pz.catalog import Flag
from distributed_pz.models import list_models
from distributed_pz.models.features import (
    FeatureStats,
    InputSpec,
    adjacent_colours,
    coadd_exposures,
    fit_robust_stats,
    flux_ratio_features,
    mag_colour_features,
    mag_to_flux,
    standardize_with_mask,
)
from distributed_pz.models.inputs import batch_tensors, fit_feature_stats, model_inputs, raw_features
from distributed_pz.survey.store.tiles import TileArrays
from tests.fixtures import learnable_tile, tiny_config

torch.set_num_threads(1)
NAN = float("nan")


def test_mag_to_flux_uses_zeropoint_30():
    flux = mag_to_flux(torch.tensor([30.0, 25.0, NAN]), 30.0)
    assert flux[0] == pytest.approx(1.0)
    assert flux[1] == pytest.approx(100.0)
    assert torch.isnan(flux[2])


def test_colours_are_adjacent_differences_after_magnitudes():
    mag = torch.tensor([[20.0, 19.5, 19.0, NAN]])
    assert torch.equal(adjacent_colours(mag)[0, :2], torch.tensor([0.5, 0.5]))
    feats = mag_colour_features(mag)
    assert feats.shape == (1, 7)
    assert torch.isnan(feats[0, 3]) and torch.isnan(feats[0, 6]) and not torch.isnan(feats[0, 5])


def test_flux_ratios_divide_by_reference_and_drop_it():
    flux = torch.tensor([[1.0, 2.0, 4.0], [1.0, -1.0, 2.0], [1.0, NAN, 3.0]])
    ratios = flux_ratio_features(flux, reference=1)
    assert torch.allclose(ratios[0], torch.tensor([0.5, 2.0]))
    assert torch.isnan(ratios[1:]).all()  # non-positive or missing reference: no ratio at all


def test_standardize_never_leaves_nan_and_masks_missing():
    x = torch.tensor([[1.0, NAN], [3.0, 1e9]])
    out = standardize_with_mask(x, torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0]), clip=5.0)
    assert torch.isfinite(out).all()
    assert torch.equal(out, torch.tensor([[-1.0, 0.0, 0.0, 1.0], [1.0, 5.0, 0.0, 0.0]]))


def test_robust_stats_median_and_mad():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, (2001, 3))
    x[:, 2] = NAN
    x[0, 0] = NAN
    center, scale = fit_robust_stats(torch.tensor(x))
    col = x[1:, 0]
    assert center[0] == pytest.approx(np.median(col))
    assert scale[0] == pytest.approx(1.4826 * np.median(np.abs(col - np.median(col))))
    assert (center[2], scale[2]) == (0.0, 1.0)


def test_inverse_variance_coadd_matches_numpy():
    rng = np.random.default_rng(2)
    f = rng.normal(10, 1, (5, 3, 4))
    e = rng.uniform(0.5, 2, (5, 3, 4))
    f[0, 0, 1:] = NAN
    f[1, 2, :] = NAN
    flux, err = coadd_exposures(torch.tensor(f), torch.tensor(e))
    w = np.where(np.isfinite(f), e**-2, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.nansum(w * np.nan_to_num(f), axis=2) / w.sum(axis=2)
    np.testing.assert_allclose(flux.numpy()[np.isfinite(expected)], expected[np.isfinite(expected)])
    assert torch.isnan(flux[1, 2]) and torch.isnan(err[1, 2])
    assert flux[0, 0] == pytest.approx(f[0, 0, 0]) and err[0, 0] == pytest.approx(e[0, 0, 0])


def test_feature_stats_round_trip():
    stats = FeatureStats((1.0, 2.0), (3.0, 4.0), (0.5,), (2.5,))
    assert FeatureStats.from_dict(stats.to_dict()) == stats


@pytest.mark.parametrize("name", list_models())
def test_model_inputs_are_finite_with_missing_data(name):
    tile = learnable_tile(40)
    tile.arrays["mag"][::3, 2] = np.nan
    tile.arrays["mag"][5] = np.nan
    tile.arrays["flux_exp"][::4, 0] = np.nan
    tile.arrays["cutout"][7, 0, :5] = np.nan
    spec = tiny_config(name).input_spec()
    batch = batch_tensors(tile, spec)
    stats = fit_feature_stats(spec, batch)
    raw = raw_features(spec, batch, coadd_alpha=0.5, max_shift=2, generator=torch.Generator().manual_seed(0))
    inputs = model_inputs(spec, raw, stats)
    assert all(torch.isfinite(v).all() for v in inputs.values())
    if spec.catalog != "none":
        assert inputs["catalog"].shape == (40, 2 * spec.n_catalog)
    if spec.image_bands:
        assert inputs["image"].shape == (40, len(spec.image_bands), 40, 40)


def test_flags_mark_unusable_rows():
    tile = learnable_tile(6)
    tile.arrays["mag"][0] = np.nan
    tile.arrays["flux_exp"][1] = np.nan
    tile.arrays["flux_exp"][2, 3] = np.nan  # the i band: no ratio
    tile.arrays["cutout"][3, 2] = np.nan  # the r channel
    gaznet = tiny_config("gaznet_1").input_spec()
    deepz = tiny_config("deepz").input_spec()
    g = raw_features(gaznet, batch_tensors(tile, gaznet))["flags"].tolist()
    d = raw_features(deepz, batch_tensors(tile, deepz))["flags"].tolist()
    assert g == [Flag.NO_PHOTOMETRY, 0, 0, Flag.NO_IMAGE, 0, 0]
    assert d == [0, Flag.NO_PHOTOMETRY | Flag.NO_REFERENCE, Flag.NO_REFERENCE, 0, 0, 0]


def test_bands_are_selected_by_name_whatever_the_tile_order():
    tile = learnable_tile(20)
    order = np.random.default_rng(0).permutation(len(tile.bands))
    arrays = dict(tile.arrays)
    for name in ("mag", "mag_err", "mag_flag", "flux_exp", "flux_exp_err"):
        arrays[name] = tile.arrays[name][:, order]
    shuffled = TileArrays(arrays, tuple(tile.bands[i] for i in order), tile.image_bands)
    for name in ("gaznet_c9", "deepz"):
        spec = tiny_config(name).input_spec()
        a = raw_features(spec, batch_tensors(tile, spec))["catalog"]
        b = raw_features(spec, batch_tensors(shuffled, spec))["catalog"]
        torch.testing.assert_close(a, b, equal_nan=True)


def test_deepz_without_exposures_uses_catalogue_magnitudes():
    tile = learnable_tile(10)
    spec = InputSpec(catalog="flux_ratio", bands=tile.bands, use_exposures=False)
    batch = batch_tensors(tile, spec)
    assert "flux" in batch and "flux_exp" not in batch
    ratio = raw_features(spec, batch)["catalog"]
    mag = tile.arrays["mag"]
    expected = 10 ** (-0.4 * (mag[:, 0] - mag[:, 3]))  # u over i
    np.testing.assert_allclose(ratio[:, 0].numpy(), expected, rtol=1e-4)
