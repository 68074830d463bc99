"""RELIABILITY.md F5, F6, F18-F20, B13: ``dpz train`` under faults and on damaged stores.

Damaged stores are refused in one line before Ray starts (no worker retries a deterministic
error). A killed Ray Train worker and a Ctrl-C both leave an ensemble that, once the same
command is rerun, is bit-identical to the uninterrupted one: same content hash, same OOF.
"""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pyarrow.parquet as pq
import pytest

from distributed_pz.cli import main
from distributed_pz.models.ensemble import ENSEMBLE_FILE, EnsembleDir
from distributed_pz.train.sample import select_sample

from .conftest import dpz, interrupt, overwrite_middle, shard, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.slow]

TINY = ("--model-set", "hidden=16", "--model-set", "n_layers=2", "--model-set", "latent=4")


def _train_args(store, out, epochs: int, *extra: str) -> list[str]:
    return [
        "train", "--store", str(store), "--tile", "T2", "--out", str(out), "--model", "deepz", *TINY,
        "--splits", "1", "--folds", "2", "--epochs", str(epochs), "--batch-size", "256",
        "--patience", "0", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("row", ["F18", "F19", "F20"])
def test_a_damaged_training_store_is_refused_before_ray_starts(row, store_copy, tmp_path, capsys):
    ray = pytest.importorskip("ray")
    if row == "F18":
        meta = store_copy / "T2" / "zarr.json"
        doc = json.loads(meta.read_text())
        doc["attributes"]["complete"] = False
        meta.write_text(json.dumps(doc))
        expected = f"dpz train: store '{store_copy}', tile 'T2': tile is not complete"
    elif row == "F19":
        shard(store_copy, "T2", "object_id", 0).unlink()
        expected = f"dpz train: store '{store_copy}', tile 'T2', array 'object_id', chunk 0 (rows 0-255): shard 'c/0'"
    else:
        overwrite_middle(shard(store_copy, "T2", "mag", 4))
        expected = f"dpz train: store '{store_copy}', tile 'T2', array 'mag', chunk "
    rc = main(_train_args(store_copy, tmp_path / "ens", 1))
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 2 and len(out) == 1 and out[0].startswith(expected), out
    assert not ray.is_initialized()


def test_b13_rows_without_a_usable_spec_z_stay_out_of_the_sample(tmp_path):
    from distributed_pz.survey.store.store import open_store

    from .conftest import tile_arrays

    arrays, attrs = tile_arrays(2, n_rows=300)
    arrays["z_spec"][:10] = np.nan
    arrays["z_spec"][10:20] = -1.0
    open_store(str(tmp_path / "z.zarr"), "a").write_tile("Z", arrays, attrs, chunk_rows=64, shard_rows=128)
    sample = select_sample(str(tmp_path / "z.zarr"))
    assert sample.n_rows == 280 and np.all(sample.row >= 20) and np.all(sample.z_spec >= 0)


@pytest.mark.distributed
def test_f5_f6_killed_worker_then_ctrl_c_then_rerun_is_bit_identical(world, tmp_path):
    pytest.importorskip("ray")
    epochs = 40
    reference = dpz(*_train_args(world["store"], tmp_path / "reference", epochs))  # runs alongside
    out = tmp_path / "faulty"
    run = dpz(*_train_args(world["store"], out, epochs))
    killed: dict[str, int] = {}

    def a_member_is_training() -> bool:
        try:
            members = json.loads((out / EnsembleDir.status_file).read_text())["members"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return run.poll() is not None
        for name, member in members.items():
            if member["state"] == "running" and 2 <= member["epoch"] < epochs - 10:
                os.kill(member["pid"], signal.SIGKILL)  # F5: kill -9 one RayTrainWorker
                killed[name] = member["epoch"]
                return True
        return run.poll() is not None

    wait_for(a_member_is_training, 240, "a member in training")
    assert killed, "the run ended before a member could be killed"
    wait_for(
        lambda: (
            json.loads((out / EnsembleDir.status_file).read_text()).get("worker_failures", 0) >= 1
            or run.poll() is not None
        ),
        120,
        "Ray Train to notice the dead worker",
    )
    rc, _, err = interrupt(run, timeout=120)  # F6: Ctrl-C while the worker group restarts
    assert rc == 130, err
    assert err.strip().splitlines()[-1] == (
        "dpz train: interrupted; what was finished is kept, rerun the same command to resume"
    )
    rerun = dpz(*_train_args(world["store"], out, epochs))
    for process in (rerun, reference):
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    hashes = [
        json.loads((d / ENSEMBLE_FILE).read_text())["content_hash"] for d in (tmp_path / "reference", out)
    ]
    assert hashes[0] == hashes[1]
    oof = [pq.read_table(d / EnsembleDir.oof_catalog).to_pydict() for d in (tmp_path / "reference", out)]
    assert oof[0] == oof[1] and len(set(oof[0]["object_id"])) == len(oof[0]["object_id"])
    assert set(oof[0]["tile"]) == {"T2"}  # each row names its tile
    (name,) = killed
    record = EnsembleDir(out).read().members[name].metadata
    assert 0 < record["resumed_from_epoch"] and record["epochs_run"] == epochs
