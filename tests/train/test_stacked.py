"""Stacked members (train_stacked: batched DEEPZ, vmapped others; StackedDeepZ) equal the member loop up to float rounding."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from distributed_pz.models.folded import stack_members, stackable
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.train.batched import _dropped
from distributed_pz.train.member import TrainConfig, train_member
from distributed_pz.train.vmapped import MemberJob, train_stacked
from tests.fixtures import learnable_tile, tiny_config

torch.set_num_threads(1)
NO_DROPOUT = {"autoencoder_dropout": 0.0, "photoz_dropout": 0.0}


@pytest.mark.parametrize(("grad_clip", "batch_norm"), [(None, True), (0.5, True), (None, False)])
def test_stacked_training_equals_the_member_loop(grad_clip, batch_norm):
    config = tiny_config("deepz", batch_norm=batch_norm, **NO_DROPOUT)
    tile = learnable_tile(260, seed=4)
    # unequal row counts: the members' last batches differ in size and the shorter member skips steps
    jobs = [
        MemberJob(tile.take(np.arange(0, 200)), 3),
        MemberJob(tile.take(np.arange(40, 260, 1)), 8),
        MemberJob(tile.take(np.arange(0, 150)), 11),
    ]
    tc = TrainConfig(epochs=3, batch_size=32, patience=None, weight_decay=1e-4, grad_clip=grad_clip)
    stacked = train_stacked(config, jobs, train_config=tc)
    for job, result in zip(jobs, stacked, strict=True):
        alone = train_member(config, job.data, job.seed, train_config=tc)
        assert [r.epoch for r in result.history] == [r.epoch for r in alone.history]
        np.testing.assert_allclose(
            [r.val_loss for r in result.history], [r.val_loss for r in alone.history], rtol=1e-4
        )
        for name, value in alone.bundle.model.state_dict().items():
            torch.testing.assert_close(result.bundle.model.state_dict()[name], value, rtol=1e-4, atol=1e-5)
        assert result.bundle.feature_stats == alone.bundle.feature_stats


def test_stacked_early_stopping_and_resume_state_match_the_loop():
    config = tiny_config("deepz", **NO_DROPOUT)
    tile = learnable_tile(200, seed=5)
    tc = TrainConfig(epochs=6, batch_size=50, patience=1, lr=0.05)  # a large step: validation loss goes up
    states = []
    job = MemberJob(tile, 2, callback=lambda report: states.append(report.state()))
    stacked = train_stacked(config, [job, MemberJob(tile, 9)], train_config=tc)[0]
    alone = train_member(config, tile, 2, train_config=tc)
    assert stacked.stop_reason == alone.stop_reason and stacked.best_epoch == alone.best_epoch
    assert len(stacked.history) == len(alone.history)
    resumed = train_member(
        config, tile, 2, train_config=tc, resume=states[0]
    )  # a stacked state resumes in the loop
    assert len(resumed.history) == len(alone.history)


def test_stacked_fine_tuning_equals_the_member_loop():
    config = tiny_config("deepz", **NO_DROPOUT)
    tile = learnable_tile(160, seed=9)
    tc = TrainConfig(epochs=2, batch_size=40, patience=None)
    pretrained = train_member(config, tile, 0, train_config=tc).bundle
    jobs = [MemberJob(tile, 4), MemberJob(tile.take(np.arange(120)), 5)]
    stacked = train_stacked(config, jobs, train_config=tc, init_bundle=pretrained)
    for job, result in zip(jobs, stacked, strict=True):
        alone = train_member(config, job.data, job.seed, train_config=tc, init_bundle=pretrained)
        # looser than from scratch: the latent layer's bias has no gradient but rounding (batch norm
        # follows it), and Adam turns that noise into steps of the learning rate
        np.testing.assert_allclose(
            [r.val_loss for r in result.history], [r.val_loss for r in alone.history], rtol=1e-3
        )
        for name, value in pretrained.model.decoder.named_parameters():  # no reconstruction loss
            torch.testing.assert_close(result.bundle.model.decoder.get_parameter(name), value, rtol=0, atol=0)


def test_a_stacked_member_resumes_bit_identically_in_other_company():
    config = tiny_config("deepz")  # dropout on: each member draws from its own stream
    tile = learnable_tile(200, seed=10)
    tc = TrainConfig(epochs=3, batch_size=50, patience=None)
    states: dict[int, list] = {1: [], 2: [], 3: []}
    # a deep copy, as saving it would be: the optimizer's state_dict holds its live tensors
    jobs = [
        MemberJob(tile, s, callback=lambda r, s=s: states[s].append(copy.deepcopy(r.state()))) for s in states
    ]
    whole = train_stacked(config, jobs, train_config=tc)
    resumed = train_stacked(  # after epoch 1, member 2 alone and members 1 and 3 side by side
        config, [MemberJob(tile, 2, resume=states[2][0])], train_config=tc
    ) + train_stacked(config, [MemberJob(tile, s, resume=states[s][0]) for s in (1, 3)], train_config=tc)
    for before, after in zip([whole[1], whole[0], whole[2]], resumed, strict=True):
        assert [r.val_loss for r in after.history] == [r.val_loss for r in before.history]
        for name, value in before.bundle.model.state_dict().items():
            assert torch.equal(after.bundle.model.state_dict()[name], value), name


def test_a_stopped_member_does_not_move_while_the_others_train():
    config = tiny_config("deepz")  # dropout on
    tile = learnable_tile(200, seed=7)
    tc = TrainConfig(epochs=3, batch_size=50, patience=None)
    stopped = []

    def stop(report):  # keeps the loop's own state(), to read it again once the others are done
        stopped.append((report.state(), report.state))
        return True

    jobs = [MemberJob(tile, 1), MemberJob(tile, 2, callback=stop), MemberJob(tile, 3)]
    assert [len(r.history) for r in train_stacked(config, jobs, train_config=tc)] == [3, 1, 3]
    then, state = stopped[0]
    now = state()
    for name, value in then["model"].items():
        torch.testing.assert_close(now["model"][name], value, rtol=0, atol=0)
    for key, value in then["optimizer"]["state"].items():
        for part in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(now["optimizer"]["state"][key][part], value[part], rtol=0, atol=0)


def test_vmapped_members_equal_the_member_loop():
    config = tiny_config("gaznet_c9", dropout=0.0)  # no convolutions: stacked through vmap
    tile = learnable_tile(120, seed=8)
    jobs = [MemberJob(tile.take(np.arange(0, 120)), 1), MemberJob(tile.take(np.arange(0, 100)), 2)]
    tc = TrainConfig(epochs=2, batch_size=32, patience=None)
    for job, result in zip(jobs, train_stacked(config, jobs, train_config=tc), strict=True):
        alone = train_member(config, job.data, job.seed, train_config=tc)
        np.testing.assert_allclose(
            [r.val_loss for r in result.history], [r.val_loss for r in alone.history], rtol=1e-4
        )


def test_dropout_drops_each_activation_with_its_probability():
    n, p = 100_000, 0.02
    dropped = _dropped(n, p, [torch.Generator().manual_seed(s) for s in range(3)])
    assert len(torch.unique(dropped)) == len(dropped) and 0 <= dropped.min() and dropped.max() < 3 * n
    for member in range(3):
        share = ((dropped >= member * n) & (dropped < (member + 1) * n)).sum().item() / n
        assert abs(share - p) < 5 * np.sqrt(p * (1 - p) / n)
    assert len(_dropped(10, 0.5, [torch.Generator()])) <= 10


def test_stacked_prediction_equals_the_member_loop():
    config = tiny_config("deepz")
    tile = learnable_tile(120, seed=6)
    members = [
        train_member(config, tile, s, train_config=TrainConfig(epochs=1, batch_size=32)).bundle
        for s in (1, 2, 3)
    ]
    predictor = EnsemblePredictor(members)
    assert [g for g, stacked in predictor._groups if stacked is not None] == [[0, 1, 2]]
    stacked = predictor(tile)
    singles = [EnsemblePredictor([b])(tile) for b in members]
    for k, column in enumerate(("pdf_weights", "pdf_means", "pdf_sigmas")):
        loop = np.concatenate([s[column] for s in singles], axis=1) / (3 if k == 0 else 1)
        np.testing.assert_allclose(stacked[column], loop, rtol=1e-5, atol=1e-6)


def test_only_models_without_convolutions_are_stacked():
    assert stackable(tiny_config("deepz"), "cuda", training=True)
    assert stackable(tiny_config("gaznet_c9"), "cuda", training=True)
    assert not stackable(tiny_config("gaznet_1"), "cuda", training=True)
    assert stack_members([torch.nn.Linear(2, 2)]) == [([0], None)]


def test_one_rule_for_training_and_prediction():
    deepz = tiny_config("deepz")
    assert stackable(deepz, "cpu", training=True)  # batched products beat the member loop on a CPU
    assert not stackable(tiny_config("gaznet_c9"), "cpu", training=True)  # vmap does not
    assert stackable(deepz, "cpu", training=False) and stackable(deepz, "cuda", training=False)
    assert not stackable(tiny_config("deepz", classify=True), "cpu", training=False)
    assert not stackable(tiny_config("gaznet_c9"), "cpu", training=False)  # only DEEPZ layers fold
