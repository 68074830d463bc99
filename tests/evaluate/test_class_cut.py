"""The evaluation's star/galaxy/QSO cut and what it says about a p(z) that is only a member spread."""

from __future__ import annotations

import numpy as np

from distributed_pz.catalog import Flag, write_table
from distributed_pz.evaluate.score import evaluate_catalogues, pdf_note
from distributed_pz.metrics.pdf import GaussianMixturePDF


def catalogue(path, meta):
    """200 sources: 180 galaxies predicted well, 20 stars (z = 0) put at z = 0.5 and flagged by the class head."""
    n = 200
    z = np.linspace(0.1, 1.0, n)
    star = np.arange(n) >= 180
    z_true = np.where(star, 0.0, z)
    z_phot = np.where(star, 0.5, z + 0.01 * (1 + z) * np.sin(np.arange(n)))
    p_galaxy = np.where(star, 0.1, 0.9).astype(np.float32)
    columns = {
        "object_id": np.arange(n, dtype=np.int64),
        "z_phot": z_phot.astype(np.float32),
        "flags": np.where(p_galaxy < 0.5, int(Flag.NOT_GALAXY), 0).astype(np.int32),
        "p_galaxy": p_galaxy,
        "pdf_weights": np.ones((n, 1), np.float32),
        "pdf_means": z_phot[:, None].astype(np.float32),
        "pdf_sigmas": np.full((n, 1), 0.02, np.float32),
    }
    write_table(path, columns, meta)
    return {"object_id": columns["object_id"], "z_spec": z_true}


def test_the_class_cut_removes_the_flagged_stars_and_their_outliers(tmp_path):
    truth = catalogue(tmp_path / "cat.parquet", {"calibration": "none", "pdf_source": "member_spread"})
    summary = evaluate_catalogues({"m": tmp_path / "cat.parquet"}, truth, tmp_path / "report", plots=False)
    entry = summary["catalogues"]["m"]
    assert entry["point"]["outlier_fraction"] == 0.1
    cut = entry["class_cut"]
    assert cut["n_cut"] == 20 and cut["point"]["outlier_fraction"] == 0.0
    assert cut["pdf"]["pit"]["ks"] < entry["pdf"]["pit"]["ks"]
    assert "only the spread of the point-estimate members" in entry["pdf_note"]
    assert "Star/galaxy/QSO cut" in (tmp_path / "report" / "report.md").read_text()


def test_pdf_note_names_what_the_pdf_is():
    pdf = GaussianMixturePDF(np.ones((2, 1)), np.zeros((2, 1)), np.ones((2, 1)))
    assert pdf_note(None, {}) == "no PDF columns: PDF metrics skipped"
    assert pdf_note(pdf, {"calibration": "width_temperature in 1 z_mean bin, fitted on 10 rows"}) is None
    assert pdf_note(pdf, {}) is None  # another code's catalogue says nothing
    assert "uncalibrated" in pdf_note(pdf, {"calibration": "none", "pdf_source": "members_mixture"})
