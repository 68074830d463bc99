"""Smoke test of the real-catalogue benchmark on 400 SDSS MGS rows (skipped without shared data)."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.real_data import CATALOGUES, COLUMNS, main, missing_files, run_catalogue, shared_data_dir

SDSS = next(c for c in CATALOGUES if c.name == "sdss_mgs")
DATA = shared_data_dir()
needs_data = pytest.mark.skipif(bool(missing_files(DATA, (SDSS,))), reason=f"no SDSS MGS files under {DATA}")


@needs_data
def test_run_catalogue_scores_every_model_and_baseline(tmp_path):
    torch.set_num_threads(1)
    rows = run_catalogue(SDSS, DATA, tmp_path / "store", epochs=2, patience=2, max_rows=400, members=2)
    networks = [f"{n} ×2{r}" for n in ("deepz", "deepz_refmag", "gaznet_c9") for r in ("", " reweighted")]
    assert [r["model"] for r in rows] == [*networks, "knn", "random_forest"]
    assert rows[2]["features"] == "flux ratios over i + i mag"
    for row in rows:
        assert row["n_train"] + row["n_val"] == 400 and row["n_test"] == 400
        assert row["n_scored"] > 0
        names = ["nmad", "outlier_fraction", "bias", "sigma68"] + (
            ["pit_ks", "coverage_68", "crps"] if row["model"] in networks else []  # calibrated p(z)
        )
        assert all(math.isfinite(row[name]) for name in names), row
        assert set(row) >= {c for c in COLUMNS if c not in ("pit_ks", "coverage_68", "crps")}


@needs_data
def test_run_catalogue_trains_only_the_chosen_networks(tmp_path):
    torch.set_num_threads(1)
    rows = run_catalogue(
        SDSS,
        DATA,
        tmp_path / "store",
        epochs=1,
        patience=1,
        max_rows=400,
        members=1,
        networks=("deepz_refmag",),
    )
    assert [r["model"] for r in rows] == [
        "deepz_refmag ×1",
        "deepz_refmag ×1 reweighted",
        "knn",
        "random_forest",
    ]


def test_main_skips_without_shared_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DPZ_SHARED_DATA", str(tmp_path / "absent"))
    assert main(["--out", str(tmp_path / "table.md")]) == 0
    assert "skipped" in capsys.readouterr().out
    assert not (tmp_path / "table.md").exists()
