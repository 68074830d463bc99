"""The ``dpz`` entry point: every option explained, simulate → validate through the real CLI."""

from __future__ import annotations

import argparse

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
