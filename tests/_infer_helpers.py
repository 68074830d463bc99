"""Shared pieces of the inference tests: tiny bundles, ensembles on disk, small stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from distributed_pz.models.bundle import Bundle, make_bundle, save_bundle
from distributed_pz.models.ensemble import member_dir, write_manifest
from distributed_pz.models.inputs import batch_tensors, fit_feature_stats
from distributed_pz.models.registry import build_model
from distributed_pz.survey.store import open_store
from distributed_pz.survey.tiles import TileArrays
from distributed_pz.train.member import TrainConfig, train_member
from distributed_pz.train.plan import make_plan

from ._synthetic import learnable_tile, tiny_config
from .conftest import make_tile_arrays


def trained_members(name: str, seeds: tuple[int, ...], rows: int = 200) -> list[Bundle]:
    """Tiny members trained for one epoch with the model zoo's ``train_member``."""
    tile = learnable_tile(rows, seed=0)
    config = tiny_config(name)
    train = TrainConfig(epochs=1, batch_size=64)
    return [train_member(config, tile, seed, train_config=train).bundle for seed in seeds]


def fresh_members(name: str, seeds: tuple[int, ...], rows: int = 200) -> list[Bundle]:
    """Tiny freshly initialised members (real weights, feature statistics fitted on a tile)."""
    tile = learnable_tile(rows, seed=0)
    members = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = build_model(tiny_config(name))
        stats = fit_feature_stats(model.input_spec, batch_tensors(tile, model.input_spec))
        members.append(make_bundle(model, stats, tile.bands, tile.image_bands))
    return members


def save_ensemble(root: Path, bundles: list[Bundle]) -> str:
    """Write ``bundles`` as an ensemble directory (one split, ``len(bundles)`` folds); returns its hash."""
    plan = make_plan(np.arange(10 * len(bundles)), n_splits=1, n_folds=len(bundles), seed=3)
    plan.save(root)
    for spec, bundle in zip(plan.members, bundles, strict=True):
        save_bundle(member_dir(root, spec.member_id), bundle)
    return write_manifest(root, plan, {"model": bundles[0].model_name}, {"url": "test", "hash": "test"})


def write_store(
    url: str, n_tiles: int, n_rows: int, chunk_rows: int = 64, shard_rows: int = 128
) -> list[str]:
    """A store of ``n_tiles`` schema-valid tiles ``T0, T1, ...`` with distinct object ids."""
    store = open_store(url, "a")
    names = []
    for i in range(n_tiles):
        arrays, attrs = make_tile_arrays(n_rows, seed=i)
        arrays["object_id"] = arrays["object_id"] + 100_000 * i
        store.write_tile(f"T{i}", arrays, attrs, chunk_rows=chunk_rows, shard_rows=shard_rows)
        names.append(f"T{i}")
    return names


def with_ids(tile: TileArrays) -> TileArrays:
    """A :func:`learnable_tile` with the passthrough columns a catalogue needs."""
    n = tile.n_rows
    arrays = {**tile.arrays, "object_id": np.arange(n, dtype=np.int64), "ra": np.zeros(n), "dec": np.zeros(n)}
    return TileArrays(arrays, tile.bands, tile.image_bands, tile.zeropoints)
