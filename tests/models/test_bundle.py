"""Bundles: round trip gives identical predictions, hash checked, no pickle, atomic writes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import distributed_pz
from distributed_pz.models import build_model, list_models
from distributed_pz.models.bundle import BUNDLE_FILE, WEIGHTS, BundleError, load_bundle, make_bundle
from distributed_pz.models.features import FeatureStats
from distributed_pz.models.inputs import batch_tensors, fit_feature_stats
from distributed_pz.models.predictor import EnsemblePredictor
from tests.fixtures import learnable_tile, tiny_config

torch.set_num_threads(1)


def fresh_bundle(name: str, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(tiny_config(name, classify=True))
    tile = learnable_tile(30, seed=seed)
    stats = fit_feature_stats(model.input_spec, batch_tensors(tile, model.input_spec))
    # move batch-norm statistics away from their defaults so the round trip has to carry them
    model.train()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.9, 1.1)
    return make_bundle(model, stats, tile.bands, tile.image_bands, {"seed": seed}), tile


@pytest.mark.parametrize("name", list_models())
def test_round_trip_gives_identical_predictions(tmp_path, name):
    bundle, tile = fresh_bundle(name)
    before = EnsemblePredictor(bundle, device="cpu")(tile)
    bundle.save(tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    after = EnsemblePredictor(loaded, device="cpu")(tile)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(before[key], after[key])
    assert loaded.content_hash == bundle.content_hash
    assert loaded.config == bundle.config and loaded.feature_stats == bundle.feature_stats
    assert loaded.model_name == name and not loaded.model.training


def test_manifest_records_version_bands_and_hash(tmp_path):
    bundle, _ = fresh_bundle("gaznet_1")
    bundle.save(tmp_path / "b")
    manifest = json.loads((tmp_path / "b" / BUNDLE_FILE).read_text())
    assert manifest["package_version"] == distributed_pz.__version__
    assert manifest["model_name"] == "gaznet_1"
    assert manifest["data_bands"] == list(bundle.data_bands)
    assert manifest["content_hash"] == bundle.content_hash and len(bundle.content_hash) == 64
    assert manifest["metadata"] == {"seed": 0}
    assert set(manifest["feature_stats"]) == set(FeatureStats().to_dict())


def test_hash_depends_on_weights_and_stats_only():
    a, _ = fresh_bundle("gaznet_c9", seed=0)
    b, _ = fresh_bundle("gaznet_c9", seed=0)
    c, _ = fresh_bundle("gaznet_c9", seed=1)
    assert a.content_hash == b.content_hash != c.content_hash
    d = make_bundle(a.model, FeatureStats(), a.data_bands, (), {"other": "metadata"})
    assert d.content_hash != a.content_hash
    e = make_bundle(a.model, a.feature_stats, a.data_bands, a.data_image_bands, {"other": "metadata"})
    assert e.content_hash == a.content_hash


def test_tampered_weights_fail_the_hash(tmp_path):
    bundle, _ = fresh_bundle("deepz")
    path = bundle.save(tmp_path / "b")
    state = load_file(str(path / WEIGHTS))
    key = next(k for k in state if k.endswith("weight"))
    state[key] = state[key] + 1e-3
    save_file(state, str(path / WEIGHTS))
    with pytest.raises(BundleError, match="content hash"):
        load_bundle(path)
    assert load_bundle(path, verify=False).content_hash == bundle.content_hash


def test_loading_never_unpickles(tmp_path, monkeypatch):
    bundle, _ = fresh_bundle("gaznet_c4")
    bundle.save(tmp_path / "b")

    def refuse(*args, **kwargs):
        raise AssertionError("load_bundle must not call torch.load / pickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr("pickle.load", refuse)
    monkeypatch.setattr("pickle.loads", refuse)
    assert load_bundle(tmp_path / "b").content_hash == bundle.content_hash


def test_writes_are_atomic_and_do_not_clobber(tmp_path):
    a, _ = fresh_bundle("gaznet_c9", seed=0)
    b, _ = fresh_bundle("gaznet_c9", seed=1)
    a.save(tmp_path / "b")
    with pytest.raises(FileExistsError):
        b.save(tmp_path / "b")
    assert load_bundle(tmp_path / "b").content_hash == a.content_hash
    b.save(tmp_path / "b", overwrite=True)
    assert load_bundle(tmp_path / "b").content_hash == b.content_hash
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temporary directories left
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [BUNDLE_FILE, WEIGHTS]


def test_broken_bundles_are_reported(tmp_path):
    with pytest.raises(BundleError, match="no bundle.json"):
        load_bundle(tmp_path)
    (tmp_path / BUNDLE_FILE).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(BundleError, match="format"):
        load_bundle(tmp_path)
