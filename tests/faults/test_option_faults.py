"""RELIABILITY-NEW-SURFACES.md G1-G12: options and config files of ``dpz`` commands.

Each bad value is one line naming the option (or the file) before any cluster starts, and a
refused command leaves the output it refused as it was.
"""

from __future__ import annotations

import json
import shutil

import pytest

from distributed_pz.cli import main
from distributed_pz.models.ensemble import EnsembleDir

pytestmark = pytest.mark.faults


def _predict(world, out, *extra: str) -> list[str]:
    return ["predict", "--store", str(world["store"]), "--bundle", str(world["ensemble"]), "--out", str(out),
            "--tile", "T2", "--workers", "1", "--quiet", *extra]  # fmt: skip


@pytest.mark.distributed
@pytest.mark.slow
def test_g12_a_refused_predict_leaves_the_runs_resolved_options_alone(world, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_predict(world, out)) == 0
    resolved = (out / "dpz-predict.toml").read_bytes()
    capsys.readouterr()
    assert main(_predict(world, out, "--odds-interval", "0.2")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"dpz predict: error: {out} holds a run with different odds_interval"), err
    assert (out / "dpz-predict.toml").read_bytes() == resolved


def test_g12_a_refused_train_leaves_the_ensembles_resolved_options_alone(world, tmp_path, capsys):
    ensemble = tmp_path / "ensemble"
    shutil.copytree(world["ensemble"], ensemble)
    EnsembleDir(ensemble).config_file.write_text(json.dumps({"model": "deepz", "epochs": 3}))
    options = EnsembleDir(ensemble).options_file
    options.write_text('model = "deepz"\nepochs = 3\n')
    before = options.read_bytes()
    argv = ["train", "--store", str(world["store"]), "--tile", "T2", "--out", str(ensemble), "--epochs", "4"]
    assert main(argv) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(
        f"dpz train: {ensemble} holds an ensemble trained with other"
    ), out
    assert options.read_bytes() == before


@pytest.mark.distributed
@pytest.mark.slow
def test_g12_a_command_that_made_its_output_records_its_options_even_when_it_fails(world, tmp_path):
    out = tmp_path / "run"
    assert main(_predict(world, out, "--tile", "NO_SUCH_TILE")) == 1  # made OUT, then the tile failed
    assert 'tile = [\n    "T2",\n    "NO_SUCH_TILE",\n]' in (out / "dpz-predict.toml").read_text()
