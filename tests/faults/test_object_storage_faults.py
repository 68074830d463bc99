"""RELIABILITY-NEW-SURFACES.md O3, O5: ``dpz predict --out s3://…`` (moto's S3 server on 127.0.0.1).

Object storage has no lock, so two runs on one ``--out`` URL can overlap (O5): the loser's error
is one line naming the likely cause, and the next run clears what it left (a failure of a tile
done since, orphan part files). O1 (a remote ensemble keeps its calibration) is in
``tests/test_object_storage.py``.
"""

from __future__ import annotations

import json
import threading

import pytest

from distributed_pz.infer.cluster import connect
from distributed_pz.infer.manifest import FAILURES, STAGING
from distributed_pz.infer.stream import TileFailed, predict_store

from .conftest import CHUNK_ROWS, assert_same_rows, dpz, from_arrow, interrupt, run_until, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.distributed, pytest.mark.slow]

pq = pytest.importorskip("pyarrow.parquet")


def _catalogue(fs, url: str) -> dict:
    with fs.open(url, "rb") as handle:
        return from_arrow(pq.read_table(handle))


def _failures(fs, out: str) -> dict:
    fs.invalidate_cache()  # other processes wrote since this one listed
    return json.loads(fs.cat_file(f"{out}/{FAILURES}")) if fs.exists(f"{out}/{FAILURES}") else {}


def _staged(fs, out: str) -> list[str]:
    fs.invalidate_cache()
    return fs.find(f"{out}/{STAGING}")


def test_o5_a_vanished_part_is_one_line_naming_the_likely_cause_and_the_next_run_clears_it(
    bucket, world, tmp_path
):
    fs, root = bucket
    out = f"{root}/run"
    args = (str(world["store"]), str(world["ensemble"]), out)
    with connect("local", workers=1) as client:  # its worker starts with the S3 environment set
        removed: list[str] = []

        def overlapping_run_removes_a_part():  # as the winner of two runs does when it commits
            wait_for(lambda: bool(_staged(fs, out)), 120, "a part file")
            removed.append(_staged(fs, out)[0])
            fs.rm(removed[0])

        other = threading.Thread(target=overlapping_run_removes_a_part)
        other.start()
        with pytest.raises(TileFailed) as caught:
            predict_store(
                client, *args, tiles=["T2"], rows_per_task=CHUNK_ROWS, max_in_flight=1, progress=False
            )
        other.join()
        reason = str(caught.value)
        assert removed and "\n" not in reason
        assert reason.startswith("tile 'T2': a part file vanished before the commit (")
        assert reason.endswith("is another dpz predict writing to this --out? (object storage has no lock: "
                               "run one at a time, then rerun to finish)")  # fmt: skip
        assert _failures(fs, out).keys() == {"T2"}

        summary = predict_store(client, *args, tiles=["T2"], progress=False)
        assert summary.committed == ["T2"] and _failures(fs, out) == {} and _staged(fs, out) == []
        assert_same_rows(_catalogue(fs, f"{out}/T2.parquet"), world["reference"]["T2"])

        # what the loser leaves on a tile the winner finished: a failure and orphan parts
        fs.pipe(
            f"{out}/{FAILURES}", json.dumps({"T2": {"error": "FileNotFoundError: …", "utc": "x"}}).encode()
        )
        fs.pipe(f"{out}/{STAGING}/T2/part-000000000000-000000000128.parquet", b"orphan")
        summary = predict_store(client, *args, tiles=["T2"], progress=False)
        assert summary.already_done == ["T2"] and _failures(fs, out) == {} and _staged(fs, out) == []


def test_o3_ctrl_c_then_rerun_on_s3_is_exact(bucket, world):
    fs, root = bucket
    out = f"{root}/run"
    argv = ("predict", "--store", str(world["store"]), "--bundle", str(world["ensemble"]), "--out", out,
            "--workers", "1", "--rows-per-task", "128", "--max-in-flight", "1", "--quiet")  # fmt: skip
    run = dpz(*argv)
    run_until(
        run, lambda: len(_staged(fs, out)) >= 3 or fs.exists(f"{out}/T0.parquet"), 120, "three part files"
    )
    rc, _, err = interrupt(run)
    assert rc == 130 and err.strip().splitlines()[-1].startswith("dpz predict: interrupted;"), err
    rerun = dpz(*argv)
    _, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, err
    for tile, expected in world["reference"].items():
        assert_same_rows(_catalogue(fs, f"{out}/{tile}.parquet"), expected)
    assert _failures(fs, out) == {} and _staged(fs, out) == []
