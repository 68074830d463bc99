"""dpz distill: draws follow the teacher's p(z); the student is a bundle dpz predict takes."""

from __future__ import annotations

import numpy as np
import torch

from distributed_pz.cli import main
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.train.distill import teacher_draws
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
