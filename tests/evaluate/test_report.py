"""End to end: synthetic catalogues and truth on disk (Parquet, FITS, CSV) → evaluate → report."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from astropy.io import fits
from astropy.table import Table

from distributed_pz.catalog import read_catalog
from distributed_pz.evaluate.cli import OPTIONS, evaluate_from_args
from distributed_pz.evaluate.score import (
    EvaluationSettings,
    evaluate_catalogues,
    load_truth,
    truth_from_arrays,
)
from distributed_pz.metrics import (
    GaussianMixturePDF,
    GridPDF,
    binned_point_metrics,
    completeness_curve,
    interval_coverage,
    odds,
    pit,
    pit_coverage,
    pit_histogram,
    pit_uniformity,
    point_metrics,
    rows_to_dicts,
)
from distributed_pz.options import add_options

Z_GRID = np.round(np.linspace(0.0, 3.5, 351), 6)


def make_sources(n: int = 2000, seed: int = 0, outlier_rate: float = 0.05) -> dict[str, np.ndarray]:
    """Sources whose true redshift is drawn from their own PDF (calibrated), plus outliers.

    Two-component mixtures around a centre; the width grows with magnitude; a fraction
    ``outlier_rate`` of the true redshifts is redrawn uniformly (outliers the PDFs miss).
    """
    rng = np.random.default_rng(seed)
    mag = rng.uniform(18.0, 24.0, n)
    centre = rng.uniform(0.1, 2.5, n)
    sigma = (0.01 + 0.04 * (mag - 18.0) / 6.0) * (1.0 + centre)
    weights = np.tile([0.8, 0.2], (n, 1))
    means = np.stack([centre, centre + 2.5 * sigma], axis=1)
    sigmas = np.stack([sigma, 2.0 * sigma], axis=1)
    component = (rng.uniform(size=n) < 0.2).astype(int)
    z_spec = rng.normal(means[np.arange(n), component], sigmas[np.arange(n), component])
    outlier = rng.uniform(size=n) < outlier_rate
    z_spec[outlier] = rng.uniform(0.0, 3.0, outlier.sum())
    return {
        "object_id": np.arange(10_000, 10_000 + n, dtype=np.int64),
        "mag_r": mag,
        "z_spec": np.clip(z_spec, 0.0, None),
        "weights": weights,
        "means": means,
        "sigmas": sigmas,
    }


def catalog_columns(
    src: dict[str, np.ndarray], sigma_scale: float = 1.0, seed: int = 1
) -> dict[str, np.ndarray]:
    """Catalogue columns of the sources' PDFs (σ scaled), with 2 % flagged rows."""
    pdf = GaussianMixturePDF(src["weights"], src["means"], src["sigmas"] * sigma_scale)
    n = len(pdf)
    flags = np.zeros(n, np.uint16)
    flags[np.random.default_rng(seed).uniform(size=n) < 0.02] = 1
    return {
        "object_id": src["object_id"],
        "ra": np.full(n, 150.0),
        "dec": np.full(n, 2.0),
        "z_phot": pdf.mode(),
        "z_mean": pdf.mean(),
        "z_std": pdf.std(),
        "z_lo68": pdf.quantile(0.16),
        "z_hi68": pdf.quantile(0.84),
        "odds": odds(pdf),
        "flags": flags,
        "n_members": np.full(n, 10, np.int32),
        "pdf_weights": pdf.weights,
        "pdf_means": pdf.means,
        "pdf_sigmas": pdf.sigmas,
    }


def write_parquet(path, columns: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> None:
    arrays = {
        name: pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), v.shape[1])
        if v.ndim == 2
        else pa.array(v)
        for name, v in columns.items()
    }
    pq.write_table(pa.table(arrays).replace_schema_metadata(metadata), path)


@pytest.fixture(scope="module")
def sources():
    return make_sources()


@pytest.fixture(scope="module")
def mixture(sources):
    """The calibrated catalogue's columns (all sources)."""
    return catalog_columns(sources)


@pytest.fixture(scope="module")
def files(tmp_path_factory, sources, mixture):
    """Three catalogues and a truth table: mixture (Parquet), grid (FITS), point-only (Parquet)."""
    d = tmp_path_factory.mktemp("eval")
    n = sources["z_spec"].size
    meta = {"bundle_hash": "abc123"}
    write_parquet(d / "mixture.parquet", {k: v[50:] for k, v in mixture.items()}, meta)  # 50 not in catalogue
    narrow = catalog_columns(sources, sigma_scale=0.5)
    grid_pdf = GaussianMixturePDF(narrow["pdf_weights"], narrow["pdf_means"], narrow["pdf_sigmas"])
    grid_cols = {k: v for k, v in narrow.items() if not k.startswith("pdf_")}
    grid_cols["pdf"] = grid_pdf.pdf(Z_GRID[None, :]).astype(np.float32)
    table = Table(grid_cols)
    table.meta["Z_GRID"] = json.dumps(Z_GRID.tolist())
    table.write(d / "grid.fits")
    point = {k: mixture[k][50:] for k in ("object_id", "ra", "dec", "z_phot", "flags")}
    write_parquet(d / "point.parquet", point)
    truth = {k: sources[k][: n - 30].copy() for k in ("object_id", "z_spec", "mag_r")}  # 30 without truth
    truth["z_spec"][::40] = np.nan  # no spectroscopic redshift
    write_parquet(d / "truth.parquet", truth)
    Table(truth).write(d / "truth.csv", format="ascii.csv")
    return d


@pytest.fixture(scope="module")
def report(files):
    catalogs = {
        "mixture": files / "mixture.parquet",
        "grid": files / "grid.fits",
        "point": files / "point.parquet",
    }
    return evaluate_catalogues(catalogs, files / "truth.parquet", files / "report", title="Synthetic test")


def _used(sources, catalog_ids, flags, z_phot_full):
    """Independent join: rows in catalogue and truth, unflagged, with z_spec."""
    n = sources["z_spec"].size
    in_truth = np.zeros(n, bool)
    in_truth[: n - 30] = True
    z_spec = sources["z_spec"].copy()
    z_spec[np.arange(n - 30)[::40]] = np.nan
    in_cat = np.isin(sources["object_id"], catalog_ids)
    flag_full = np.zeros(n, int)
    flag_full[np.searchsorted(sources["object_id"], catalog_ids)] = flags
    keep = in_cat & in_truth & (flag_full == 0) & np.isfinite(z_spec)
    return keep, z_spec


def _assert_rows_equal(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx({k: (None if np.isnan(v) else v) for k, v in w.items()})


def test_report_files_exist_and_json_is_strict(report, files):
    out = files / "report"
    for name in ("summary.json", "report.md", "density.png", "pit.png", "binned.png", "completeness.png"):
        assert (out / name).stat().st_size > 1000, name
    assert set(report["files"]) == {"json", "markdown", "density", "pit", "binned", "completeness"}
    json.loads((out / "summary.json").read_text(), parse_constant=pytest.fail)  # no NaN literals
    md = (out / "report.md").read_text()
    for label in ("mixture", "grid", "point"):
        assert f"| {label} |" in md
    assert "point: no PDF columns: PDF metrics skipped" in md
    assert "bundle_hash: abc123" in md and report["catalogues"]["mixture"]["meta"] == {
        "bundle_hash": "abc123"
    }
    assert "![" in md and "density.png" in md


def test_counts_and_point_metrics_equal_direct_calls(report, files, sources, mixture):
    summary = json.loads((files / "report" / "summary.json").read_text())
    keep, z_spec = _used(sources, sources["object_id"][50:], mixture["flags"][50:], mixture["z_phot"])
    c = summary["catalogues"]["mixture"]
    n = sources["z_spec"].size
    assert c["counts"] == {
        "n_catalog": n - 50,
        "n_truth": n - 30,
        "n_matched": n - 80,
        "n_flagged": int(np.sum(mixture["flags"][50 : n - 30] != 0)),
        "n_no_zspec": int(np.sum(~np.isfinite(z_spec[50 : n - 30]) & (mixture["flags"][50 : n - 30] == 0))),
        "n_bad_zphot": 0,
        "n_used": int(keep.sum()),
    }
    zs, zp = z_spec[keep], mixture["z_phot"][keep]
    assert c["point"] == pytest.approx(point_metrics(zp, zs))
    assert c["interval_coverage_68"] == pytest.approx(
        interval_coverage(mixture["z_lo68"][keep], mixture["z_hi68"][keep], zs)
    )
    _assert_rows_equal(
        c["binned"]["z_spec"], rows_to_dicts(binned_point_metrics(zp, zs, zs, summary["z_edges"]))
    )
    mag_bins = rows_to_dicts(binned_point_metrics(zp, zs, sources["mag_r"][keep], summary["mag_edges"]))
    assert [r["n"] for r in c["binned"]["mag"]] == [r["n"] for r in mag_bins]
    assert summary["catalogues"]["point"]["point"] == pytest.approx(point_metrics(zp, zs))  # same z_phot


def test_pdf_metrics_equal_direct_calls(report, files, sources, mixture):
    summary = json.loads((files / "report" / "summary.json").read_text())
    keep, z_spec = _used(sources, sources["object_id"][50:], mixture["flags"][50:], mixture["z_phot"])
    pdf = GaussianMixturePDF(mixture["pdf_weights"], mixture["pdf_means"], mixture["pdf_sigmas"]).subset(keep)
    zs = z_spec[keep]
    u = pit(pdf, zs)
    c = summary["catalogues"]["mixture"]["pdf"]
    assert c["representation"] == "gaussian_mixture" and c["n"] == keep.sum()
    assert c["pit"] == pytest.approx(pit_uniformity(u))
    assert c["crps"] == pytest.approx(pdf.crps(zs).mean())
    assert c["coverage_68"] == pytest.approx(pit_coverage(u, 0.68))
    assert c["coverage_95"] == pytest.approx(pit_coverage(u, 0.95))
    assert c["pit_histogram"]["density"] == pytest.approx(pit_histogram(u, 20)[0].tolist())
    curve = rows_to_dicts(completeness_curve(odds(pdf), mixture["z_phot"][keep], zs))
    _assert_rows_equal(summary["catalogues"]["mixture"]["odds"]["curve"], curve)
    # the grid catalogue (FITS, float32 densities) is read back as a grid PDF
    grid = read_catalog(files / "grid.fits")
    keep_g, _ = _used(sources, grid.columns["object_id"], grid.columns["flags"], None)
    gpdf = GridPDF(grid.meta["z_grid"], grid.columns["pdf"][keep_g])
    g = summary["catalogues"]["grid"]["pdf"]
    assert g["representation"] == "grid"
    assert g["crps"] == pytest.approx(gpdf.crps(z_spec[keep_g]).mean())
    assert g["coverage_68"] == pytest.approx(pit_coverage(pit(gpdf, z_spec[keep_g]), 0.68))
    # the known answer: 95 % of the truths drawn from their PDF, 5 % outliers; the grid PDFs are too narrow
    assert c["coverage_68"] == pytest.approx(0.95 * 0.68, abs=0.04)
    assert g["coverage_68"] < c["coverage_68"] - 0.08
    assert c["pit"]["ks"] < g["pit"]["ks"]
    assert summary["catalogues"]["point"]["pdf"] is None and summary["catalogues"]["point"]["odds"] is None


def test_fits_and_csv_truth_give_the_same_numbers(files, report):
    small = {"mixture": files / "mixture.parquet"}
    csv = evaluate_catalogues(small, files / "truth.csv", files / "report_csv", plots=False)
    assert csv["catalogues"]["mixture"]["point"] == report["catalogues"]["mixture"]["point"]
    truth = read_catalog(files / "truth.parquet").columns
    loader = evaluate_catalogues(
        {"grid": files / "grid.fits"},
        lambda: truth_from_arrays(
            truth["object_id"], truth["z_spec"], np.stack([truth["mag_r"]] * 2, 1), ["g", "r"], "r"
        ),
        files / "report_loader",
        plots=False,
    )
    assert loader["catalogues"]["grid"]["point"] == report["catalogues"]["grid"]["point"]
    assert loader["truth"]["mag_column"] == "mag_r"


def test_odds_column_is_used_without_pdfs(files, sources):
    cat = {"object_id": sources["object_id"], "z_phot": sources["z_spec"] + 0.01, "odds": sources["mag_r"]}
    write_parquet(files / "odds_only.parquet", cat)
    truth = {k: sources[k] for k in ("object_id", "z_spec")}
    summary = evaluate_catalogues({"o": files / "odds_only.parquet"}, truth, files / "odds_only", plots=False)
    o = summary["catalogues"]["o"]
    assert o["pdf"] is None and o["odds"]["source"] == "column"
    assert summary["truth"]["mag_column"] is None and "mag" not in o["binned"]
    curve = completeness_curve(cat["odds"], cat["z_phot"], sources["z_spec"])
    _assert_rows_equal(o["odds"]["curve"], rows_to_dicts(curve))


def test_odds_is_the_catalogues_own_and_a_recomputation_uses_the_same_definition(files, mixture):
    pdf = GaussianMixturePDF(mixture["pdf_weights"], mixture["pdf_means"], mixture["pdf_sigmas"])
    columns = {**mixture, "odds": odds(pdf, 0.05, mode=mixture["z_phot"])}
    write_parquet(files / "odds05.parquet", columns, {"odds_interval": "0.05"})
    without = {k: v for k, v in columns.items() if k != "odds"}
    write_parquet(files / "no_odds.parquet", without, {"odds_interval": "0.05"})
    write_parquet(files / "no_odds_no_meta.parquet", without)
    truth = files / "truth.parquet"

    def run(path, name, **settings):
        summary = evaluate_catalogues(
            {"m": path}, truth, files / name, settings=EvaluationSettings(**settings), plots=False
        )
        return summary["catalogues"]["m"]["odds"], (files / name / "report.md").read_text()

    own, md = run(files / "odds05.parquet", "odds_own")
    assert (own["source"], own["interval"]) == ("column", 0.05)
    assert "the catalogue's own `odds` column (Δz = 0.05)" in md
    again, md = run(files / "odds05.parquet", "odds_again", odds_interval=0.05)
    assert (again["source"], again["interval"]) == (
        "pdf",
        0.05,
    ) and "recomputed from the PDF (Δz = 0.05)" in md
    _assert_rows_equal(
        again["curve"], [{k: np.nan if v is None else v for k, v in r.items()} for r in own["curve"]]
    )
    from_meta, _ = run(files / "no_odds.parquet", "odds_meta")
    assert (from_meta["source"], from_meta["interval"]) == ("pdf", 0.05) and from_meta["mean"] == own["mean"]
    default, _ = run(files / "no_odds_no_meta.parquet", "odds_default")
    assert (default["source"], default["interval"]) == ("pdf", 0.06)


def test_catalog_io_reads_lists_metadata_and_grid_extensions(tmp_path):
    cols = {
        "object_id": np.arange(3),
        "w": np.arange(6.0).reshape(3, 2),
        "flags": np.array([0, 1, 2], np.uint32),
    }
    write_parquet(tmp_path / "a.parquet", cols, {"z_grid": "[0, 0.5, 1.0]", "bundle": "abc"})
    a = read_catalog(tmp_path / "a.parquet", columns=["object_id", "w", "absent"])
    assert set(a.columns) == {"object_id", "w"} and len(a) == 3
    np.testing.assert_array_equal(a.columns["w"], cols["w"])
    assert a.meta["bundle"] == "abc" and a.meta["z_grid"].tolist() == [0, 0.5, 1.0]
    hdul = fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU(Table(cols)), fits.ImageHDU(np.array([0.0, 1.0]), name="Z_GRID")]
    )
    hdul.writeto(tmp_path / "b.fits")
    b = read_catalog(tmp_path / "b.fits")
    assert b.columns["flags"].dtype == np.uint32 and b.columns["w"].shape == (3, 2)
    assert b.meta["z_grid"].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="unknown table format"):
        read_catalog(tmp_path / "c.txt")


def test_truth_errors_are_explicit(files):
    with pytest.raises(ValueError, match="no magnitude column 'mag_i'"):
        load_truth(files / "truth.parquet", mag_column="mag_i")
    with pytest.raises(ValueError, match="z_spec"):
        load_truth({"object_id": np.arange(3)})
    dup = {"object_id": np.array([10_000, 10_000]), "z_spec": np.array([0.1, 0.2])}
    with pytest.raises(ValueError, match="not unique"):
        evaluate_catalogues({"m": files / "point.parquet"}, dup, files / "dup")


def test_cli_arguments_run_the_same_evaluation(files, report):
    parser = argparse.ArgumentParser()
    add_options(parser, OPTIONS)
    args = parser.parse_args(
        [
            "--catalog",
            f"mix={files / 'mixture.parquet'}",
            "--truth",
            str(files / "truth.parquet"),
            "--out",
            str(files / "cli"),
            "--no-plots",
        ]
    )
    assert args.odds_interval is None  # the catalogue's own odds column
    given = parser.parse_args(["--catalog", "x", "--truth", "t", "--odds-interval", "0.1"])
    assert given.odds_interval == 0.1
    summary = evaluate_from_args(args)
    assert summary["catalogues"]["mix"]["point"] == report["catalogues"]["mixture"]["point"]
    assert (files / "cli" / "report.md").exists() and not (files / "cli" / "density.png").exists()
