"""The pre-training benchmark: nested labelled sets, and a tiny SDSS MGS run (skipped without shared data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmarks.pretrain_real import labelled_sets, main, run_catalogue
from benchmarks.real_data import CATALOGUES, missing_files, shared_data_dir
from distributed_pz.survey.store.tiles import TileArrays

SDSS = next(c for c in CATALOGUES if c.name == "sdss_mgs")
DATA = shared_data_dir()
needs_data = pytest.mark.skipif(bool(missing_files(DATA, (SDSS,))), reason=f"no SDSS MGS files under {DATA}")


def test_labelled_sets_are_nested_with_disjoint_validation_rows():
    pool = TileArrays({"object_id": np.arange(5000), "mag": np.zeros((5000, 1))}, ("r",))
    sets = labelled_sets(pool, [300, 1000, 3000], seed=0)
    ids = {n: [set(part.arrays["object_id"]) for part in parts] for n, parts in sets.items()}
    for n, (fit, val) in ids.items():
        assert (len(fit), len(val)) == (n - round(0.2 * n), round(0.2 * n)) and not fit & val
    for small, large in ((300, 1000), (1000, 3000)):
        assert ids[small][0] <= ids[large][0] and ids[small][1] <= ids[large][1]
    with pytest.raises(ValueError, match="too small"):
        labelled_sets(pool, [6000], seed=0)


@needs_data
def test_run_catalogue_scores_scratch_and_pretrained_on_the_same_rows(tmp_path):
    torch.set_num_threads(1)
    rows = run_catalogue(
        SDSS,
        DATA,
        tmp_path / "store",
        sizes=[250],
        members=1,
        min_epochs=1,
        steps=2,
        sim_sources=800,
        pretrain_epochs=1,
    )
    assert [(r["n_train"], r["init"]) for r in rows] == [
        (0, "simulation only"),
        (250, "scratch"),
        (250, "pretrained"),
    ]
    assert len({r["n_scored"] for r in rows}) == 1 and rows[1]["n_val"] == 50
    for row in rows:
        assert all(math.isfinite(row[k]) for k in ("nmad", "outlier_fraction", "pit_ks", "coverage_68")), row


def test_main_skips_without_shared_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DPZ_SHARED_DATA", str(tmp_path / "absent"))
    assert main(["--out", str(tmp_path / "table.md")]) == 0
    assert "skipped" in capsys.readouterr().out
