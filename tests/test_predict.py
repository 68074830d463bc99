"""predict_arrays: outputs, flags, ensembles, chunk independence, plain-dict inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distributed_pz.catalog import Flag
from distributed_pz.metrics.mixture import mode as mixture_mode
from distributed_pz.models import build_model, list_models
from distributed_pz.models.bundle import make_bundle
from distributed_pz.models.inputs import batch_tensors, fit_feature_stats
from distributed_pz.models.predict import predict_arrays
from distributed_pz.survey.tiles import TileArrays
from tests._synthetic import learnable_tile, tiny_config

torch.set_num_threads(1)


def untrained_bundle(name, seed=0, tile=None):
    torch.manual_seed(seed)
    model = build_model(tiny_config(name, classify=True))
    tile = tile or learnable_tile(40, seed=seed)
    stats = fit_feature_stats(model.input_spec, batch_tensors(tile, model.input_spec))
    return make_bundle(model, stats, tile.bands, tile.image_bands)


@pytest.mark.parametrize("name", list_models())
def test_outputs_shapes_dtypes_and_chunk_independence(name):
    tile = learnable_tile(23)
    bundle = untrained_bundle(name)
    whole = predict_arrays(bundle, tile, batch_size=1000)
    chunked = predict_arrays(bundle, tile, batch_size=5)
    assert whole["z_phot"].shape == (23,) and whole["z_phot"].dtype == np.float32
    assert whole["flags"].dtype == np.uint16 and not whole["flags"].any()
    assert whole["class_prob"].shape == (23, 3)
    np.testing.assert_allclose(whole["class_prob"].sum(axis=1), 1, rtol=1e-5)
    if bundle.model.has_pdf:
        k = bundle.config.n_components
        for key in ("pdf_weights", "pdf_means", "pdf_sigmas"):
            assert whole[key].shape == (23, k)
        np.testing.assert_allclose(whole["pdf_weights"].sum(axis=1), 1, rtol=1e-5)
        assert (whole["z_lo68"] <= whole["z_hi68"]).all() and (
            (whole["odds"] >= 0) & (whole["odds"] <= 1)
        ).all()
    for key in whole:
        np.testing.assert_allclose(whole[key], chunked[key], rtol=1e-5, atol=1e-6)


def test_ensemble_mixture_is_the_average_of_the_members():
    tile = learnable_tile(30)
    members = [untrained_bundle("deepz", seed=s) for s in (0, 1, 2)]
    alone = [predict_arrays(m, tile) for m in members]
    pooled = predict_arrays(members, tile)
    assert pooled["pdf_weights"].shape == (30, 30)
    np.testing.assert_allclose(pooled["pdf_weights"].sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(
        pooled["z_mean"], np.mean([a["z_mean"] for a in alone], axis=0), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(pooled["pdf_means"][:, 10:20], alone[1]["pdf_means"])
    mode = mixture_mode(*(pooled[k].astype(np.float64) for k in ("pdf_weights", "pdf_means", "pdf_sigmas")))
    np.testing.assert_allclose(pooled["z_phot"], mode, atol=1e-5)
    points = [untrained_bundle("gaznet_c9", seed=s) for s in (0, 1)]
    np.testing.assert_allclose(
        predict_arrays(points, tile)["z_phot"],
        np.mean([predict_arrays(p, tile)["z_phot"] for p in points], axis=0),
        rtol=1e-5,
    )


def test_point_and_pdf_members_do_not_mix():
    with pytest.raises(ValueError, match="all p\\(z\\) models or all point"):
        predict_arrays([untrained_bundle("deepz"), untrained_bundle("gaznet_c9")], learnable_tile(5))


def test_unusable_rows_are_flagged_and_nan():
    tile = learnable_tile(6)
    tile.arrays["mag"][0] = np.nan
    tile.arrays["flux_exp"][1, 3] = np.nan
    g = predict_arrays(untrained_bundle("gaznet_1_mdn"), tile)
    d = predict_arrays(untrained_bundle("deepz"), tile)
    assert g["flags"][0] == Flag.NO_PHOTOMETRY and d["flags"][1] == Flag.NO_REFERENCE
    assert np.isnan(g["z_phot"][0]) and np.isnan(g["pdf_means"][0]).all() and np.isnan(d["z_phot"][1])
    assert np.isfinite(g["z_phot"][1:]).all() and np.isfinite(np.delete(d["z_phot"], 1)).all()


def test_non_finite_network_output_is_flagged():
    bundle = untrained_bundle("gaznet_c4")
    with torch.no_grad():
        bundle.model.head.linear.bias.fill_(float("inf"))
    out = predict_arrays(bundle, learnable_tile(4))
    assert (out["flags"] & Flag.BAD_OUTPUT).all() and np.isnan(out["z_phot"]).all()


def test_plain_dict_uses_the_training_band_axes_and_named_bands_any_order():
    tile = learnable_tile(12)
    bundle = untrained_bundle("gaznet_c9i4")
    reference = predict_arrays(bundle, tile)
    np.testing.assert_array_equal(predict_arrays(bundle, dict(tile.arrays))["z_phot"], reference["z_phot"])
    order = [8, 0, 3, 1, 2, 4, 5, 7, 6]
    arrays = {**tile.arrays, "mag": tile.arrays["mag"][:, order], "cutout": tile.arrays["cutout"][:, ::-1]}
    shuffled = TileArrays(arrays, tuple(tile.bands[i] for i in order), tile.image_bands[::-1])
    np.testing.assert_allclose(predict_arrays(bundle, shuffled)["z_phot"], reference["z_phot"], rtol=1e-6)


def test_empty_input_gives_empty_columns():
    out = predict_arrays(untrained_bundle("deepz"), learnable_tile(5).take(slice(0, 0)))
    assert out["z_phot"].shape == (0,) and out["pdf_weights"].shape == (0, 10)
