"""dpz distill: draws follow the teacher's p(z); the student is a bundle dpz predict takes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distributed_pz.cli import main
from distributed_pz.models.bundle import BundleError, load_bundle
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.survey.store.store import open_store
from distributed_pz.train.calibrate import fitting_rows
from distributed_pz.train.distill import teacher_draws
from distributed_pz.train.distill_cli import STUDENT, _rows
from tests.fixtures import learnable_tile, save_ensemble, trained_members, with_ids, write_store

torch.set_num_threads(1)


def test_draws_follow_the_teachers_mixture():
    teacher = EnsemblePredictor(trained_members("deepz", (1, 2)))
    rows = learnable_tile(40, seed=3)
    keep, z = teacher_draws(teacher, rows, 4000, seed=0)
    out = teacher(rows)
    assert len(keep) == 40 and z.shape == (40, 4000)
    np.testing.assert_allclose(z.mean(axis=1), out["z_mean"], atol=0.05)
    np.testing.assert_allclose(z.std(axis=1), out["z_std"], rtol=0.1)


def test_distill_round_trip_through_the_cli(tmp_path):
    root = tmp_path / "ens"
    save_ensemble(root, trained_members("deepz", (1, 2)))
    store = str(tmp_path / "s.zarr")
    write_store(store, 1, 200)
    student = tmp_path / "student"
    code = main(
        [
            "distill",
            "--ensemble",
            str(root),
            "--store",
            store,
            "--out",
            str(student),
            "--epochs",
            "2",
            "--samples",
            "2",
        ]
    )
    assert code == 0
    predictor = EnsemblePredictor.from_ensemble(EnsembleDir(str(student)).read())
    assert predictor.n_members == 1 and predictor.members[0].metadata["distilled_from"]
    out = predictor(with_ids(learnable_tile(30)))
    assert np.isfinite(out["z_phot"]).all() and out["pdf_weights"].shape == (30, predictor.n_components)


def held_out_galaxies(root, store: str, seed: int) -> int:
    """Galaxies and unknowns (no stars: a star's z = 0 is no redshift to calibrate on) among the
    rows ``dpz distill`` holds out of the student's training."""
    teacher = EnsemblePredictor.from_ensemble(EnsembleDir(str(root)).read())
    rows = _rows(teacher, open_store(store), ["T0"], None)
    keep, _ = teacher_draws(teacher, rows, 1, seed)
    held_out = np.random.default_rng(seed).permutation(len(keep))[: round(STUDENT.val_fraction * len(keep))]
    return int(fitting_rows(rows.arrays["class"][keep[held_out]]).sum())


def test_the_student_carries_a_calibration_fitted_on_rows_it_never_trained_on(tmp_path):
    root = tmp_path / "ens"
    save_ensemble(root, trained_members("deepz", (1, 2)))
    store = str(tmp_path / "s.zarr")
    write_store(store, 1, 1000)  # held out: 200 labelled rows, a third of them galaxies
    student = tmp_path / "student"
    args = ["distill", "--ensemble", str(root), "--store", store, "--epochs", "2", "--samples", "2"]
    assert main([*args, "--out", str(student)]) == 0
    ensemble = EnsembleDir(str(student)).read()
    recorded = ensemble.members["member"].metadata["calibration"]
    assert ensemble.calibration is not None
    assert ensemble.calibration.n_rows == held_out_galaxies(root, store, seed=0) < 150  # no stars
    assert recorded["fitted_on"] == "labelled rows held out of the student's training"
    assert ensemble.content_hash != ensemble.members["member"].content_hash  # the hash names the p(z)
    predictor = EnsemblePredictor.from_ensemble(ensemble)
    assert predictor.catalogue_metadata()["calibration"].startswith("width_temperature")

    few = tmp_path / "few"
    write_store(str(tmp_path / "few.zarr"), 1, 100)
    assert main([*args[:3], "--store", str(tmp_path / "few.zarr"), *args[5:], "--out", str(few)]) == 0
    assert EnsembleDir(str(few)).read().calibration is None
    assert "too few to calibrate" in load_bundle(few).metadata["calibration"]
    manifest = json.loads((student / "bundle.json").read_text())
    manifest["metadata"]["calibration"]["shift"] = "edited"
    (student / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="metadata's calibration is not one"):
        EnsembleDir(str(student)).read()
