"""``dpz train`` options and the progress record, without starting Ray."""

from __future__ import annotations

import argparse
import json

import pytest

from distributed_pz.train import cli
from distributed_pz.train.progress import ProgressCallback, new_status, progress_line


def parse(*argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_options_and_defaults():
    args = parse(
        "--store", "s.zarr", "--out", "ens", "--tile", "a", "--tile", "b", "--model-set", "hidden=16"
    )
    assert (args.splits, args.folds, args.model, args.tiles) == (10, 5, "deepz", ["a", "b"])
    assert args.address is None and args.num_workers is None and args.gpus_per_worker is None
    assert cli.parse_overrides(args.model_set) == {"hidden": 16}
    assert cli.parse_overrides(['bands=["g", "r"]', "reference_band=r"]) == {
        "bands": ["g", "r"],
        "reference_band": "r",
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model-set", "width=3"], "width"),
        (["--val-fraction", "0"], "val_fraction"),
        (["--model-set", "x"], "FIELD"),
    ],
)
def test_bad_settings_exit_2_before_any_training(tmp_path, capsys, extra, message):
    args = parse("--store", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "ens"), *extra)
    assert cli.run(args) == 2
    assert message in capsys.readouterr().out
    assert not (tmp_path / "ens").exists()


def test_progress_callback_tracks_members(tmp_path):
    path = tmp_path / "status.json"
    callback = ProgressCallback(path, new_status(["s00_f0", "s00_f1", "s01_f0"], done=["s01_f0"]))
    running = {"phase": "member", "member": "s00_f0", "rank": 0, "epoch": 2, "epochs": 5, "train_loss": 1.5}
    callback.after_report(None, [running, {"phase": "idle", "rank": 1, "finished": []}], None)
    status = json.loads(path.read_text())
    assert status["counts"] == {"pending": 1, "running": 1, "done": 1, "failed": 0}
    assert "s00_f0 epoch 2/5 loss 1.5" in progress_line(status)

    callback.after_exception(None, {0: RuntimeError("worker died")})
    status = json.loads(path.read_text())
    assert status["members"]["s00_f0"]["state"] == "failed" and status["worker_failures"] == 1

    callback.after_report(None, [{"phase": "idle", "rank": 0, "finished": ["s00_f0"]}], None)
    assert json.loads(path.read_text())["counts"]["done"] == 2
