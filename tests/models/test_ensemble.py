"""Ensemble bundles on disk and out-of-fold pooling, without Ray."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from distributed_pz.models.bundle import BundleError, save_bundle
from distributed_pz.models.ensemble import (
    MANIFEST,
    SINGLE_MEMBER_ID,
    finished_members,
    load_ensemble,
    member_dir,
    write_manifest,
)
from distributed_pz.train.member import TrainConfig, train_member
from distributed_pz.train.oof import combine_parts, load_part, save_part, write_catalog
from distributed_pz.train.plan import make_plan
from tests.fixtures import learnable_tile, tiny_config


@pytest.fixture(scope="module")
def bundles():
    tile = learnable_tile(120, seed=1)
    config = tiny_config("deepz", n_components=3)
    return [
        train_member(config, tile, seed, train_config=TrainConfig(epochs=1, batch_size=32)).bundle
        for seed in (1, 2)
    ]


@pytest.fixture
def ensemble_dir(tmp_path, bundles):
    plan = make_plan(np.arange(40), n_splits=1, n_folds=2, seed=5)
    plan.save(tmp_path)
    for spec, bundle in zip(plan.members, bundles, strict=True):
        save_bundle(member_dir(tmp_path, spec.member_id), bundle)
    digest = write_manifest(tmp_path, plan, {"model": "deepz", "epochs": 1}, {"url": "mem", "hash": "abc"})
    return tmp_path, plan, digest


def test_ensemble_round_trip(ensemble_dir, bundles):
    root, plan, digest = ensemble_dir
    ensemble = load_ensemble(root)
    assert len(ensemble) == 2 and ensemble.model_name == "deepz"
    assert list(ensemble.members) == ["s00_f0", "s00_f1"] == sorted(finished_members(root))
    assert [b.content_hash for b in ensemble.bundles] == [b.content_hash for b in bundles]
    assert ensemble.content_hash == digest and ensemble.store_hash == "abc"
    assert np.array_equal(ensemble.plan.test_fold, plan.test_fold)
    assert ensemble.config == {"model": "deepz", "epochs": 1}


def test_edited_ensemble_is_refused(ensemble_dir):
    root, plan, _ = ensemble_dir
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["config"]["epochs"] = 2
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="content hash"):
        load_ensemble(root)
    assert len(load_ensemble(root, verify=False)) == 2


def test_single_bundle_is_an_ensemble_of_one(tmp_path, bundles):
    save_bundle(tmp_path / "one", bundles[0])
    ensemble = load_ensemble(tmp_path / "one")
    assert list(ensemble.members) == [SINGLE_MEMBER_ID] and ensemble.plan is None
    assert ensemble.content_hash == bundles[0].content_hash
    with pytest.raises(BundleError, match="neither"):
        load_ensemble(tmp_path)


def test_hidden_temporary_member_is_not_finished(tmp_path, bundles):
    save_bundle(tmp_path / "members" / ".s00_f0.tmp-x", bundles[0])
    save_bundle(member_dir(tmp_path, "s00_f1"), bundles[1])
    assert finished_members(tmp_path) == {"s00_f1"}


def _point_part(rows, z):
    return {"row": np.asarray(rows), "z_phot": np.asarray(z, float)}


def test_point_estimates_average_over_the_members_that_predicted_a_row():
    parts = [
        (0, _point_part([0, 2], [1.0, 2.0])),
        (0, _point_part([1, 3], [3.0, np.nan])),  # row 3: a flagged prediction
        (1, _point_part([0, 1], [2.0, 5.0])),
        (1, _point_part([2, 3], [4.0, 6.0])),
    ]
    out = combine_parts(parts, n_rows=5)
    np.testing.assert_allclose(out["z_phot"][:4], [1.5, 4.0, 3.0, 6.0])
    assert np.isnan(out["z_phot"][4])  # no member predicted row 4
    assert out["n_members"].tolist() == [2, 2, 2, 1, 0]
    # the predictor's point-ensemble p(z): one Gaussian of the members' mean and spread
    assert out["pdf_weights"][:, 0].tolist() == [1, 1, 1, 1, 0]
    np.testing.assert_allclose(out["pdf_means"][:4, 0], [1.5, 4.0, 3.0, 6.0])
    np.testing.assert_allclose(out["pdf_sigmas"][:4, 0], [np.sqrt(0.5), np.sqrt(2), np.sqrt(2), 1e-3])
    np.testing.assert_allclose(out["z_mean"][:4], out["z_phot"][:4])


def test_overlapping_test_folds_are_refused():
    with pytest.raises(ValueError, match="same rows"):
        combine_parts([(0, _point_part([0, 1], [1, 1])), (0, _point_part([1], [1]))], n_rows=2)


def test_mixtures_pool_with_equal_member_weights(tmp_path):
    rng = np.random.default_rng(0)

    def part(rows):
        w = rng.uniform(0.1, 1, (len(rows), 3))
        return {
            "row": np.asarray(rows),
            "z_phot": rng.uniform(0, 2, len(rows)),
            "pdf_weights": w / w.sum(axis=1, keepdims=True),
            "pdf_means": rng.uniform(0, 2, (len(rows), 3)),
            "pdf_sigmas": rng.uniform(0.05, 0.2, (len(rows), 3)),
        }

    a, b, c = part([0, 1, 2]), part([3]), part([0, 1, 2, 3])
    save_part(tmp_path / "oof" / "a.npz", a["row"], a)
    parts = [(0, load_part(tmp_path / "oof" / "a.npz")), (0, b), (1, c)]
    out = combine_parts(parts, n_rows=4)
    assert out["pdf_weights"].shape == (4, 6)
    np.testing.assert_allclose(out["pdf_weights"].sum(axis=1), 1)
    np.testing.assert_allclose(out["pdf_weights"][:3, :3], a["pdf_weights"] / 2)
    np.testing.assert_allclose(out["pdf_means"][3, 3:], c["pdf_means"][3])
    assert np.all((out["z_phot"] > 0) & (out["z_phot"] < 2.5))

    path = write_catalog(tmp_path / "oof.parquet", np.arange(100, 104), np.ones(4), out)
    table = pq.read_table(path)
    assert table.column_names == [
        "object_id",
        "z_spec",
        "z_phot",
        "n_members",
        "pdf_weights",
        "pdf_means",
        "pdf_sigmas",
    ]
    assert table.schema.field("pdf_means").type.list_size == 6
    np.testing.assert_allclose(np.array(table.column("pdf_sigmas").to_pylist()), out["pdf_sigmas"], rtol=1e-6)
