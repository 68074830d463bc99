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


CONFIG_VALUES = {
    "G1 unknown key": ("colour = 1\n", "unknown option(s) colour"),
    "G1 workers as text": ('workers = "two"\n', "workers = 'two': invalid literal for int()"),
    "G1 list for out": ('out = ["a", "b"]\n', "out = ['a', 'b']: expected one value"),
    "G1 switch as text": ('quiet = "yes"\n', "quiet = 'yes': expected true or false"),
    "G1 short z-grid": ('pdf = "grid"\nz-grid = [0, 1]\n', "z-grid = '0,1'"),
    "G1 batch-size 0": ("batch-size = 0\n", "batch-size = 0: must be at least 1, not 0"),
    "G1 config key": ('config = "x.toml"\n', "unknown option(s) config"),
    "G2 workers 0": ("workers = 0\n", "workers = 0: must be at least 1, not 0"),
    "G2 rows-per-task 0": ("rows-per-task = 0\n", "rows-per-task = 0: must be at least 1, not 0"),
    "G6 number for out": ("out = 5\n", "out = 5: expected a string"),
    "G6 binary file": (b"\x89PNG\r\n\x1a\n\x00\xff", "not a TOML file (UnicodeDecodeError"),
}


@pytest.mark.parametrize("row", sorted(CONFIG_VALUES))
def test_g1_g2_g6_a_bad_config_value_is_one_line_naming_it(row, world, tmp_path, capsys):
    text, message = CONFIG_VALUES[row]
    config = tmp_path / "predict.toml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    argv = [
        "predict",
        "--config",
        str(config),
        "--store",
        str(world["store"]),
        "--bundle",
        str(world["ensemble"]),
    ]
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and message in err[-1], err
    assert err[-1].startswith("dpz predict: error: ") and not (tmp_path / "out").exists()


def test_g1_a_directory_as_config_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--config", str(tmp_path)])
    assert capsys.readouterr().err.strip().splitlines() == [
        f"dpz predict: error: --config {tmp_path}: not a TOML file (IsADirectoryError: [Errno 21] Is a directory: "
        f"'{tmp_path}')"
    ]


@pytest.mark.parametrize(
    "where", ["G7 the store", "G7 inside the store", "G7 the ensemble", "G7 another ensemble"]
)
def test_g7_out_may_not_be_an_input_or_hold_one(where, world, tmp_path, capsys):
    store, ensemble = world["store"], world["ensemble"]
    out = {"G7 the store": store, "G7 inside the store": store / "catalogues", "G7 the ensemble": ensemble,
           "G7 another ensemble": world["legacy"]}[where]  # fmt: skip
    before = sorted(p.relative_to(world["root"]) for p in world["root"].rglob("*"))
    rc = main(["predict", "--store", str(store), "--bundle", str(ensemble), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith(f"dpz predict: error: --out {out} "), err
    assert err[0].endswith("; use another --out")
    assert sorted(p.relative_to(world["root"]) for p in world["root"].rglob("*")) == before


def test_g5_workers_beyond_the_cores_warn_with_their_memory_and_too_many_are_refused():
    import psutil

    from distributed_pz.infer.cluster import (
        WORKER_MEMORY_MIB,
        ClusterError,
        check_local_workers,
        default_workers,
    )

    cores = default_workers()
    assert check_local_workers(cores) is None
    available = psutil.virtual_memory().available // 2**20
    if (cores + 1) * WORKER_MEMORY_MIB < available:
        warning = check_local_workers(cores + 1)
        assert warning.startswith(f"warning: --workers {cores + 1} on {cores} cores: ~") and "MiB" in warning
    too_many = 2 * available // WORKER_MEMORY_MIB + 2
    with pytest.raises(
        ClusterError, match=rf"--workers {too_many}: ~[\d,]+ MiB for the workers .* available; use at most"
    ):
        check_local_workers(too_many)


def test_g10_a_model_that_cannot_be_built_is_one_line_before_anything_is_written(world, tmp_path, capsys):
    out = tmp_path / "ens"
    argv = [
        "train",
        "--store",
        str(world["store"]),
        "--tile",
        "T2",
        "--out",
        str(out),
        "--model-set",
        "hidden=-4",
    ]
    assert main(argv) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "dpz train: --model-set hidden=-4: the model cannot be built ("
    ), lines
    assert not out.exists()


@pytest.mark.parametrize("value", ["-1", "0"])
def test_g10_a_learning_rate_not_above_0_is_refused_when_parsed(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--store", "s", "--out", str(tmp_path / "ens"), "--lr", value])
    assert stop.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith(f"argument --lr: must be above 0, not {value}")
    )


def test_g8_relative_paths_in_a_config_are_relative_to_it_and_recorded_absolute(tmp_path, monkeypatch):
    folder = tmp_path / "configs" / "survey"
    folder.mkdir(parents=True)
    (folder / "simulate.toml").write_text('out = "sim.zarr"\nn = 40\nno-cutouts = true\n')
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "--config", "configs/survey/simulate.toml"]) == 0
    assert (folder / "sim.zarr").is_dir() and not (tmp_path / "sim.zarr").exists()
    recorded = (folder / "sim.zarr.dpz-simulate.toml").read_text()
    assert f'out = "{folder / "sim.zarr"}"' in recorded
