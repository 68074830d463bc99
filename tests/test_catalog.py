"""Catalogue files: Parquet and FITS round trips, atomic commits, the qp reading."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from distributed_pz import catalog as fl
from distributed_pz.catalog import commit_parts, read_catalog, write_part
from distributed_pz.infer.stream import catalogue_metadata
from distributed_pz.models.predictor import PredictOptions


def columns(n: int, k: int = 4, start: int = 0, grid: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(start)
    out = {
        "object_id": np.arange(start, start + n, dtype=np.int64),
        "ra": rng.uniform(0, 1, n),
        "dec": rng.uniform(0, 1, n),
        **{
            c: rng.uniform(0, 2, n).astype(np.float32)
            for c in ("z_phot", "z_mean", "z_std", "z_lo68", "z_hi68")
        },
        "odds": rng.uniform(0, 1, n).astype(np.float32),
        "flags": np.zeros(n, np.int32),
        "n_members": np.full(n, 2, np.int16),
    }
    if grid:
        out["pdf"] = rng.uniform(0, 1, (n, grid)).astype(np.float32)
    else:
        w = rng.dirichlet(np.ones(k), n).astype(np.float32)
        out.update(pdf_weights=w, pdf_means=rng.uniform(0, 2, (n, k)).astype(np.float32))
        out["pdf_sigmas"] = rng.uniform(0.05, 0.2, (n, k)).astype(np.float32)
    return out


@pytest.mark.parametrize("fmt", ["parquet", "fits"])
def test_parts_commit_in_order_with_units_and_metadata(tmp_path, fmt):
    parts = [write_part(tmp_path / f"p{i}.parquet", columns(5, start=5 * i)) for i in range(3)]
    meta = catalogue_metadata("abc123", "/data/store", "T0", PredictOptions(), n_members=2)
    path = tmp_path / f"T0.{fmt}"
    assert commit_parts(parts, path, fmt, meta) == 15
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(p.name for p in parts), path.name])
    table = read_catalog(path)
    assert np.array_equal(table.columns["object_id"], np.arange(15))
    expected = np.concatenate([columns(5, start=5 * i)["pdf_means"] for i in range(3)])
    assert np.array_equal(table.columns["pdf_means"], expected)
    if fmt == "parquet":
        assert table.meta["bundle_hash"] == "abc123" and table.meta["tile"] == "T0"
        assert table.meta["flag_bits"][str(fl.Flag.NO_PHOTOMETRY)].startswith("NO_PHOTOMETRY")
        schema = pq.read_schema(path)
        assert schema.field("ra").metadata[b"unit"] == b"deg"
        assert schema.field("pdf_weights").type.list_size == 4
    else:
        header = fits.getheader(path, "CATALOG")
        assert header["BUNDLE"] == "abc123" and header["TILE"] == "T0" and header["TUNIT2"] == "deg"
        assert header["FLAGBIT0"].startswith("1: NO_PHOTOMETRY")


@pytest.mark.parametrize("fmt", ["parquet", "fits"])
def test_grid_pdf_keeps_its_grid(tmp_path, fmt):
    options = PredictOptions(pdf="grid", z_grid=(0.0, 2.0, 6))
    part = write_part(tmp_path / "p.parquet", columns(3, grid=6))
    commit_parts([part], tmp_path / f"T.{fmt}", fmt, catalogue_metadata("h", "s", "T", options))
    table = read_catalog(tmp_path / f"T.{fmt}")
    assert np.allclose(table.meta["z_grid"], np.linspace(0, 2, 6)) and table.columns["pdf"].shape == (3, 6)


def test_a_failed_commit_leaves_no_file(tmp_path):
    part = write_part(tmp_path / "p.parquet", columns(3))
    with pytest.raises(FileNotFoundError):
        commit_parts([part, tmp_path / "missing.parquet"], tmp_path / "T.parquet", "parquet", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.parquet"]


def test_catalogue_pdf_reads_into_qp(tmp_path):
    qp = pytest.importorskip("qp")
    from distributed_pz.catalog import read_qp

    data = columns(4, k=3)
    part = write_part(tmp_path / "p.parquet", data)
    commit_parts(
        [part], tmp_path / "T.parquet", "parquet", catalogue_metadata("h", "s", "T", PredictOptions())
    )
    ensemble = read_qp(tmp_path / "T.parquet")
    # the exact call behind read_qp, for readers without distributed_pz:
    direct = qp.Ensemble(
        qp.mixmod,
        data={"weights": data["pdf_weights"], "means": data["pdf_means"], "stds": data["pdf_sigmas"]},
    )
    z = np.linspace(0, 2, 7)
    assert ensemble.npdf == 4
    assert np.allclose(ensemble.pdf(z), direct.pdf(z), rtol=1e-5)
    manual = [
        np.sum(
            data["pdf_weights"][i]
            * np.exp(-0.5 * ((1.0 - data["pdf_means"][i]) / data["pdf_sigmas"][i]) ** 2)
            / (np.sqrt(2 * np.pi) * data["pdf_sigmas"][i])
        )
        for i in range(4)
    ]
    assert np.allclose(ensemble.pdf(np.array([1.0])).ravel(), manual, rtol=1e-4)
