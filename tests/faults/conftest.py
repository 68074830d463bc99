"""Fixtures of the fault suite: one small store, tiny real ensembles, reference catalogues, one cluster.

Every fault test compares what a faulty run wrote with what an uninterrupted run writes: the
reference is the local, no-cluster prediction of each tile (``predict_tile_local``), which the
Dask pipeline matches to float precision. Stores are copied before a test damages them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from distributed_pz.catalog import from_arrow
from distributed_pz.infer.cluster import connect
from distributed_pz.infer.local import predict_tile_local
from distributed_pz.models.bundle import save_bundle
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.survey.store.store import open_store
from distributed_pz.train.plan import make_plan

from ..fixtures import fresh_members, make_tile_arrays

N_ROWS = 2000
CHUNK_ROWS = 128
SHARD_ROWS = 256
TILES = ("T0", "T1", "T2")
"""T0, T1 hold per-exposure fluxes (DEEPZ reads ``flux_exp``); T2 has none (DEEPZ reads ``mag``)."""
REPO = Path(__file__).resolve().parents[2]


def tile_arrays(index: int, n_rows: int = N_ROWS, seed: int | None = None) -> tuple[dict, dict]:
    """Arrays and attributes of tile ``index``: ids unique across tiles, no cutouts."""
    arrays, attrs = make_tile_arrays(n_rows, seed=index if seed is None else seed)
    arrays["object_id"] = arrays["object_id"] + 1_000_000 * index
    del arrays["cutout"]
    if index == 2:
        del arrays["flux_exp"], arrays["flux_exp_err"]
    return arrays, attrs


def write_tiles(url: str, tiles=TILES) -> str:
    store = open_store(url, "a")
    for index, name in enumerate(tiles):
        arrays, attrs = tile_arrays(index)
        store.write_tile(name, arrays, attrs, chunk_rows=CHUNK_ROWS, shard_rows=SHARD_ROWS)
    return url


def sdss_store(folder: Path, bands=("u", "g", "r", "i", "z")) -> str:
    """``FOLDER/sdss.zarr``: one 300-row tile ``S0`` of band set ``sdss`` with ``bands``."""
    arrays, attrs = tile_arrays(2, n_rows=300)
    if len(bands) != len(attrs["bands"]):
        arrays = {k: v[:, : len(bands)] if k.startswith("mag") else v for k, v in arrays.items()}
    attrs = {**attrs, "band_set": "sdss", "bands": list(bands), "zeropoint": dict.fromkeys(bands, 22.5)}
    url = str(folder / "sdss.zarr")
    open_store(url, "a").write_tile("S0", arrays, attrs, chunk_rows=64, shard_rows=128)
    return url


def write_ensemble(
    root: Path, band_set: str | None = None, model: str = "deepz", calibration=None, **overrides
) -> Path:
    """Two tiny ``model`` members (real weights; ``overrides`` of their config) as a 1 × 2
    ensemble; ``band_set`` and ``calibration`` recorded if given."""
    bundles = fresh_members(model, seeds=(1, 2), **overrides)
    plan = make_plan(np.arange(20), n_splits=1, n_folds=2, seed=3)
    plan.save(root)
    for spec, bundle in zip(plan.members, bundles, strict=True):
        save_bundle(EnsembleDir(root).member(spec.member_id), bundle)
    store = {"url": "test", "hash": "test", **({"band_set": band_set} if band_set else {})}
    entry = EnsembleDir(root).save_calibration(calibration) if calibration else None
    EnsembleDir(root).write_manifest(plan, {"model": model}, store, calibration=entry)
    return root


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict:
    """``store``, ``ensemble`` (training band set recorded), ``legacy`` (none recorded), ``reference``."""
    root = tmp_path_factory.mktemp("faults")
    store = write_tiles(str(root / "store.zarr"))
    ensemble = write_ensemble(root / "ensemble", band_set="kids_viking")
    legacy = write_ensemble(root / "legacy")
    predictor = EnsemblePredictor.from_ensemble(EnsembleDir(str(ensemble)).read(device="cpu"))
    reference = {t: predict_tile_local(store, t, predictor) for t in TILES}
    return {
        "root": root,
        "store": Path(store),
        "ensemble": ensemble,
        "legacy": legacy,
        "predictor": predictor,
        "reference": reference,
    }


@pytest.fixture(scope="session")
def client():
    """One local Dask cluster (2 single-threaded workers) shared by the in-process runs."""
    with connect("local", workers=2) as c:
        yield c


@pytest.fixture
def store_copy(world, tmp_path) -> Path:
    """A private copy of the world's store, free to damage."""
    path = tmp_path / "store.zarr"
    shutil.copytree(world["store"], path)
    return path


def read_parquet(path: Path) -> dict[str, np.ndarray]:
    return from_arrow(pq.read_table(path))


def assert_same_rows(columns: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    """Same rows as the reference: every ``object_id`` once, in order, every column equal."""
    assert len(np.unique(columns["object_id"])) == len(columns["object_id"]) == len(expected["object_id"])
    assert np.array_equal(columns["object_id"], expected["object_id"])
    for name, value in expected.items():
        assert np.allclose(columns[name], value, rtol=1e-5, atol=1e-6, equal_nan=True), name


def assert_catalogues(out: Path, reference: dict, tiles=TILES) -> None:
    for tile in tiles:
        assert_same_rows(read_parquet(out / f"{tile}.parquet"), reference[tile])


def shard(store: Path, tile: str, array: str, index: int) -> Path:
    """Path of shard ``index`` (along the rows) of ``array``."""
    arr = open_store(str(store)).tile(tile).array(array)
    return store / tile / array / arr.metadata.encode_chunk_key((index,) + (0,) * (arr.ndim - 1))


def overwrite_middle(path: Path, n: int = 64) -> None:
    """Overwrite ``n`` bytes in the middle of a file with other bytes."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + n] = bytes(255 - b for b in data[middle : middle + n])
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


DPZ_AT_A_TERMINAL = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from distributed_pz.cli import main; sys.exit(main(sys.argv[1:]))"
)
"""``dpz`` as a terminal starts it: Ctrl-C raises, even when the tests run from a shell's background
job, whose commands inherit SIGINT ignored."""


def dpz(*args: str, **popen) -> subprocess.Popen:
    """``dpz ARGS`` in a new process group (this worktree's package), stdout and stderr piped."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", DPZ_AT_A_TERMINAL, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
        **popen,
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def run_until(process: subprocess.Popen, condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Let ``process``'s group run in slices of 10 ms, stopped between them, until ``condition()``
    holds, checked while nothing runs; it returns with the group stopped (:func:`interrupt` resumes
    it). However fast the run, it is caught in the middle, not after its end."""
    os.killpg(process.pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the run ended or {timeout} s passed before {what}")
        os.killpg(process.pid, signal.SIGCONT)
        time.sleep(0.01)
        os.killpg(process.pid, signal.SIGSTOP)


def interrupt(process: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    """Ctrl-C the whole process group (as a terminal does), resumed if :func:`run_until` stopped
    it; returns rc, stdout, stderr."""
    os.killpg(process.pid, signal.SIGINT)
    os.killpg(process.pid, signal.SIGCONT)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err
