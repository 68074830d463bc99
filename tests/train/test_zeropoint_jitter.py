"""A model trained with zero-point jitter transfers to a tile whose zero points differ; a plain one is biased."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.train.member import TrainConfig, train_member
from tests.fixtures import learnable_tile, tiny_config

torch.set_num_threads(1)
pytestmark = pytest.mark.slow

OFFSET_MAG = np.where(np.arange(9) % 2 == 0, 0.05, -0.05).astype(np.float32)
"""The unseen tile's zero points: 0.05 mag off in every band, alternately up and down."""


@pytest.fixture(scope="module")
def tiles():
    unseen = learnable_tile(1500, seed=1)
    arrays = dict(unseen.arrays)
    scale = (10 ** (-0.4 * OFFSET_MAG))[None, :, None]
    arrays.update(mag=arrays["mag"] + OFFSET_MAG, flux_exp=arrays["flux_exp"] * scale)
    arrays["flux_exp_err"] = arrays["flux_exp_err"] * scale
    return learnable_tile(3000, seed=0), dataclasses.replace(unseen, arrays=arrays)


def _errors(name: str, jitter: float, train, unseen) -> np.ndarray:
    config = TrainConfig(epochs=15, batch_size=64, patience=None, zeropoint_jitter=jitter)
    bundle = train_member(tiny_config(name), train, seed=1, train_config=config).bundle
    z = unseen.arrays["z_spec"]
    return (EnsemblePredictor(bundle, device="cpu")(unseen)["z_phot"] - z) / (1 + z)


def _nmad(dz: np.ndarray) -> float:
    return float(1.4826 * np.nanmedian(np.abs(dz - np.nanmedian(dz))))


def test_jitter_removes_the_bias_of_a_catalogue_model_on_another_tile(tiles):
    # the default band-set scatter is 0.01 mag; 5x covers the unseen tile's 0.05 mag offsets
    plain, jittered = (_errors("gaznet_c9", jitter, *tiles) for jitter in (0.0, 5.0))
    assert abs(np.nanmedian(jittered)) < 0.5 * abs(np.nanmedian(plain))
    assert _nmad(jittered) < _nmad(plain)


def test_jitter_narrows_the_exposure_model_s_errors_on_another_tile(tiles):
    plain, jittered = (_errors("deepz", jitter, *tiles) for jitter in (0.0, 5.0))
    assert _nmad(jittered) < _nmad(plain)
