"""The ``dpz`` entry point: every option explained, simulate → validate through the real CLI."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distributed_pz.cli import COMMANDS, build_parser, main
from distributed_pz.survey.store.store import open_store


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_has_help(command):
    sub = _subparsers(build_parser([command]))[command]
    undocumented = [a.dest for a in sub._actions if not a.help or not a.help.strip()]
    assert undocumented == []
    assert sub.description


def test_simulate_then_validate(tmp_path, capsys):
    url = str(tmp_path / "sim.zarr")
    argv = [
        "simulate",
        "--n",
        "700",
        "--tiles",
        "2",
        "--out",
        url,
        "--chunk-rows",
        "256",
        "--shard-rows",
        "512",
    ]
    assert main(argv) == 0
    assert main(["validate", url, "--deep"]) == 0
    assert "ok:" in capsys.readouterr().out
    store = open_store(url)
    assert store.tile_names() == ["SIM_0000", "SIM_0001"]
    ids = [store.tile(t).read(["object_id"])["object_id"] for t in store.tile_names()]
    assert len(set(ids[0]) | set(ids[1])) == 1400  # object ids unique across tiles
    assert main(argv) == 0  # rerun keeps complete tiles
    assert "already complete" in capsys.readouterr().out


def test_validate_reports_one_line_per_problem(tmp_path, capsys):
    url = str(tmp_path / "sim.zarr")
    main(["simulate", "--n", "300", "--out", url, "--chunk-rows", "128", "--shard-rows", "256"])
    del open_store(url, mode="a").tile("SIM_0000").group["mag"]
    capsys.readouterr()
    assert main(["validate", url]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: store '{url}', tile 'SIM_0000', array 'mag': required array is missing"]


def _program(*args: str) -> subprocess.CompletedProcess:
    """``dpz ARGS`` as its own process (:func:`~distributed_pz.cli.console`), output captured."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "distributed_pz.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_the_program_exits_with_the_status_of_main_and_all_its_output(tmp_path):
    """It skips the interpreter's teardown (issue 25), not main's status or a line it wrote."""
    url = str(tmp_path / "sim.zarr")
    main(["simulate", "--n", "300", "--out", url, "--chunk-rows", "128", "--shard-rows", "256"])
    ok = _program("validate", url)
    assert (ok.returncode, ok.stdout.startswith("ok:")) == (0, True), ok.stderr
    del open_store(url, mode="a").tile("SIM_0000").group["mag"]
    bad = _program("validate", url)
    assert bad.returncode == 1
    assert bad.stderr.strip().endswith("'mag': required array is missing")


def test_set_overrides_are_typed_and_checked(tmp_path):
    url = str(tmp_path / "sim.zarr")
    main(
        [
            "simulate",
            "--n",
            "200",
            "--out",
            url,
            "--set",
            "star_fraction=0.5",
            "--set",
            "psf_fwhm_arcsec=1.0,1.0,0.6,1.0",
        ]
    )
    attrs = open_store(url).tile("SIM_0000").attrs
    assert attrs["psf_fwhm_arcsec"]["r"] == pytest.approx(0.6)
    with pytest.raises(SystemExit, match="expected NAME=VALUE"):
        main(["simulate", "--n", "10", "--out", url, "--set", "no_such_setting=1"])


@pytest.mark.parametrize(
    "argv, flag, value",
    [
        ("train --store s --out o --epochs -3", "epochs", "-3"),
        ("train --store s --out o --batch-size 0", "batch-size", "0"),
        ("predict --store s --bundle b --out o --max-in-flight -1", "max-in-flight", "-1"),
        ("predict --store s --bundle b --out o --workers -1", "workers", "-1"),
        ("predict --store s --bundle b --out o --batch-size 0", "batch-size", "0"),
        ("distill --ensemble e --store s --out o --epochs -2", "epochs", "-2"),
        ("simulate --out s --n -5", "n", "-5"),
        ("simulate --out s --chunk-rows 0", "chunk-rows", "0"),
        ("simulate --out s --tiles 0", "tiles", "0"),
    ],
)
def test_a_count_below_its_minimum_is_refused_when_parsed(argv, flag, value, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the relative outputs would land here
    with pytest.raises(SystemExit) as stop:
        main(argv.split())
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.endswith(f"error: argument --{flag}: must be at least 1, not {value}")
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_count_below_its_minimum_in_a_config_file_is_refused(tmp_path, capsys):
    config = tmp_path / "train.toml"
    config.write_text('store = "s"\nout = "o"\nepochs = -3\n')
    with pytest.raises(SystemExit) as stop:
        main(["train", "--config", str(config)])
    assert stop.value.code == 2
    assert (
        capsys.readouterr().err.strip().splitlines()[-1].endswith("epochs = -3: must be at least 1, not -3")
    )
