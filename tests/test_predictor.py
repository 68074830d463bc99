"""The ensemble predictor on tiny real bundles, without any cluster."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distributed_pz import catalog as fl
from distributed_pz.metrics import mixture
from distributed_pz.models.predict import predict_arrays
from distributed_pz.models.predictor import (
    BF16_TOLERANCE,
    EnsemblePredictor,
    PredictOptions,
    predict_tile_local,
)
from distributed_pz.survey.tiles import TileArrays

from ._infer_helpers import fresh_members, save_ensemble, trained_members, with_ids, write_store
from ._synthetic import learnable_tile

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
    assert np.allclose(pooled["pdf_weights"], weights, atol=1e-7)
    assert np.array_equal(pooled["pdf_means"], means) and np.array_equal(pooled["pdf_sigmas"], sigmas)
    manual = mixture.summarise(weights.astype(float), means.astype(float), sigmas.astype(float), 0.05)
    for column in SUMMARIES:
        assert np.allclose(pooled[column], manual[column], rtol=1e-5, atol=1e-5), column
    # the model zoo's own ensemble prediction pools the same mixture
    zoo = predict_arrays(deepz_members, rows)
    assert np.allclose(pooled["pdf_weights"], zoo["pdf_weights"], atol=1e-6)
    assert np.allclose(pooled["pdf_means"], zoo["pdf_means"], atol=1e-6)
    assert np.allclose(pooled["z_mean"], zoo["z_mean"], atol=1e-5)


def test_point_members_give_a_gaussian_of_their_spread(point_members, rows):
    out = EnsemblePredictor(point_members, "h")(rows)
    z = np.stack([EnsemblePredictor([b], "h")(rows)["z_phot"] for b in point_members])
    assert out["pdf_weights"].shape == (150, 1)
    assert np.allclose(out["z_mean"], z.mean(axis=0), atol=1e-6)
    assert np.allclose(out["z_std"], np.maximum(z.std(axis=0, ddof=1), 1e-3), rtol=1e-4, atol=1e-6)
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
    predictor = EnsemblePredictor.load(str(tmp_path / "ens"), device="cpu")
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
