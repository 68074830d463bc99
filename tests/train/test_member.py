"""train_member: learning, best weights, early stopping, NaN, resume, fine-tuning, schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from distributed_pz.models.inputs import batch_tensors
from distributed_pz.train import (
    TrainConfig,
    TrainingDiverged,
    evaluate_loss,
    learning_rate,
    load_train_state,
    save_train_state,
    train_member,
)
from distributed_pz.train.loss import member_loss
from distributed_pz.train.schedule import first_drop
from tests.fixtures import learnable_tile, tiny_config

torch.set_num_threads(1)
FAST = TrainConfig(epochs=3, batch_size=32, patience=None)


def weights(bundle):
    return {k: v.clone() for k, v in bundle.model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_schedules_follow_the_papers():
    assert [learning_rate("gaznet", e, 60, 1e-3) for e in (0, 29, 30, 59)] == [1e-3, 1e-3, 1e-4, 1e-4]
    deepz = [learning_rate("deepz", e, 300, 1e-3) for e in (0, 99, 100, 166, 167, 233, 234, 299)]
    np.testing.assert_allclose(deepz, [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6])
    assert learning_rate("constant", 7, 10, 0.5) == 0.5
    with pytest.raises(KeyError, match="unknown learning-rate schedule"):
        learning_rate("cosine", 0, 10, 1.0)


@pytest.mark.parametrize("name", ["gaznet_c9", "gaznet_1_mdn", "deepz"])
def test_training_learns_and_keeps_the_best_weights(name):
    tile = learnable_tile(300, seed=1)
    result = train_member(tiny_config(name), tile, seed=0, train_config=TrainConfig(epochs=6, batch_size=32))
    history = result.history
    assert len(history) == 6 and result.stop_reason == "completed"
    assert history[-1].train_loss < history[0].train_loss
    best = min(history, key=lambda r: r.val_loss)
    assert result.best_epoch == best.epoch and best.is_best
    assert [r.lr for r in history] == [
        learning_rate(result.bundle.config.family, e, 6, 1e-3) for e in range(6)
    ]
    # the returned weights are the best epoch's: re-evaluating them gives its validation loss
    val = tile.take(np.sort(np.random.default_rng(0).permutation(300)[:60]))
    spec = result.bundle.input_spec
    loss = evaluate_loss(result.bundle.model, spec, result.bundle.feature_stats, batch_tensors(val, spec))
    assert loss == pytest.approx(best.val_loss, rel=1e-5)
    assert result.bundle.metadata["best_epoch"] == best.epoch and not result.bundle.model.training


def test_same_seed_same_member_other_seed_other_member():
    tile = learnable_tile(120, seed=2)
    a = train_member(tiny_config("deepz"), tile, seed=5, train_config=FAST)
    b = train_member(tiny_config("deepz"), tile, seed=5, train_config=FAST)
    c = train_member(tiny_config("deepz"), tile, seed=6, train_config=FAST)
    assert a.bundle.content_hash == b.bundle.content_hash != c.bundle.content_hash


@pytest.mark.parametrize("schedule, drop", [("gaznet", 5), ("deepz", 4), ("constant", 10)])
def test_early_stopping_waits_for_the_first_learning_rate_drop(schedule, drop):
    tile = learnable_tile(120, seed=3)
    config = TrainConfig(
        epochs=10, batch_size=32, patience=2, min_delta=1e9, schedule=schedule
    )  # nothing ever counts as better: only the rule decides when it stops
    result = train_member(tiny_config("gaznet_c4"), tile, seed=0, train_config=config)
    assert first_drop(schedule, 10, config.lr) == drop
    lrs = [r.lr for r in result.history]
    assert all(lr == config.lr for lr in lrs[:drop]) and result.best_epoch == 0
    if drop + 2 <= 10:  # stops after `patience` epochs at the dropped rate, never before the drop
        assert result.stop_reason == "early_stopping" and len(result.history) == drop + 2
        assert lrs[-1] < config.lr
    else:
        assert result.stop_reason == "completed" and len(result.history) == 10


def nan_from_call(n):
    """A member_loss that turns NaN from its ``n``-th call on."""
    calls = {"n": 0}

    def loss(*args, **kwargs):
        total, parts = member_loss(*args, **kwargs)
        calls["n"] += 1
        return (total * float("nan"), parts) if calls["n"] >= n else (total, parts)

    return loss


@pytest.mark.parametrize("on_nan", ["raise", "stop"])
def test_non_finite_loss_stops_training(on_nan, monkeypatch):
    tile = learnable_tile(100, seed=4)
    config = TrainConfig(epochs=4, batch_size=32, patience=None, on_nan=on_nan)
    # 80 training rows = 3 steps, then 1 validation batch: the 6th call is epoch 1's second step
    monkeypatch.setattr("distributed_pz.train.member.member_loss", nan_from_call(6))
    if on_nan == "raise":
        with pytest.raises(TrainingDiverged, match="seed 3: training loss is nan at epoch 1"):
            train_member(tiny_config("gaznet_c9"), tile, seed=3, train_config=config)
        return
    result = train_member(tiny_config("gaznet_c9"), tile, seed=3, train_config=config)
    assert result.stop_reason == "nan" and result.best_epoch == 0 and len(result.history) == 1
    assert result.bundle.metadata["stop_reason"] == "nan"
    assert all(
        torch.isfinite(v).all() for v in result.bundle.model.state_dict().values() if v.is_floating_point()
    )


@pytest.mark.parametrize("name", ["gaznet_1", "deepz"])
def test_resume_from_a_checkpoint_reproduces_the_uninterrupted_run(tmp_path, name):
    tile = learnable_tile(120, seed=5)
    config = TrainConfig(epochs=4, batch_size=32, patience=None, max_shift=2, coadd_alpha=0.7)
    straight = train_member(tiny_config(name), tile, seed=1, train_config=config)

    def stop_after_two(report):
        if report.record.epoch == 1:
            save_train_state(tmp_path / "state.pt", report.state())
            return True
        return None

    first = train_member(tiny_config(name), tile, seed=1, train_config=config, callback=stop_after_two)
    assert first.stop_reason == "callback" and len(first.history) == 2
    resumed = train_member(
        tiny_config(name), tile, seed=1, train_config=config, resume=load_train_state(tmp_path / "state.pt")
    )
    assert [r.val_loss for r in resumed.history] == [r.val_loss for r in straight.history]
    assert_same_weights(weights(resumed.bundle), weights(straight.bundle))
    assert resumed.bundle.content_hash == straight.bundle.content_hash


def test_callback_sees_every_epoch_and_can_export_the_best_bundle():
    tile = learnable_tile(100, seed=6)
    seen = []
    result = train_member(
        tiny_config("gaznet_c4"), tile, seed=2, train_config=FAST, callback=lambda r: seen.append(r) and None
    )
    assert [r.record.epoch for r in seen] == [0, 1, 2]
    assert seen[-1].best_bundle().content_hash == result.bundle.content_hash
    assert seen[0].seed == 2


def test_fine_tuning_starts_from_the_pretrained_bundle_and_keeps_its_statistics():
    simulated = learnable_tile(150, seed=7)
    target = learnable_tile(100, seed=8)
    pre = train_member(tiny_config("deepz"), simulated, seed=0, train_config=FAST)
    assert "reconstruction" in pre.history[0].parts  # pre-training adds the autoencoder loss
    zero = TrainConfig(epochs=1, batch_size=32, lr=0.0, schedule="constant", patience=None)
    tuned = train_member(None, target, seed=1, train_config=zero, init_bundle=pre.bundle)
    assert "reconstruction" not in tuned.history[0].parts  # fine-tuning does not
    assert tuned.bundle.feature_stats == pre.bundle.feature_stats
    pre_w, tuned_w = weights(pre.bundle), weights(tuned.bundle)
    for k in pre_w:  # lr 0: only batch-norm running statistics may move
        if "running" not in k and "num_batches" not in k:
            torch.testing.assert_close(pre_w[k], tuned_w[k])
    from_weights = train_member(
        tiny_config("deepz"), target, seed=1, train_config=zero, init_weights=pre.bundle.model.state_dict()
    )
    assert from_weights.bundle.feature_stats != pre.bundle.feature_stats  # fitted on the target data


def test_class_head_adds_cross_entropy_only_with_labels():
    tile = learnable_tile(100, seed=9)
    with_labels = train_member(tiny_config("gaznet_c9", classify=True), tile, seed=0, train_config=FAST)
    assert "class" in with_labels.history[0].parts and math.isfinite(with_labels.history[0].parts["class"])
    tile.arrays["class"][:] = 255
    unlabelled = train_member(tiny_config("gaznet_c9", classify=True), tile, seed=0, train_config=FAST)
    assert "class" not in unlabelled.history[0].parts


def test_rows_without_redshift_are_not_trained_on():
    tile = learnable_tile(100, seed=10)
    tile.arrays["z_spec"][:40] = np.nan
    result = train_member(tiny_config("gaznet_c4"), tile, seed=0, train_config=FAST)
    assert result.bundle.metadata["n_train"] + result.bundle.metadata["n_val"] == 60


@pytest.mark.gpu
def test_trains_on_gpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    tile = learnable_tile(200, seed=11)
    config = TrainConfig(epochs=2, batch_size=64, patience=None, device="cuda")
    for name in ("gaznet_1_mdn", "deepz"):
        result = train_member(tiny_config(name), tile, seed=0, train_config=config)
        assert result.bundle.device.type == "cuda" and math.isfinite(result.history[-1].val_loss)
