"""Benchmark data shared by the scripts: the simulated tile and paper-size bundles, made once.

Kept under a work directory between runs, so a rerun measures rather than re-simulates.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import argument_parser
from distributed_pz.models import create_model
from distributed_pz.models.bundle import make_bundle, save_bundle
from distributed_pz.models.inputs import batch_tensors, fit_feature_stats
from distributed_pz.survey.sim.simulate import SimulationConfig
from distributed_pz.survey.sim.simulate_cli import write_simulated_tile
from distributed_pz.survey.store.store import open_store
from distributed_pz.survey.store.tiles import TileArrays

TILE = "SIM_0000"
"""The benchmark tile's name."""
WORK = "dpz_bench_suite"
"""The suite's work folder (under the system temporary folder): its tiles and bundles."""


def suite_parser(doc: str, *names: str, **shared: Any) -> argparse.ArgumentParser:
    """The parser of the suite's scripts (bounds, inference, training), which share one tile cache.

    :func:`~benchmarks.harness.argument_parser` with ``--work`` (default :data:`WORK`) and
    ``--device``, then ``names`` and ``shared``.
    """
    return argument_parser(doc, "device", *names, work=WORK, **shared)


def work_paths(work: str | Path, n: int) -> tuple[str, Path]:
    """Store URL and bundle directory of an ``n``-source benchmark tile under ``work``."""
    root = Path(work) / f"n{n}"
    return str(root / "store"), root / "bundles"


def ensure_store(url: str, n: int) -> None:
    """Simulate the benchmark tile once (kept between runs)."""
    store = open_store(url, "a")
    if TILE in store.tile_names() and store.tile(TILE).complete and store.tile(TILE).n_rows == n:
        return
    write_simulated_tile(store, SimulationConfig(n_sources=n, seed=0, tile=TILE), progress=True)


def ensure_bundle(root: Path, model_name: str, store_url: str) -> str:
    """A freshly initialised, paper-size model with feature statistics fitted on the tile."""
    path = root / model_name
    if not path.exists():
        tile = open_store(store_url).tile(TILE)
        torch.manual_seed(0)
        model = create_model(model_name)
        rows = TileArrays.from_attrs(
            tile.read(["mag", "cutout", "flux_exp", "flux_exp_err"], 0, 4096), tile.attrs
        )
        stats = fit_feature_stats(model.input_spec, batch_tensors(rows, model.input_spec))
        save_bundle(path, make_bundle(model, stats, rows.bands, rows.image_bands))
    return str(path)
