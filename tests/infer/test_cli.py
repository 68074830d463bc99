"""``dpz predict`` options, cluster selection errors and the run manifest, without a cluster."""

from __future__ import annotations

import argparse

import pytest
import torch

from distributed_pz.infer import cli
from distributed_pz.infer.cluster import ClusterError, connect
from distributed_pz.infer.manifest import ManifestError, RunManifest
from distributed_pz.models.predictor import PredictOptions
from distributed_pz.options import add_options


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_options(p, cli.OPTIONS)
    return p


def test_every_option_has_help_and_parses():
    p = parser()
    assert all(a.help for a in p._actions if a.dest != "help")
    args = p.parse_args(
        "--store s --bundle b --out o --tile T0 --tile T1 --format fits --workers 2 --rows-per-task 2048 "
        "--batch-size 512 --on-error skip --odds-interval 0.1 --precision bf16 --pdf grid --z-grid 0,3,301".split()
    )
    assert args.tile == ["T0", "T1"] and args.cluster == "local" and args.z_grid == (0.0, 3.0, 301)
    with pytest.raises(SystemExit):
        p.parse_args("--store s --bundle b --out o --cluster cuda --scheduler tcp://127.0.0.1:8786".split())


def test_run_reports_a_missing_bundle_in_one_line_before_starting_a_cluster(tmp_path, capsys):
    args = parser().parse_args(
        ["--store", str(tmp_path), "--bundle", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert cli.run(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("dpz predict: error:") and "neither an ensemble" in err and "\n" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_cluster_without_gpu_is_one_clear_line():
    with pytest.raises(ClusterError, match="torch sees no CUDA GPU") as info:
        with connect("cuda"):
            pass
    assert "\n" not in str(info.value)


def test_scheduler_and_scheduler_file_are_exclusive():
    with pytest.raises(ClusterError, match="not both"):
        with connect(scheduler="tcp://127.0.0.1:8786", scheduler_file="f.json"):
            pass


def test_manifest_refuses_a_different_run_and_resumes_the_same(tmp_path):
    identity = {
        "bundle_hash": "abc",
        "store": "/s",
        "format": "parquet",
        **PredictOptions().output_settings(),
    }
    manifest = RunManifest.open(tmp_path, identity)
    manifest.start_tile("T0", [(0, 128), (128, 200)], "write:1")
    manifest.close()
    again = RunManifest.open(tmp_path, identity)
    assert again.blocks("T0", "write:1") == [(0, 128), (128, 200)] and not again.done("T0", "write:1")
    assert again.blocks("T0", "write:2") is None  # the tile was rewritten since
    (tmp_path / "T0.parquet").write_bytes(b"x")
    again.finish_tile("T0", "T0.parquet", 200, "write:1")
    again.close()
    reopened = RunManifest.open(tmp_path, identity)
    assert reopened.done("T0", "write:1") and not reopened.done("T0", "write:2")
    reopened.close()
    other = {**identity, "odds_interval": 0.1}
    with pytest.raises(ManifestError, match="different odds_interval"):
        RunManifest.open(tmp_path, other)
