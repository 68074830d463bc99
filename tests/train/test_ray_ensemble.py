"""Ensembles trained by one Ray Train run on a real local Ray (CPU): outputs, no leakage, reruns, faults."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray")

from distributed_pz.catalog import MIXTURE_COLUMNS  # noqa: E402
from distributed_pz.models.calibration import fit_calibration  # noqa: E402
from distributed_pz.models.ensemble import ENSEMBLE_FILE, EnsembleDir, load_plan  # noqa: E402
from distributed_pz.models.predictor import EnsemblePredictor  # noqa: E402
from distributed_pz.survey.sim.simulate import SimulationConfig, simulate_tile  # noqa: E402
from distributed_pz.survey.store.store import open_store  # noqa: E402
from distributed_pz.train.calibrate import fitting_rows, weights_for_tiles  # noqa: E402
from distributed_pz.train.config import EnsembleConfig  # noqa: E402
from distributed_pz.train.member import TrainConfig  # noqa: E402
from distributed_pz.train.oof import load_part  # noqa: E402
from distributed_pz.train.ray_ensemble import start_ray, train_ensemble  # noqa: E402
from distributed_pz.train.sample import load_sample, read_sample_rows  # noqa: E402

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

TINY_DEEPZ = {"hidden": 16, "n_layers": 2, "latent": 4, "n_components": 3}


@pytest.fixture(scope="module")
def ray_session():
    start_ray(num_cpus=2)
    yield
    ray.shutdown()


def simulated_store(url, sizes, seed):
    store = open_store(url, "a")
    for i, n in enumerate(sizes):
        sim = SimulationConfig(n_sources=n, seed=seed + i, tile=f"t{i}", object_id_start=10_000 * i)
        arrays, attrs = simulate_tile(sim)
        arrays["z_spec"][::7] = np.nan  # rows without a spec-z stay out of the sample
        store.write_tile(f"t{i}", arrays, attrs, chunk_rows=64, shard_rows=128)
    return url


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return simulated_store(str(tmp_path_factory.mktemp("store") / "train.zarr"), (300, 180), seed=0)


@pytest.fixture(scope="module")
def pretrain_store(tmp_path_factory):
    return simulated_store(str(tmp_path_factory.mktemp("store") / "sim.zarr"), (400,), seed=100)


def config(store, out, epochs=2, n_splits=2, pretrain_store=None):
    return EnsembleConfig(
        store=store,
        out=str(out),
        model="deepz",
        model_overrides=TINY_DEEPZ,
        n_splits=n_splits,
        n_folds=2,
        seed=3,
        train=TrainConfig(epochs=epochs, batch_size=64, patience=None, on_nan="stop"),
        pretrain_store=pretrain_store,
        pretrain=TrainConfig(epochs=2, batch_size=64, on_nan="stop"),
    )


def test_two_by_two_ensemble_trains_predicts_out_of_fold_and_reruns(
    ray_session, store, pretrain_store, tmp_path
):
    out = tmp_path / "ens"
    settings = config(store, out, pretrain_store=pretrain_store)
    lines = []
    outcome = train_ensemble(settings, echo=lines.append)
    assert (outcome.n_members, outcome.finished, outcome.trained_now, outcome.workers) == (4, 4, 4, 2)
    assert outcome.content_hash and lines
    assert not (
        out / EnsembleDir.ray_run
    ).exists()  # Ray Train's checkpoints go once the ensemble is complete
    status = json.loads((out / EnsembleDir.status_file).read_text())
    assert status["counts"]["done"] == 4

    ensemble = EnsembleDir(out).read(device="cpu")
    plan = load_plan(out)
    assert len(ensemble) == 4 and ensemble.content_hash == outcome.content_hash
    assert list(ensemble.members) == ["s00_f0", "s00_f1", "s01_f0", "s01_f1"]
    assert plan.n_rows == 480 - len(range(0, 300, 7)) - len(range(0, 180, 7))
    pretrained = EnsembleDir(out / "pretrain").read(device="cpu").bundles[0]
    assert all(b.feature_stats == pretrained.feature_stats for b in ensemble.bundles)  # fine-tuned from it

    # out-of-fold: every row predicted by exactly the members whose test fold holds it
    oof = pq.read_table(out / "oof.parquet").to_pydict()
    assert np.array_equal(oof["object_id"], plan.object_id)
    weights = np.array(oof["pdf_weights"])  # (N, 2 splits × 3 components)
    assert weights.shape == (plan.n_rows, 6)
    predicted = np.zeros(plan.n_rows, int)
    for spec in plan.members:
        part = load_part(EnsembleDir(out).oof_part(spec.member_id))
        predicted[part["row"]] += np.isfinite(part["z_phot"])  # flagged rows (no i band, ...) are NaN
        seen = np.concatenate([plan.train_rows(spec), plan.validation_rows(spec)])
        assert np.array_equal(part["row"], plan.test_rows(spec))
        assert not np.isin(part["row"], seen).any()
        cols = slice(3 * spec.split, 3 * spec.split + 3)
        both = part["row"][predicted[part["row"]] == 2]
        np.testing.assert_allclose(
            weights[both, cols], load_part_rows(part, both)["pdf_weights"] / 2, rtol=1e-5
        )
    assert np.array_equal(oof["n_members"], predicted) and (predicted == 2).mean() > 0.9
    np.testing.assert_allclose(weights[predicted > 0].sum(axis=1), 1, rtol=1e-5)
    assert np.isnan(np.array(oof["z_phot"])[predicted == 0]).all()

    # the calibration fitted on them is in the manifest and applied by the predictor
    manifest = json.loads((out / ENSEMBLE_FILE).read_text())
    assert manifest["calibration"]["content_hash"] == ensemble.calibration.content_hash
    assert (
        EnsemblePredictor.from_ensemble(ensemble)
        .catalogue_metadata()["calibration"]
        .startswith("width_temperature")
    )
    assert any(line.startswith("calibration: ") for line in lines)
    assert any(line.startswith("estimate: ") for line in lines)
    assert "cross-fitted" in pq.read_schema(out / "oof.parquet").metadata[b"calibration"].decode()

    # the part really is that member's prediction of rows it never saw
    spec = plan.members[3]
    rows = plan.test_rows(spec)
    data = read_sample_rows(
        load_sample(EnsembleDir(out), store, ("t0", "t1")), ["flux_exp", "flux_exp_err", "mag", "z_spec"]
    )
    again = EnsemblePredictor(ensemble.members[spec.member_id], device="cpu")(data.take(rows))
    np.testing.assert_allclose(
        again["z_phot"], load_part(EnsembleDir(out).oof_part(spec.member_id))["z_phot"], rtol=1e-4
    )

    # rerun: nothing to train, no Ray Train start
    started = time.perf_counter()
    rerun = train_ensemble(settings)
    assert (rerun.trained_now, rerun.workers, rerun.content_hash) == (0, 0, outcome.content_hash)
    assert time.perf_counter() - started < 5

    # a lost member is retrained alone; the others are kept as they are
    kept = (EnsembleDir(out).member("s00_f0") / "weights.safetensors").stat().st_mtime_ns
    shutil.rmtree(EnsembleDir(out).member("s01_f1"))
    (out / ENSEMBLE_FILE).unlink()
    partial = train_ensemble(settings)
    assert (partial.trained_now, partial.workers, partial.finished) == (1, 1, 4)
    assert (EnsembleDir(out).member("s00_f0") / "weights.safetensors").stat().st_mtime_ns == kept
    assert (
        EnsembleDir(out).read(device="cpu").members["s01_f1"].content_hash
        == ensemble.members["s01_f1"].content_hash
    )

    with pytest.raises(ValueError, match="other settings"):
        train_ensemble(config(store, out, epochs=3, pretrain_store=pretrain_store))


def test_one_fold_trains_every_member_on_everything_with_no_out_of_fold_and_no_calibration(
    ray_session, store, tmp_path
):
    out = tmp_path / "all"
    settings = dataclasses.replace(config(store, out, n_splits=2), n_folds=1, exclude_tiles=("t1",))
    lines = []
    outcome = train_ensemble(settings, echo=lines.append)
    assert outcome.content_hash and outcome.n_members == 2
    plan = load_plan(out)
    assert plan.n_rows == 300 - len(range(0, 300, 7))  # t1 left out
    for spec in plan.members:
        n_train = EnsembleDir(out).read(device="cpu").members[spec.member_id].metadata["n_train"]
        assert n_train == plan.n_rows - plan.validation_rows(spec).size
    ensemble = EnsembleDir(out).read(device="cpu")
    assert not (out / "oof.parquet").exists() and ensemble.calibration is None
    assert any("no out-of-fold predictions, so no calibration" in line for line in lines)
    assert EnsemblePredictor.from_ensemble(ensemble).catalogue_metadata()["calibration"] == "none"


def test_a_calibration_share_is_predicted_by_every_member_and_fitted_on_as_catalogue_rows_reweighted(
    ray_session, store, tmp_path
):
    """The share's pooled parts give the saved fit, its rows weighted to the --calibrate-for tile."""
    out = tmp_path / "share"
    lines = []
    point_model = {
        "model": "gaznet_c9",
        "model_overrides": {"catalog_widths": [32, 32], "neck_widths": [32, 16]},
    }
    settings = dataclasses.replace(
        config(store, out, epochs=4), calibration_share=0.3, calibrate_for=("t1",), **point_model
    )
    train_ensemble(settings, echo=lines.append)
    plan, ensemble = load_plan(out), EnsembleDir(out).read(device="cpu")
    share = plan.calibration_rows()
    assert share.size == round(0.3 * plan.n_rows)
    data = read_sample_rows(
        load_sample(EnsembleDir(out), store, ("t0", "t1")),
        ["mag", "mag_err", "z_spec", "class"],
    )
    for spec in plan.members:
        assert not np.isin(share, plan.train_rows(spec)).any()
        assert spec.member_id in ensemble.members  # the share's rows trained none of them
        part = load_part(EnsembleDir(out).calibration_part(spec.member_id))
        assert np.array_equal(part["row"], share)
    pooled = EnsemblePredictor(ensemble.bundles, device="cpu")(
        data.take(share)
    )  # uncalibrated, as parts pool
    galaxies = fitting_rows(data.arrays["class"][share])
    fitted = ensemble.calibration
    row_weights, _ = weights_for_tiles(
        open_store(store), ["t1"], data.arrays["mag"], data.arrays["mag_err"], 3
    )
    fitted_rows = galaxies & (row_weights[share] > 0)  # a row with no t1 neighbour is not fitted on
    assert fitted.n_rows == fitted_rows.sum() > 0.8 * galaxies.sum()
    assert "held out of every member" in fitted.fitted_on and "all 4 members pooled" in fitted.fitted_on
    assert "reweighted to the photometry of t1" in fitted.fitted_on
    refit = fit_calibration(
        *(np.asarray(pooled[k], np.float64)[galaxies] for k in MIXTURE_COLUMNS),
        data.arrays["z_spec"][share][galaxies],
        row_weights=row_weights[share][galaxies],
    )
    for stat in ("pit_ks", "coverage_68"):  # the catalogue's pooling of the share, before calibration
        assert refit.before[stat] == pytest.approx(fitted.before[stat], rel=1e-4)
    unweighted = fit_calibration(
        *(np.asarray(pooled[k], np.float64)[galaxies] for k in MIXTURE_COLUMNS),
        data.arrays["z_spec"][share][galaxies],
    )
    assert unweighted.before != fitted.before  # the weights reached the fit
    assert any(line.startswith("calibration: ") and "calibration share" in line for line in lines)


def load_part_rows(part, rows):
    """The part's columns at sample ``rows`` (which must be among its rows)."""
    at = np.searchsorted(part["row"], rows)
    return {k: v[at] for k, v in part.items()}


def _kill_when_running(status_path, min_epoch, killed):
    """Kill (SIGKILL) the worker of the first member past ``min_epoch``; record its member and epoch."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not killed:
        try:
            members = json.loads(status_path.read_text())["members"]
        except (FileNotFoundError, json.JSONDecodeError):
            members = {}
        for name, m in members.items():
            if m["state"] == "running" and min_epoch <= m["epoch"] < m["epochs"] - 5:
                os.kill(m["pid"], signal.SIGKILL)
                killed.append((name, m["epoch"]))
                return
        time.sleep(0.02)


def test_killed_worker_resumes_its_member_from_the_last_checkpoint(ray_session, store, tmp_path):
    out = tmp_path / "ens"
    cfg = config(store, out, epochs=40, n_splits=1)
    killed: list[tuple[str, int]] = []
    killer = threading.Thread(target=_kill_when_running, args=(out / EnsembleDir.status_file, 2, killed))
    killer.start()
    outcome = train_ensemble(cfg, echo=lambda line: None)
    killer.join()
    assert killed, "no member was caught mid-training"
    name, epoch_at_kill = killed[0]
    assert outcome.finished == 2 and outcome.content_hash
    status = json.loads((out / EnsembleDir.status_file).read_text())
    assert status["worker_failures"] >= 1
    record = EnsembleDir(out).read(device="cpu").members[name].metadata
    assert 0 < record["resumed_from_epoch"] <= epoch_at_kill + 1  # from a checkpoint, not from scratch
    assert record["epochs_run"] == 40 and len(record["history"]) == 40
