"""The Dask pipeline on real clusters: equality with the local predictor, resume, failures."""

from __future__ import annotations

import argparse
import builtins
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster

from distributed_pz.catalog import from_arrow, read_catalog
from distributed_pz.cli import main
from distributed_pz.infer import cli
from distributed_pz.infer.cluster import connect
from distributed_pz.infer.local import predict_tile_local
from distributed_pz.infer.manifest import FAILURES, RUN_MANIFEST, STAGING, ManifestError
from distributed_pz.infer.stream import TileFailed, predict_store
from distributed_pz.models.calibration import Calibration
from distributed_pz.models.ensemble import ENSEMBLE_FILE, EnsembleDir
from distributed_pz.models.locus import StellarLocus, correct_photometry
from distributed_pz.models.predictor import EnsemblePredictor, PredictOptions
from distributed_pz.options import add_options
from distributed_pz.survey.store.store import open_store
from tests.fixtures import fresh_members, make_tile_arrays, save_ensemble, star_magnitudes, write_store

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

N_ROWS = 640  # five tasks of 128 rows per tile
WIDE = Calibration((), (0.0,), (2.0,), (0.01,), "test", 100)
BAD_SHARD = 3  # rows 384-511; its first chunk is chunk 6 (rows 384-447)


@pytest.fixture(scope="module")
def client():
    with connect("local", workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    save_ensemble(root / "ensemble", fresh_members("deepz", seeds=(1, 2)))
    tiles = write_store(str(root / "store"), n_tiles=3, n_rows=N_ROWS)
    predictor = EnsemblePredictor.from_ensemble(EnsembleDir(str(root / "ensemble")).read(device="cpu"))
    reference = {t: predict_tile_local(str(root / "store"), t, predictor) for t in tiles}
    return root, tiles, reference


def assert_same_catalogue(columns: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert columns.keys() == expected.keys()
    assert np.array_equal(columns["object_id"], expected["object_id"])
    for name, value in expected.items():
        assert np.allclose(columns[name], value, rtol=1e-6, atol=1e-7, equal_nan=True), name


def read_parquet(path) -> dict[str, np.ndarray]:
    return from_arrow(pq.read_table(path))


def corrupt(store, tile: str) -> tuple[os.PathLike, bytes]:
    shard = store / tile / "object_id" / "c" / str(BAD_SHARD)
    good = shard.read_bytes()
    shard.write_bytes(good[:10] + os.urandom(100) + good[110:])
    return shard, good


def test_pipeline_catalogue_equals_local_prediction(client, world, tmp_path):
    root, tiles, reference = world
    out = tmp_path / "out"
    summary = predict_store(  # three overlapped steps of at most 48 rows per 128-row task
        client,
        str(root / "store"),
        str(root / "ensemble"),
        str(out),
        rows_per_task=128,
        options=PredictOptions(batch_size=48),
        progress=False,
    )
    assert sorted(summary.committed) == tiles and summary.rows_predicted == 3 * N_ROWS and not summary.failed
    for tile in tiles:
        assert_same_catalogue(read_parquet(out / f"{tile}.parquet"), reference[tile])
    manifest = json.loads((out / RUN_MANIFEST).read_text())
    assert sorted(manifest["tiles"]) == tiles and manifest["in_progress"] == {}
    assert list((out / STAGING).iterdir()) == []
    again = predict_store(client, str(root / "store"), str(root / "ensemble"), str(out), progress=False)
    assert again.already_done == tiles and again.rows_predicted == 0


def test_fits_catalogue(client, world, tmp_path):
    root, _, reference = world
    predict_store(
        client,
        str(root / "store"),
        str(root / "ensemble"),
        str(tmp_path),
        tiles=["T0"],
        fmt="fits",
        progress=False,
    )
    table = read_catalog(tmp_path / "T0.fits")
    assert_same_catalogue(table.columns, reference["T0"])
    assert table.meta["tile"] == "T0" and len(table.meta["bundle"]) == 64  # FITS keywords TILE, BUNDLE


def test_interrupted_run_resumes_without_duplicates(client, world, tmp_path):
    root, tiles, reference = world
    store = tmp_path / "store"
    shutil.copytree(root / "store", store)
    shard, good = corrupt(store, "T1")
    out = tmp_path / "out"
    args = (client, str(store), str(root / "ensemble"), str(out))
    with pytest.raises(TileFailed, match=r"tile 'T1', array 'object_id', chunk 6 \(rows 384-447\)"):
        predict_store(*args, rows_per_task=128, max_in_flight=1, progress=False)
    manifest = json.loads((out / RUN_MANIFEST).read_text())
    assert list(manifest["tiles"]) == ["T0"] and len(manifest["in_progress"]["T1"]["blocks"]) == 5
    assert len(list((out / STAGING / "T1").glob("part-*.parquet"))) == BAD_SHARD
    assert not (out / "T1.parquet").exists()
    shard.write_bytes(good)
    resumed = predict_store(*args, rows_per_task=256, progress=False)  # the recorded blocks win
    assert resumed.already_done == ["T0"] and resumed.committed == ["T1", "T2"]
    assert resumed.parts_reused == BAD_SHARD and resumed.rows_predicted == N_ROWS - 128 * BAD_SHARD + N_ROWS
    for tile in tiles:
        columns = read_parquet(out / f"{tile}.parquet")
        assert len(np.unique(columns["object_id"])) == N_ROWS
        assert_same_catalogue(columns, reference[tile])
    assert json.loads((out / FAILURES).read_text()) == {}


def test_skip_records_the_bad_tile_and_finishes_the_others(client, world, tmp_path):
    root, _, _ = world
    store = tmp_path / "store"
    shutil.copytree(root / "store", store)
    corrupt(store, "T1")
    out = tmp_path / "out"
    summary = predict_store(
        client, str(store), str(root / "ensemble"), str(out), on_error="skip", progress=False
    )
    assert sorted(summary.committed) == ["T0", "T2"] and list(summary.failed) == ["T1"]
    failures = json.loads((out / FAILURES).read_text())
    assert "tile 'T1', array 'object_id', chunk 6 (rows 384-447): unreadable chunk" in failures["T1"]["error"]
    assert not (out / "T1.parquet").exists()


def _dask(*args: str, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT)


def test_against_a_separately_started_scheduler_and_worker(world, tmp_path):
    root, _, reference = world
    scheduler_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "dask.log", "wb")
    common = ["--scheduler-file", str(scheduler_file)]
    processes = [_dask("scheduler", *common, "--host", "127.0.0.1", "--no-dashboard", log=log)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        processes.append(
            _dask("worker", *common, "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", log=log)
        )
        with Client(scheduler_file=str(scheduler_file), timeout="30s") as c:
            c.wait_for_workers(1, timeout=60)
        parser = argparse.ArgumentParser()
        add_options(parser, cli.OPTIONS)
        argv = [
            "--store",
            str(root / "store"),
            "--bundle",
            str(root / "ensemble"),
            "--out",
            str(tmp_path / "out"),
        ]
        argv += ["--scheduler-file", str(scheduler_file), "--tile", "T2", "--quiet"]
        assert cli.run(parser.parse_args(argv)) == 0
        assert_same_catalogue(read_parquet(tmp_path / "out" / "T2.parquet"), reference["T2"])
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def test_the_ensemble_manifest_is_parsed_once_on_the_client_and_once_per_worker(world, tmp_path, monkeypatch):
    """``dpz predict`` reads ``ensemble.json`` once on the client (bands, hash, calibration checked before
    the cluster is used) and once on each worker (the plugin), however many tiles and tasks."""
    root, tiles, _ = world
    opened = []
    path_open, builtin_open = pathlib.Path.open, builtins.open

    def counting_path_open(self, *args, **kwargs):
        opened.extend([self] if self.name == ENSEMBLE_FILE else [])
        return path_open(self, *args, **kwargs)

    def counting_open(file, *args, **kwargs):
        opened.extend([file] if str(file).endswith(ENSEMBLE_FILE) else [])
        return builtin_open(file, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", counting_path_open)
    monkeypatch.setattr(builtins, "open", counting_open)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        argv = ["predict", "--store", str(root / "store"), "--bundle", str(root / "ensemble")]
        argv += ["--out", str(tmp_path / "out"), "--scheduler", cluster.scheduler_address, "--quiet"]
        assert main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.parquet")) == [f"{t}.parquet" for t in tiles]
    assert len(opened) == 1 + 2


def test_homogenised_tiles_are_predicted_at_the_training_tiles_zero_points(client, tmp_path):
    offsets = np.linspace(-0.04, 0.04, 9)
    store = str(tmp_path / "store")
    open_store(store, "a")
    for name, seed, shift in (("REF", 0, None), ("OFF", 1, offsets)):
        arrays, attrs = make_tile_arrays(600, seed=seed)
        arrays["object_id"] += 10_000 * seed
        stars = np.arange(600) < 300
        arrays["class"][:] = np.where(stars, 1, 0)
        arrays["mag"][stars] = star_magnitudes(300, seed, shift)
        arrays["mag_err"][stars] = 0.01
        open_store(store, "a").write_tile(name, arrays, attrs, chunk_rows=64, shard_rows=128)
    ref = open_store(store).tile("REF")
    ref_stars = ref.read(["mag", "mag_err"])
    locus = StellarLocus.fit(ref_stars["mag"][:300], ref_stars["mag_err"][:300], ref.bands)
    members = fresh_members("gaznet_c9", seeds=(1, 2))
    save_ensemble(tmp_path / "ens", members, locus=locus)

    summary = predict_store(
        client,
        store,
        str(tmp_path / "ens"),
        str(tmp_path / "out"),
        tiles=["OFF"],
        homogenise=True,
        progress=False,
    )
    assert summary.committed == ["OFF"]
    catalogue = read_catalog(tmp_path / "out" / "OFF.parquet")
    found = np.array([catalogue.meta["zeropoint_offsets"][b] for b in ref.bands])
    np.testing.assert_allclose(found, offsets - offsets.mean(), atol=0.01)  # ±0.04 mag found to < 0.01
    tile = open_store(store).tile("OFF")
    predictor = EnsemblePredictor(members, device="cpu")
    rows = tile.read_rows(predictor.input_arrays(tile.array_names()))
    corrected = dataclasses.replace(
        rows, arrays=correct_photometry(rows.arrays, catalogue.meta["zeropoint_offsets"], rows.bands)
    )
    np.testing.assert_allclose(
        catalogue.columns["z_phot"], predictor.predict_chunk(corrected)["z_phot"], rtol=1e-5
    )
    save_ensemble(tmp_path / "ens-plain", members)
    with pytest.raises(ValueError, match="no stellar locus"):
        predict_store(client, store, str(tmp_path / "ens-plain"), str(tmp_path / "o2"), homogenise=True)


def test_a_run_refuses_to_resume_with_another_calibration(client, world, tmp_path):
    """The calibration is in the ensemble hash, so in the run's identity: a recalibrated ensemble
    cannot add tiles to a run folder predicted with the old calibration."""
    root, tiles, _ = world
    members = fresh_members("deepz", seeds=(1, 2))
    for name, calibration in (
        ("narrow", Calibration((), (0.0,), (0.5,), (0.0,), "test", 100)),
        ("wide", WIDE),
    ):
        save_ensemble(tmp_path / name, members, calibration)
    out = str(tmp_path / "out")
    predict_store(client, str(root / "store"), str(tmp_path / "narrow"), out, tiles=tiles[:1], progress=False)
    with pytest.raises(ManifestError, match="bundle_hash"):
        predict_store(
            client, str(root / "store"), str(tmp_path / "wide"), out, tiles=tiles[1:], progress=False
        )
    assert read_catalog(f"{out}/{tiles[0]}.parquet").meta["calibration_hash"] != WIDE.content_hash
