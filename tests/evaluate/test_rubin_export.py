"""``dpz export --rubin``: Rubin DP1's ``object_photoz`` columns, read back with lsdb and qp as DP1 users do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

lsdb = pytest.importorskip("lsdb", reason="needs the [hats] extra")
qp = pytest.importorskip("qp")
pytest.importorskip("hats_import")

import warnings  # noqa: E402

from distributed_pz.catalog import (  # noqa: E402
    NO_ESTIMATE,
    NO_ESTIMATE_SIGMA,
    Flag,
    pdf_from_columns,
    read_catalog,
    to_arrow,
    write_table,
)
from distributed_pz.cli import main  # noqa: E402
from distributed_pz.evaluate.rubin import PDF_COLUMN, check_catalogues, rubin_table  # noqa: E402
from distributed_pz.infer.cluster import connect  # noqa: E402
from tests.fixtures import fresh_members, save_ensemble, write_store  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

N_ROWS = 256
TILES = ("T0", "T1")
POINTS = [
    f"dpz_z_{p}" for p in ("median", "mean", "mode", "err95_low", "err95_high", "err68_low", "err68_high")
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A ``dpz predict`` run (Parquet) of two tiles through a two-member DEEPZ ensemble."""
    root = tmp_path_factory.mktemp("rubin")
    save_ensemble(root / "ensemble", fresh_members("deepz", seeds=(1, 2)))
    write_store(str(root / "store"), n_tiles=len(TILES), n_rows=N_ROWS)
    with connect("local", workers=1) as client:
        argv = ["predict", "--store", str(root / "store"), "--bundle", str(root / "ensemble")]
        argv += ["--out", str(root / "run"), "--scheduler", client.scheduler.address, "--quiet"]
        assert main(argv) == 0
    return root / "run"


def exported(run, out, *extra) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``dpz export --rubin`` read with lsdb, and the run's catalogue columns in the same row order."""
    assert main(["export", "--run", str(run), "--hats", str(out), "--rubin", *extra]) == 0
    frame = lsdb.open_catalog(str(out)).compute()
    tables = [read_catalog(run / f"{t}.parquet").columns for t in TILES]
    columns = {name: np.concatenate([t[name] for t in tables]) for name in tables[0]}
    rows = pd.Index(columns["object_id"]).get_indexer(frame["object_id"])
    assert len(frame) == len(TILES) * N_ROWS and sorted(rows) == list(range(len(frame)))
    return frame, {name: values[rows] for name, values in columns.items()}


def dp1_ensemble(frame: pd.DataFrame):
    """The DP1 tutorial's recipe (lsdb docs, "RAIL photo-z estimates for Rubin DP1"): the nested
    column's fields stacked row by row into ``qp.Ensemble(qp.mixmod_gen, ...)``."""
    nested = frame[PDF_COLUMN]
    data = {field: np.asarray([row[field] for row in nested]) for field in ("means", "stds", "weights")}
    return qp.Ensemble(qp.mixmod_gen, data=data)


def test_dp1_recipe_rebuilds_the_catalogue_mixture(run, tmp_path):
    frame, cat = exported(run, tmp_path / "photoz")
    assert list(frame.columns) == ["object_id", "ra", "dec", "flags", *POINTS, PDF_COLUMN]
    assert frame.nested_columns == [PDF_COLUMN]
    assert frame[PDF_COLUMN].nest.columns == ["means", "stds", "weights"]
    ensemble = dp1_ensemble(frame)
    ok = (cat["flags"] & NO_ESTIMATE) == 0
    assert ensemble.npdf == len(frame) and ok.sum() > N_ROWS
    grid = np.linspace(0.0, 3.0, 61)
    ours = pdf_from_columns(cat, {}).subset(ok)
    assert np.allclose(ensemble.pdf(grid)[ok], ours.pdf(grid[None, :]), rtol=1e-6, atol=1e-9)
    for name in ("object_id", "flags"):
        assert np.array_equal(frame[name].to_numpy(), cat[name])
    for point, column in [
        ("mode", "z_phot"),
        ("mean", "z_mean"),
        ("err68_low", "z_lo68"),
        ("err68_high", "z_hi68"),
    ]:
        assert np.array_equal(
            frame[f"dpz_z_{point}"].to_numpy(), cat[column].astype(np.float64), equal_nan=True
        )
    for point, q in [("err95_low", 0.025), ("median", 0.5), ("err95_high", 0.975)]:
        z = frame[f"dpz_z_{point}"].to_numpy()
        assert np.all(np.isnan(z[~ok]))
        assert np.allclose(ours.cdf(z[ok]), q, atol=1e-5), point  # interval bounds, in redshift
    low, high = (frame[f"dpz_z_err{c}"].to_numpy()[ok] for c in ("95_low", "95_high"))
    assert np.all((low < cat["z_lo68"][ok]) & (cat["z_hi68"][ok] < high))


def test_pdf_components_keep_each_source_mean_and_width(run, tmp_path):
    frame, cat = exported(run, tmp_path / "photoz", "--pdf-components", "3")
    data = dp1_ensemble(frame).objdata
    assert data["weights"].shape == (len(frame), 3)
    ok = (cat["flags"] & NO_ESTIMATE) == 0
    w, mu, sd = (data[f][ok] for f in ("weights", "means", "stds"))
    mean = (w * mu).sum(axis=1)
    assert np.allclose(w.sum(axis=1), 1.0) and np.allclose(mean, cat["z_mean"][ok], atol=1e-5)
    std = np.sqrt((w * (sd**2 + mu**2)).sum(axis=1) - mean**2)
    assert np.allclose(std, cat["z_std"][ok], rtol=1e-3)
    assert np.array_equal(frame["dpz_z_mode"].to_numpy(), cat["z_phot"].astype(np.float64), equal_nan=True)


def test_refused_in_one_line_before_anything_is_written(run, tmp_path, capsys):
    out = tmp_path / "photoz"
    assert main(["export", "--run", str(run), "--hats", str(out), "--pdf-components", "3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dpz export: error: --pdf-components reduces the nested p(z) of --rubin; pass --rubin too"]
    assert not out.exists()
    grid = tmp_path / "grid.parquet"
    columns = {"object_id": np.arange(3), "ra": np.zeros(3), "dec": np.zeros(3), "pdf": np.ones((3, 4))}
    write_table(grid, columns, {"z_grid": [0.0, 1.0, 2.0, 3.0]})
    with pytest.raises(
        ValueError, match=r"grid.parquet: --rubin needs the catalogue's Gaussian-mixture p\(z\)"
    ):
        check_catalogues([str(grid)])


def test_a_source_without_estimate_holds_the_qp_placeholder():
    nan = np.float32("nan")
    columns = {
        "object_id": np.array([7, 8]),
        "ra": np.array([10.0, 11.0]),
        "dec": np.array([-1.0, 1.0]),
        "z_phot": np.array([0.5, nan], np.float32),
        "z_mean": np.array([0.5, nan], np.float32),
        "z_lo68": np.array([0.4, nan], np.float32),
        "z_hi68": np.array([0.6, nan], np.float32),
        "flags": np.array([0, int(Flag.NO_PHOTOMETRY)], np.int32),
        "pdf_weights": np.array([[0.5, 0.5], [0.0, 0.0]], np.float32),
        "pdf_means": np.array([[0.45, 0.55], [nan, nan]], np.float32),
        "pdf_sigmas": np.array([[0.05, 0.05], [nan, nan]], np.float32),
    }
    table = rubin_table(to_arrow(columns))
    points = [c for c in table.column_names if c.startswith("dpz_z_")]
    assert all(np.isnan(table.column(c).to_numpy()[1]) for c in points)
    assert np.isclose(table.column("dpz_z_median").to_numpy()[0], 0.5, atol=1e-6)
    mixture = table.column(PDF_COLUMN).combine_chunks()
    weights, means, stds = (mixture.field(f)[1].as_py() for f in ("weights", "means", "stds"))
    assert weights == [1.0, 0.0] and (means[0], stds[0]) == (0.0, NO_ESTIMATE_SIGMA)  # one broad Gaussian
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every row a normalised mixture: nothing for qp to warn about
        data = {f: np.asarray(mixture.field(f).to_pylist()) for f in ("means", "stds", "weights")}
        assert np.all(np.isfinite(qp.Ensemble(qp.mixmod_gen, data=data).pdf(np.linspace(0, 3, 7))))
