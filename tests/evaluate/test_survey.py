"""Evaluation as a survey is used: per tile and pooled, galaxies apart, from a run folder of tiles."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from distributed_pz.catalog import write_table
from distributed_pz.cli import build_parser
from distributed_pz.evaluate.cli import evaluate_from_args
from distributed_pz.evaluate.survey import survey_summary
from distributed_pz.metrics.pdf import GaussianMixturePDF


def _tile_sample(rng, n, shift):
    z = rng.uniform(0.1, 1.0, n)
    z_phot = z + shift * (1 + z) + rng.normal(0, 0.03, n) * (1 + z)
    return z, z_phot


def test_a_tile_wide_bias_shows_per_tile_not_pooled():
    rng = np.random.default_rng(0)
    parts = [_tile_sample(rng, 2000, s) for s in (-0.03, 0.0, 0.03)]
    z = np.concatenate([p[0] for p in parts])
    z_phot = np.concatenate([p[1] for p in parts])
    tile = np.repeat(["A", "B", "C"], 2000)
    cls = np.zeros(len(z), np.uint8)
    cls[::10] = 1  # stars, z_phot arbitrary: left out of every galaxy metric
    z_phot[cls == 1] = 3.0
    sigma = 0.03 * (1 + z_phot)[:, None]  # the width of the scatter, not of the tiles' bias
    pdf = GaussianMixturePDF(np.ones((len(z), 1)), z_phot[:, None], sigma)
    out = survey_summary(z_phot, z, tile, cls, pdf, (0.15, 0.02))
    assert out["counts"] == {"galaxies": 5400, "stars": 600, "QSOs": 0}
    assert out["pooled"]["n"] == 5400 and out["pooled"]["outlier_fraction"] < 0.01
    b = out["tiles"]["B"]
    assert abs(b["bias"]) < 0.005 and b["pit_ks"] < 0.05
    for name in ("A", "C"):
        assert abs(out["tiles"][name]["bias_over_sigma68"]) > 0.5 and out["tiles"][name]["pit_ks"] > 0.2
    assert out["spread"]["abs_bias_over_sigma68_max"] > 0.5 and out["spread"]["n_tiles"] == 3
    assert out["spread"]["ks_median"] > out["pooled"]["pit_ks"] / 2


def test_a_tile_s_shift_is_its_median_not_pulled_by_outliers():
    rng = np.random.default_rng(2)
    z, z_phot = _tile_sample(rng, 2000, 0.0)
    z_phot[:200] = 0.02  # catastrophic outliers, all low
    pdf = GaussianMixturePDF(np.ones((len(z), 1)), z_phot[:, None], 0.03 * (1 + z_phot)[:, None])
    tile = survey_summary(z_phot, z, np.full(len(z), "A"), None, pdf, (0.15, 0.02))["tiles"]["A"]
    assert abs(tile["bias_over_sigma68"]) < 0.1


def test_dpz_evaluate_reads_a_folder_of_tile_catalogues(tmp_path):
    rng = np.random.default_rng(1)
    ids, zs = [], []
    run = tmp_path / "run"
    run.mkdir()
    for i, shift in enumerate((0.0, 0.05)):
        z, z_phot = _tile_sample(rng, 500, shift)
        object_id = np.arange(500) + 1000 * i
        columns = {"object_id": object_id, "z_phot": z_phot.astype(np.float32)}
        write_table(run / f"T{i}.parquet", columns, {"tile": f"T{i}"})
        ids.append(object_id)
        zs.append(z)
    (run / "manifest.json").write_text("{}")
    truth = {
        "object_id": np.concatenate(ids),
        "z_spec": np.concatenate(zs),
        "class": np.zeros(1000, np.uint8),
    }
    pq.write_table(pa.table(truth), tmp_path / "truth.parquet")
    args = build_parser().parse_args(
        [
            "evaluate",
            "--catalog",
            f"m={run}",
            "--truth",
            str(tmp_path / "truth.parquet"),
            "--out",
            str(tmp_path / "ev"),
            "--no-plots",
        ]
    )
    evaluate_from_args(args)
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    survey = summary["catalogues"]["m"]["survey"]
    assert set(survey["tiles"]) == {"T0", "T1"} and survey["pooled"]["n"] == 1000
    assert survey["tiles"]["T1"]["bias"] > 0.04 > abs(survey["tiles"]["T0"]["bias"])
    assert "## Across the survey" in (tmp_path / "ev" / "report.md").read_text()
