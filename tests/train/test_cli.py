"""``dpz train`` options, the model resolved and checked against the store, and the progress record, without starting Ray."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from distributed_pz.bands import KIDS_VIKING
from distributed_pz.options import add_options
from distributed_pz.survey.store.store import open_store
from distributed_pz.train import cli
from distributed_pz.train.config import POINT_CALIBRATION_SHARE, EnsembleConfig, parse_overrides
from distributed_pz.train.presets import preset_settings
from distributed_pz.train.progress import ProgressCallback, new_status, progress_line


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_options(parser, cli.OPTIONS)
    return parser.parse_args(argv)


def test_options_and_defaults():
    args = parse(
        "--store", "s.zarr", "--out", "ens", "--tile", "a", "--tile", "b", "--model-set", "hidden=16"
    )
    assert (args.n_splits, args.n_folds, args.model, args.tiles) == (10, 5, "deepz", ["a", "b"])
    assert args.address is None and args.num_workers is None and args.gpus_per_worker is None
    assert parse_overrides(args.model_overrides) == {"hidden": 16}
    assert parse_overrides(['bands=["g", "r"]', "reference_band=r"]) == {
        "bands": ["g", "r"],
        "reference_band": "r",
    }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model-set", "width=3"], "width"),
        (["--val-fraction", "0"], "val_fraction"),
        (["--model-set", "x"], "FIELD"),
        (["--calibration-share", "0.7"], "calibration_share"),
    ],
)
def test_bad_settings_exit_2_before_any_training(tmp_path, capsys, extra, message):
    args = parse("--store", str(tmp_path / "none.zarr"), "--out", str(tmp_path / "ens"), *extra)
    assert cli.run(args) == 2
    assert message in capsys.readouterr().out
    assert not (tmp_path / "ens").exists()


def test_point_ensembles_hold_a_calibration_share_out_by_default_and_pdf_ones_do_not():
    point = EnsembleConfig(store="s.zarr", out="ens", model="gaznet_c9")
    assert point.share_for_calibration(10_000) == POINT_CALIBRATION_SHARE
    assert point.share_for_calibration(1_000) == 0.0  # too few rows: the out-of-fold rows
    assert EnsembleConfig(store="s.zarr", out="ens", model="deepz").share_for_calibration(10_000) == 0.0
    mdn = EnsembleConfig(store="s.zarr", out="ens", model="gaznet_c9", model_overrides={"head": "mdn"})
    assert mdn.share_for_calibration(10_000) == 0.0
    given = EnsembleConfig(store="s.zarr", out="ens", model="deepz", calibration_share=0.3)
    assert given.share_for_calibration(1_000) == 0.3
    with pytest.raises(ValueError, match="holds 30: a calibration needs at least 50"):
        given.share_for_calibration(100)


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


def _catalogue_store(url, bands=("u", "g", "r", "i", "z"), band_set="sdss", n=40, tile="t0"):
    """A catalogue-only store (no cutouts, no exposures) in the band set ``bands``."""
    rng = np.random.default_rng(0)
    nb = len(bands)
    arrays = {
        "object_id": np.arange(n, dtype=np.int64),
        "ra": rng.uniform(10, 11, n),
        "dec": rng.uniform(-1, 0, n),
        "mag": rng.uniform(18, 24, (n, nb)).astype(np.float32),
        "mag_err": np.full((n, nb), 0.05, np.float32),
        "mag_flag": np.zeros((n, nb), np.uint8),
        "z_spec": rng.uniform(0, 1, n).astype(np.float32),
    }
    attrs = {"band_set": band_set, "bands": list(bands), "image_bands": [], "zeropoint": {}}
    open_store(url, "a").write_tile(tile, arrays, attrs)
    return url


@pytest.mark.parametrize("model", ["gaznet_c9", "deepz"])
def test_the_model_takes_its_bands_from_the_training_tile(tmp_path, model):
    url = _catalogue_store(str(tmp_path / "sdss.zarr"))
    config = EnsembleConfig(store=url, out=str(tmp_path / "ens"), model=model).resolve(open_store(url))
    assert config.tiles == ("t0",) and config.model_config().bands == ("u", "g", "r", "i", "z")
    again = EnsembleConfig.from_dict(json.loads(json.dumps(config.to_dict())))  # as a Ray worker sees it
    assert again.model_config() == config.model_config()
    assert EnsembleConfig(store=url, out="x", model=model).model_config().bands == KIDS_VIKING.bands

    chosen = EnsembleConfig(store=url, out="x", model=model, model_overrides={"bands": ["g", "r", "i"]})
    assert chosen.resolve(open_store(url)).model_config().bands == ("g", "r", "i")  # --model-set wins


@pytest.mark.parametrize(
    ("bands", "extra", "message"),
    [
        (("u", "g", "r", "i", "z"), ["--model", "gaznet_1"], "no cutout array"),
        (("u", "g", "r", "i", "z"), ["--model", "gaznet_c4"], "a GaZNet needs catalogue bands"),
        (("g", "r", "z"), ["--model", "deepz"], "reference band 'i'"),
        (("u", "g", "r", "i", "z"), ["--model", "gaznet_c9", "--model-set", 'bands=["g", "Ks"]'], "Ks"),
    ],
)
def test_a_model_the_store_cannot_feed_fails_in_one_line_before_ray(tmp_path, capsys, bands, extra, message):
    url = _catalogue_store(str(tmp_path / "s.zarr"), bands, band_set="test")
    args = parse("--store", url, "--out", str(tmp_path / "ens"), *extra)
    assert cli.run(args) == 2
    out = capsys.readouterr().out
    assert message in out and "--model" in out and len(out.strip().splitlines()) == 1
    assert not (tmp_path / "ens").exists()


def test_an_override_repairs_what_the_band_set_leaves_invalid(tmp_path):
    url = _catalogue_store(str(tmp_path / "s.zarr"), ("g", "r", "z"), band_set="test")
    config = EnsembleConfig(store=url, out="x", model="deepz", model_overrides={"reference_band": "r"})
    assert config.resolve(open_store(url)).model_config().reference_band == "r"


def _tiles_store(url, names):
    """A catalogue-only store with one small tile per name."""
    for name in names:
        _catalogue_store(url, tile=name)
    return url


def test_tiles_by_glob_and_exclusion(tmp_path):
    url = _tiles_store(str(tmp_path / "s.zarr"), ("KIDS_1", "KIDS_2", "KIDS_10", "eval"))
    store = open_store(url)

    def tiles(**kw):
        return EnsembleConfig(store=url, out="x", model="gaznet_c9", **kw).resolve(store).tiles

    assert set(tiles()) == {"KIDS_1", "KIDS_2", "KIDS_10", "eval"}
    assert set(tiles(exclude_tiles=("eval",))) == {"KIDS_1", "KIDS_2", "KIDS_10"}
    assert set(tiles(tiles=("KIDS_1*",))) == {"KIDS_1", "KIDS_10"}
    assert set(tiles(tiles=("KIDS_*",), exclude_tiles=("KIDS_1?",))) == {"KIDS_1", "KIDS_2"}
    with pytest.raises(ValueError, match="matches no tile"):
        tiles(exclude_tiles=("evl",))
    with pytest.raises(ValueError, match="no tile to train on"):
        tiles(tiles=("eval",), exclude_tiles=("e*",))
    args = parse("--store", url, "--out", "x", "--tile", "KIDS_*", "--exclude-tile", "KIDS_2")
    assert (args.tiles, args.exclude_tiles) == (["KIDS_*"], ["KIDS_2"])


def test_calibration_target_tiles_are_resolved_and_checked_against_the_training_bands(tmp_path):
    url = _tiles_store(str(tmp_path / "s.zarr"), ("spec", "KIDS_1", "KIDS_2"))
    _catalogue_store(url, bands=("g", "r", "i"), band_set="test", tile="other")
    store = open_store(url)
    args = parse("--store", url, "--out", "x", "--calibrate-for", "KIDS_*")
    assert args.calibrate_for == ["KIDS_*"]

    def target(*patterns):
        config = EnsembleConfig(
            store=url, out="x", model="gaznet_c9", tiles=("spec",), calibrate_for=patterns
        )
        return config.resolve(store).calibrate_for

    assert target("KIDS_*") == ("KIDS_1", "KIDS_2") and target() == ()
    with pytest.raises(ValueError, match="'KIDS_9' matches no tile"):
        target("KIDS_9")
    with pytest.raises(ValueError, match="--calibrate-for: store .*, tile 'other' has other bands"):
        target("other")
    config = EnsembleConfig(store=url, out="x", model="gaznet_c9", calibrate_for=("KIDS_1",))
    assert EnsembleConfig.from_dict(config.to_dict()).calibrate_for == ("KIDS_1",)


def test_presets_choose_the_papers_schedules_on_a_gpu_and_short_ones_on_a_cpu():
    assert preset_settings("paper", "deepz") == {"epochs": 300, "batch_size": 100, "lr": 1e-3}
    assert preset_settings("paper", "gaznet")["epochs"] == 60
    assert preset_settings("cpu", "deepz")["epochs"] == 30
    expected = "paper" if torch.cuda.is_available() else "cpu"
    assert preset_settings("auto", "deepz") == preset_settings(expected, "deepz")
    with pytest.raises(ValueError, match="unknown preset"):
        preset_settings("fast", "deepz")
