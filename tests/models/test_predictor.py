"""The ensemble predictor on tiny real bundles, without any cluster.

Also what ``predict_arrays`` (folded in here) was tested for: every registered model, chunk
independence, unusable rows, plain-dict inputs, empty inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distributed_pz import catalog as fl
from distributed_pz.infer.local import predict_tile_local
from distributed_pz.metrics import mixture
from distributed_pz.models import build_model, list_models
from distributed_pz.models.bundle import make_bundle
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.inputs import batch_tensors, fit_feature_stats
from distributed_pz.models.predictor import BF16_TOLERANCE, EnsemblePredictor, PredictOptions
from distributed_pz.survey.store.tiles import TileArrays
from tests.fixtures import (
    fresh_members,
    learnable_tile,
    save_ensemble,
    tiny_config,
    trained_members,
    with_ids,
    write_store,
)

torch.set_num_threads(1)

SUMMARIES = ("z_phot", "z_mean", "z_std", "z_lo68", "z_hi68", "odds")


@pytest.fixture(scope="module")
def deepz_members():
    return trained_members("deepz", seeds=(1, 2))


@pytest.fixture(scope="module")
def point_members():
    return fresh_members("gaznet_1", seeds=(1, 2, 3))


@pytest.fixture(scope="module")
def rows():
    return with_ids(learnable_tile(150, seed=7))


def test_columns_shapes_and_ordering(deepz_members, rows):
    out = EnsemblePredictor(deepz_members, "h", options=PredictOptions(batch_size=64))(rows)
    k = 2 * deepz_members[0].config.n_components
    assert {*SUMMARIES, "flags", "n_members", "object_id", "ra", "dec"} < out.keys()
    assert all(out[c].shape == (150,) and out[c].dtype == np.float32 for c in SUMMARIES)
    assert out["pdf_weights"].shape == out["pdf_means"].shape == out["pdf_sigmas"].shape == (150, k)
    assert out["flags"].dtype == np.int32 and np.all(out["n_members"] == 2)
    assert np.array_equal(out["object_id"], rows.arrays["object_id"])
    assert np.all(out["z_lo68"] < out["z_hi68"]) and np.all(out["z_std"] > 0)
    assert np.all(
        (out["z_lo68"] <= out["z_phot"]) | (out["odds"] < 0.5)
    )  # a mode outside 68 % is a flat p(z)
    assert np.all((out["odds"] >= 0) & (out["odds"] <= 1))
    assert np.allclose(out["pdf_weights"].sum(axis=1), 1, atol=1e-5)


def test_unusable_rows_are_flagged_never_silent_nan(deepz_members, rows):
    arrays = {k: v.copy() for k, v in rows.arrays.items()}
    arrays["flux_exp"][:3] = np.nan  # no photometry at all
    arrays["flux_exp"][3, 0] = np.nan  # u band missing
    bad = TileArrays(arrays, rows.bands, rows.image_bands)
    out = EnsemblePredictor(deepz_members, "h")(bad)
    assert np.all(out["flags"][:3] & fl.Flag.NO_PHOTOMETRY) and np.all(out["n_members"][:3] == 0)
    assert np.all(np.isnan(out["z_phot"][:3])) and np.all(out["pdf_weights"][:3] == 0)
    assert out["flags"][3] & fl.Flag.PARTIAL_INPUT and np.isfinite(out["z_phot"][3])
    no_estimate = (out["flags"] & fl.NO_ESTIMATE) != 0
    for column in SUMMARIES:
        assert np.array_equal(np.isnan(out[column]), no_estimate), column


def test_pooling_equals_manual_pooling_of_members(deepz_members, rows):
    options = PredictOptions(odds_interval=0.05)
    pooled = EnsemblePredictor(deepz_members, "h", options=options)(rows)
    singles = [EnsemblePredictor([b], "h", options=options)(rows) for b in deepz_members]
    weights = np.concatenate([s["pdf_weights"] for s in singles], axis=1) / 2
    means = np.concatenate([s["pdf_means"] for s in singles], axis=1)
    sigmas = np.concatenate([s["pdf_sigmas"] for s in singles], axis=1)
    assert np.allclose(pooled["pdf_weights"], weights, atol=1e-6)  # stacked members: float rounding only
    assert np.allclose(pooled["pdf_means"], means, atol=1e-6) and np.allclose(
        pooled["pdf_sigmas"], sigmas, atol=1e-6
    )
    manual = mixture.summarise(weights.astype(float), means.astype(float), sigmas.astype(float), 0.05)
    for column in SUMMARIES:
        assert np.allclose(pooled[column], manual[column], rtol=1e-5, atol=1e-5), column


def test_point_members_give_a_gaussian_of_their_spread(point_members, rows):
    out = EnsemblePredictor(point_members, "h")(rows)
    z = np.stack([EnsemblePredictor([b], "h")(rows)["z_phot"] for b in point_members])
    assert out["pdf_weights"].shape == (150, 1)
    assert np.allclose(out["z_mean"], z.mean(axis=0), atol=1e-6)
    c4 = np.exp(0.5 * np.log(2 / (len(z) - 1)) + math.lgamma(len(z) / 2) - math.lgamma((len(z) - 1) / 2))
    assert np.allclose(out["z_std"], np.maximum(z.std(axis=0, ddof=1) / c4, 1e-3), rtol=1e-4, atol=1e-6)
    assert np.allclose(out["z_phot"], out["z_mean"], atol=1e-6)
    single = EnsemblePredictor(point_members[:1], "h")(rows)
    assert np.all(single["flags"] & fl.Flag.WIDTH_FLOOR) and np.allclose(single["z_std"], 1e-3)


def test_result_does_not_depend_on_chunking(deepz_members, rows):
    predictor = EnsemblePredictor(deepz_members, "h", options=PredictOptions(batch_size=32))
    whole = predictor(rows)
    halves = [predictor(rows.take(slice(0, 70))), predictor(rows.take(slice(70, None)))]
    for column, value in whole.items():
        assert np.allclose(value, np.concatenate([h[column] for h in halves]), rtol=1e-6, equal_nan=True)


def test_grid_pdf_integrates_to_one(deepz_members, rows):
    options = PredictOptions(pdf="grid", z_grid=(-1.0, 5.0, 601))
    out = EnsemblePredictor(deepz_members, "h", options=options)(rows)
    assert out["pdf"].shape == (150, 601) and "pdf_weights" not in out
    assert np.allclose(out["pdf"].sum(axis=1) * 0.01, 1, atol=1e-3)


@pytest.mark.skipif(not torch.amp.is_autocast_available("cpu"), reason="no CPU autocast")
def test_bf16_stays_within_the_stated_tolerance(deepz_members, point_members, rows):
    grid = np.linspace(-2.0, 6.0, 4001)

    def cdf(out):
        pdf = [out[c].astype(float) for c in ("pdf_weights", "pdf_means", "pdf_sigmas")]
        return np.cumsum(mixture.on_grid(grid, *pdf), axis=1) * (grid[1] - grid[0])

    for members in (deepz_members, point_members):
        fp32 = EnsemblePredictor(members, "h")(rows)
        bf16 = EnsemblePredictor(members, "h", options=PredictOptions(precision="bf16"))(rows)
        name = members[0].model_name
        assert np.abs(cdf(fp32) - cdf(bf16)).max() <= BF16_TOLERANCE, name
        for column in ("z_mean", "z_std", "z_lo68", "z_hi68"):
            shift = np.abs(bf16[column] - fp32[column]) / (1 + np.abs(fp32[column]))
            assert shift.max() <= BF16_TOLERANCE, (name, column)
        assert np.abs(bf16["odds"] - fp32["odds"]).max() <= BF16_TOLERANCE, name
        pdf = [fp32[c].astype(float) for c in ("pdf_weights", "pdf_means", "pdf_sigmas")]
        peak = mixture.pdf(fp32["z_phot"][:, None].astype(float), *pdf)[:, 0]
        at_bf16_mode = mixture.pdf(bf16["z_phot"][:, None].astype(float), *pdf)[:, 0]
        assert np.all(at_bf16_mode >= 0.9 * peak), name


def test_local_tile_prediction_reads_the_store(tmp_path, point_members):
    digest = save_ensemble(tmp_path / "ens", point_members)
    names = write_store(str(tmp_path / "store"), n_tiles=1, n_rows=200)
    predictor = EnsemblePredictor.from_ensemble(EnsembleDir(str(tmp_path / "ens")).read(device="cpu"))
    assert predictor.bundle_hash == digest and predictor.n_members == 3
    assert predictor.input_arrays(["mag", "cutout", "flux_exp"]) == [
        "object_id",
        "ra",
        "dec",
        "mag",
        "cutout",
    ]
    out = predict_tile_local(str(tmp_path / "store"), names[0], predictor, rows_per_chunk=64)
    assert len(out["object_id"]) == 200 and np.all(np.diff(out["object_id"]) == 1)
    assert np.all(np.isfinite(out["z_phot"]))


# --- what predict_arrays was tested for, now through the one predictor ---


def untrained_bundle(name, seed=0, tile=None):
    torch.manual_seed(seed)
    model = build_model(tiny_config(name, classify=True))
    tile = tile or learnable_tile(40, seed=seed)
    stats = fit_feature_stats(model.input_spec, batch_tensors(tile, model.input_spec))
    return make_bundle(model, stats, tile.bands, tile.image_bands)


def predict(bundles, rows, **options):
    return EnsemblePredictor(bundles, device="cpu", options=PredictOptions(**options))(rows)


@pytest.mark.parametrize("name", list_models())
def test_every_model_shapes_dtypes_and_chunk_independence(name):
    tile = learnable_tile(23)
    bundle = untrained_bundle(name)
    whole = predict(bundle, tile, batch_size=1000)
    chunked = predict(bundle, tile, batch_size=5)
    assert whole["z_phot"].shape == (23,) and whole["z_phot"].dtype == np.float32
    assert whole["flags"].dtype == fl.FLAG_DTYPE and not (whole["flags"] & fl.NO_ESTIMATE).any()
    k = bundle.config.n_components if bundle.model.has_pdf else 1  # a point member: one Gaussian
    for key in ("pdf_weights", "pdf_means", "pdf_sigmas"):
        assert whole[key].shape == (23, k)
    np.testing.assert_allclose(whole["pdf_weights"].sum(axis=1), 1, rtol=1e-5)
    assert (whole["z_lo68"] <= whole["z_hi68"]).all() and ((whole["odds"] >= 0) & (whole["odds"] <= 1)).all()
    if not bundle.model.has_pdf:  # one point member: the floor width, flagged
        assert (whole["flags"] & fl.Flag.WIDTH_FLOOR).all()
    for key in whole:
        np.testing.assert_allclose(whole[key], chunked[key], rtol=1e-5, atol=1e-6)


def test_ensemble_mixture_is_the_average_of_the_members():
    tile = learnable_tile(30)
    members = [untrained_bundle("deepz", seed=s) for s in (0, 1, 2)]
    alone = [predict(m, tile) for m in members]
    pooled = predict(members, tile)
    assert pooled["pdf_weights"].shape == (30, 30)
    np.testing.assert_allclose(pooled["pdf_weights"].sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(
        pooled["z_mean"], np.mean([a["z_mean"] for a in alone], axis=0), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(pooled["pdf_means"][:, 10:20], alone[1]["pdf_means"])
    mode = mixture.mode(*(pooled[k].astype(np.float64) for k in ("pdf_weights", "pdf_means", "pdf_sigmas")))
    np.testing.assert_allclose(pooled["z_phot"], mode, atol=1e-5)
    points = [untrained_bundle("gaznet_c9", seed=s) for s in (0, 1)]
    np.testing.assert_allclose(
        predict(points, tile)["z_phot"],
        np.mean([predict(p, tile)["z_phot"] for p in points], axis=0),
        rtol=1e-5,
    )


def test_point_and_pdf_members_do_not_mix():
    with pytest.raises(ValueError, match="all mixture-density models or all point"):
        predict([untrained_bundle("deepz"), untrained_bundle("gaznet_c9")], learnable_tile(5))


def test_unusable_rows_are_flagged_and_nan():
    tile = learnable_tile(6)
    tile.arrays["mag"][0] = np.nan
    tile.arrays["flux_exp"][1, 3] = np.nan
    g = predict(untrained_bundle("gaznet_1_mdn"), tile)
    d = predict(untrained_bundle("deepz"), tile)
    assert g["flags"][0] & fl.Flag.NO_PHOTOMETRY and d["flags"][1] & fl.Flag.NO_REFERENCE
    assert np.isnan(g["z_phot"][0]) and (g["pdf_weights"][0] == 0).all() and np.isnan(d["z_phot"][1])
    assert np.isfinite(g["z_phot"][1:]).all() and np.isfinite(np.delete(d["z_phot"], 1)).all()


def test_non_finite_network_output_is_flagged():
    bundle = untrained_bundle("gaznet_c4")
    with torch.no_grad():
        bundle.model.head.linear.bias.fill_(float("inf"))
    out = predict(bundle, learnable_tile(4))
    assert (out["flags"] & fl.Flag.BAD_OUTPUT).all() and np.isnan(out["z_phot"]).all()


def test_plain_dict_uses_the_training_band_axes_and_named_bands_any_order():
    tile = learnable_tile(12)
    bundle = untrained_bundle("gaznet_c9i4")
    reference = predict(bundle, tile)
    np.testing.assert_array_equal(predict(bundle, dict(tile.arrays))["z_phot"], reference["z_phot"])
    order = [8, 0, 3, 1, 2, 4, 5, 7, 6]
    arrays = {**tile.arrays, "mag": tile.arrays["mag"][:, order], "cutout": tile.arrays["cutout"][:, ::-1]}
    shuffled = TileArrays(arrays, tuple(tile.bands[i] for i in order), tile.image_bands[::-1])
    np.testing.assert_allclose(predict(bundle, shuffled)["z_phot"], reference["z_phot"], rtol=1e-6)


def test_empty_input_gives_empty_columns():
    out = predict(untrained_bundle("deepz"), learnable_tile(5).take(slice(0, 0)))
    assert out["z_phot"].shape == (0,) and out["pdf_weights"].shape == (0, 10)
