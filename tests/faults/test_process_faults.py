"""RELIABILITY.md F1-F4: killed workers, Ctrl-C, a killed client and two runs on one ``--out``.

Real processes, real signals, bounded waits. A run that was hit must leave what it finished
intact, a rerun must write exactly the reference rows, and a successful run ends quietly
(no traceback, no "Worker process still alive ... killing").
"""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest

from distributed_pz.infer.manifest import FAILURES, RUN_MANIFEST, STAGING
from distributed_pz.infer.stream import predict_store

from .conftest import TILES, assert_catalogues, dpz, group_gone, interrupt, run_until, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.distributed, pytest.mark.slow]

NOISE = ("Traceback", "still alive", "KeyboardInterrupt", "Exception")


def _predict_args(world, out, *extra):
    return (
        "predict", "--store", str(world["store"]), "--bundle", str(world["ensemble"]), "--out", str(out),
        "--workers", "1", "--rows-per-task", "128", "--max-in-flight", "1", "--quiet", *extra,
    )  # fmt: skip


def _parts(out) -> int:
    return len(list((out / STAGING).glob("*/part-*.parquet"))) if (out / STAGING).exists() else 0


def _quiet_success(process) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert not any(word in err for word in NOISE), err
    return out


def test_f1_a_killed_worker_is_replaced_and_the_catalogues_are_exact(client, world, tmp_path):
    out = tmp_path / "out"
    pids = list(client.run(os.getpid).values())
    killed = []

    def kill_one_worker():
        wait_for(lambda: _parts(out) >= 2, 60, "two part files")
        os.kill(pids[0], signal.SIGKILL)
        killed.append(pids[0])

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    summary = predict_store(
        client, str(world["store"]), str(world["ensemble"]), str(out),
        rows_per_task=128, max_in_flight=2, progress=False,
    )  # fmt: skip
    killer.join()
    assert killed and summary.failed == {} and sorted(summary.committed) == list(TILES)
    assert_catalogues(out, world["reference"])
    client.wait_for_workers(2, timeout=60)


def test_f2_ctrl_c_ends_in_one_line_and_the_rerun_is_exact(world, tmp_path):
    out = tmp_path / "out"
    run = dpz(*_predict_args(world, out))
    run_until(run, lambda: _parts(out) >= 3 or (out / "T0.parquet").exists(), 120, "three part files")
    rc, _, err = interrupt(run)
    assert rc == 130, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("dpz predict: interrupted;") and "Traceback" not in err, err
    wait_for(lambda: group_gone(run.pid), 30, "the cluster's processes to exit")
    rerun = dpz(*_predict_args(world, out))
    _quiet_success(rerun)
    assert_catalogues(out, world["reference"])
    assert not (out / STAGING).exists() or _parts(out) == 0


def test_f3_a_killed_client_takes_its_cluster_with_it_and_the_rerun_is_exact(world, tmp_path):
    out = tmp_path / "out"
    run = dpz(*_predict_args(world, out))
    wait_for(lambda: _parts(out) >= 3 or run.poll() is not None, 120, "three part files")
    os.kill(run.pid, signal.SIGKILL)
    run.communicate(timeout=30)
    wait_for(lambda: group_gone(run.pid), 30, "the orphaned workers to exit")
    _quiet_success(dpz(*_predict_args(world, out)))
    assert_catalogues(out, world["reference"])


def test_f4_a_second_run_on_the_same_out_is_refused_and_the_first_is_exact(world, tmp_path):
    out = tmp_path / "out"
    first = dpz(*_predict_args(world, out))
    wait_for(
        lambda: (out / RUN_MANIFEST).is_file() or first.poll() is not None, 60, "the first run's manifest"
    )
    os.kill(first.pid, signal.SIGSTOP)  # the first run holds --out however fast it would finish
    try:
        second = dpz(*_predict_args(world, out))
        _, err = second.communicate(timeout=60)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 1
    assert err.strip().splitlines()[-1] == (
        f"dpz predict: error: another dpz predict is using {out} (pid {first.pid}); "
        "wait for it to finish or use another --out"
    )
    assert "Traceback" not in err, err
    _quiet_success(first)
    assert_catalogues(out, world["reference"])
    assert not (out / FAILURES).exists() or json.loads((out / FAILURES).read_text()) == {}
    assert json.loads((out / RUN_MANIFEST).read_text())["tiles"].keys() == set(TILES)
