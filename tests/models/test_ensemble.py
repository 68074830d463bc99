"""Ensemble bundles on disk and out-of-fold pooling, without Ray."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from distributed_pz.models.bundle import BundleError, save_bundle
from distributed_pz.models.calibration import Calibration
from distributed_pz.models.ensemble import ENSEMBLE_FILE, SINGLE_MEMBER_ID, EnsembleDir
from distributed_pz.models.locus import StellarLocus
from distributed_pz.train.member import TrainConfig, train_member
from distributed_pz.train.oof import combine_parts, load_part, predict_part, save_part, write_catalog
from distributed_pz.train.plan import make_plan
from tests.fixtures import learnable_tile, save_ensemble, star_magnitudes, tiny_config

WIDER = Calibration((), (0.01,), (2.0,), (0.01,), "test rows", 100)


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
    ensemble = EnsembleDir(tmp_path)
    for spec, bundle in zip(plan.members, bundles, strict=True):
        save_bundle(ensemble.member(spec.member_id), bundle)
    store = {"url": "mem", "hash": "abc", "band_set": "kids_viking"}
    digest = ensemble.write_manifest(plan, {"model": "deepz", "epochs": 1}, store)
    return tmp_path, plan, digest


def test_ensemble_round_trip(ensemble_dir, bundles):
    root, plan, digest = ensemble_dir
    ensemble = EnsembleDir(root).read()
    assert len(ensemble) == 2 and ensemble.model_name == "deepz" and ensemble.band_set == "kids_viking"
    assert list(ensemble.members) == ["s00_f0", "s00_f1"] == sorted(EnsembleDir(root).finished_members())
    assert [b.content_hash for b in ensemble.bundles] == [b.content_hash for b in bundles]
    assert ensemble.content_hash == digest and ensemble.store_hash == "abc"
    assert np.array_equal(ensemble.plan.test_fold, plan.test_fold)
    assert ensemble.config == {"model": "deepz", "epochs": 1}


def test_edited_ensemble_is_refused(ensemble_dir):
    root, plan, _ = ensemble_dir
    manifest = json.loads((root / ENSEMBLE_FILE).read_text())
    manifest["config"]["epochs"] = 2
    (root / ENSEMBLE_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="content hash"):
        EnsembleDir(root).read()
    assert len(EnsembleDir(root).read(verify=False)) == 2


def test_read_without_weights_gives_what_a_client_checks(ensemble_dir, bundles):
    root, _, digest = ensemble_dir
    head = EnsembleDir(root).read(weights=False)
    assert head.content_hash == digest and head.band_set == "kids_viking" and not head.members
    assert head.bands == list(bundles[0].input_spec.bands) and head.image_bands == []
    with pytest.raises(ValueError, match="without its weights"):
        _ = head.bundles


def test_the_calibration_is_read_with_the_ensemble_and_covered_by_its_hash(tmp_path, bundles):
    plain = save_ensemble(tmp_path / "plain", bundles)
    root = tmp_path / "calibrated"
    digest = save_ensemble(root, bundles, WIDER)
    assert digest != plain  # the same members and plan, another p(z): another hash
    ensemble = EnsembleDir(root).read()
    assert ensemble.calibration == WIDER and ensemble.content_hash == digest

    manifest = json.loads((root / ENSEMBLE_FILE).read_text())
    edited = json.loads((root / EnsembleDir.calibration_file).read_text())
    edited["temperature"][0] *= 2
    (root / EnsembleDir.calibration_file).write_text(json.dumps(edited))
    with pytest.raises(BundleError, match="calibration.json is not the calibration recorded"):
        EnsembleDir(root).read()
    (root / ENSEMBLE_FILE).write_text(json.dumps({**manifest, "calibration": None}))  # calibration removed
    with pytest.raises(BundleError, match="content hash does not match"):
        EnsembleDir(root).read(weights=False)
    (root / EnsembleDir.calibration_file).unlink()
    (root / ENSEMBLE_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="calibration.json it records is missing"):
        EnsembleDir(root).read()


def test_an_ensemble_of_an_older_format_is_refused_with_the_remedy(ensemble_dir):
    root, _, _ = ensemble_dir
    manifest = json.loads((root / ENSEMBLE_FILE).read_text())
    (root / ENSEMBLE_FILE).write_text(json.dumps({**manifest, "format_version": 1}))
    with pytest.raises(BundleError, match="v1, expected .* v2; retrain it"):
        EnsembleDir(root).read()


def test_single_bundle_is_an_ensemble_of_one(tmp_path, bundles):
    save_bundle(tmp_path / "one", bundles[0])
    ensemble = EnsembleDir(tmp_path / "one").read()
    assert list(ensemble.members) == [SINGLE_MEMBER_ID] and ensemble.plan is None
    assert ensemble.content_hash == bundles[0].content_hash and ensemble.calibration is None
    assert EnsembleDir(tmp_path / "one").read(weights=False).content_hash == bundles[0].content_hash
    with pytest.raises(BundleError, match="neither"):
        EnsembleDir(tmp_path).read()


def test_hidden_temporary_member_is_not_finished(tmp_path, bundles):
    save_bundle(tmp_path / "members" / ".s00_f0.tmp-x", bundles[0])
    save_bundle(EnsembleDir(tmp_path).member("s00_f1"), bundles[1])
    assert EnsembleDir(tmp_path).finished_members() == {"s00_f1"}


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
    c4 = np.sqrt(2 / np.pi)  # two members: the spread is unbiased (metrics.mixture.spread_mixture)
    np.testing.assert_allclose(
        out["pdf_sigmas"][:4, 0], [np.sqrt(0.5) / c4, np.sqrt(2) / c4, np.sqrt(2) / c4, 1e-3]
    )
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


def test_out_of_fold_rows_can_be_predicted_under_other_zero_points(bundles):
    rows = learnable_tile(200, seed=3)
    plain = predict_part(bundles[0], rows)
    drawn = predict_part(bundles[0], rows, redraw_seed=3)
    np.testing.assert_array_equal(drawn["z_phot"], predict_part(bundles[0], rows, redraw_seed=3)["z_phot"])
    shift = np.abs(drawn["z_phot"] - plain["z_phot"])
    assert 0 < np.nanmedian(shift) < 0.1  # ~0.01 mag zero points: small, but not nothing


def test_the_stellar_locus_is_read_with_the_ensemble_and_covered_by_its_hash(tmp_path, bundles):
    stars = star_magnitudes(200, seed=0)
    locus = StellarLocus.fit(stars, np.full_like(stars, 0.01), tuple("ugriZYJHK"))
    digest = save_ensemble(tmp_path / "ens", bundles, locus=locus)
    assert digest != save_ensemble(tmp_path / "plain", bundles)
    assert EnsembleDir(tmp_path / "ens").read(weights=False).locus == locus
    path = tmp_path / "ens" / EnsembleDir.locus_file
    edited = json.loads(path.read_text())
    edited["nodes"][0][0] += 0.1
    path.write_text(json.dumps(edited))
    with pytest.raises(BundleError, match="stellar_locus.json is not the stellar locus recorded"):
        EnsembleDir(tmp_path / "ens").read(weights=False)
