"""``dpz predict --format qp`` and ``dpz export --hats`` against the Parquet catalogue of the same run."""

from __future__ import annotations

import tomllib
import warnings

import numpy as np
import pytest

from distributed_pz.catalog import NO_ESTIMATE, NO_ESTIMATE_SIGMA, pdf_from_columns, read_catalog
from distributed_pz.cli import main
from distributed_pz.infer.cluster import connect
from tests.fixtures import fresh_members, save_ensemble, write_store

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

N_ROWS = 256


@pytest.fixture(scope="module")
def scheduler():
    """One Dask worker that every ``dpz predict`` of this module joins (one cluster start)."""
    with connect("local", workers=1) as client:
        yield client.scheduler.address


@pytest.fixture(scope="module")
def run(tmp_path_factory, scheduler):
    """A store of two tiles, an ensemble of two members, and one ``dpz predict`` run per format."""
    root = tmp_path_factory.mktemp("formats")
    save_ensemble(root / "ensemble", fresh_members("deepz", seeds=(1, 2)))
    write_store(str(root / "store"), n_tiles=2, n_rows=N_ROWS)
    for fmt in ("parquet", "qp"):
        argv = ["predict", "--store", str(root / "store"), "--bundle", str(root / "ensemble")]
        argv += ["--out", str(root / fmt), "--format", fmt, "--scheduler", scheduler, "--quiet"]
        assert main(argv) == 0
    return root


def test_qp_file_equals_the_parquet_catalogue(run):
    qp = pytest.importorskip("qp")
    for tile in ("T0", "T1"):
        parquet = read_catalog(run / "parquet" / f"{tile}.parquet")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # every PDF is defined: qp has nothing to warn about
            ensemble = qp.read(str(run / "qp" / f"{tile}.hdf5"))
            grid = np.linspace(0.0, 3.0, 61)
            qp_pdf, qp_cdf = ensemble.pdf(grid), ensemble.cdf(grid)
        cols, ancil = parquet.columns, ensemble.ancil
        assert ensemble.npdf == len(parquet) == N_ROWS
        assert np.array_equal(ancil["object_id"], cols["object_id"])
        assert np.array_equal(ancil["flags"], cols["flags"])
        for column, name in [
            ("z_phot", "zmode"),
            ("z_mean", "zmean"),
            ("z_lo68", "z_lo68"),
            ("z_hi68", "z_hi68"),
        ]:
            assert np.array_equal(ancil[name], cols[column], equal_nan=True), name
        ok = (cols["flags"] & NO_ESTIMATE) == 0
        assert ok.sum() > N_ROWS // 2
        assert np.allclose(ensemble.objdata["means"][ok], cols["pdf_means"][ok])
        assert np.allclose(ensemble.objdata["stds"][ok], cols["pdf_sigmas"][ok])
        pdf = pdf_from_columns(cols, parquet.meta).subset(ok)
        assert np.allclose(ancil["zmedian"][ok], pdf.quantile(0.5), atol=1e-5)
        assert np.all(np.isnan(ancil["zmedian"][~ok]))
        assert np.allclose(qp_pdf[ok], pdf.pdf(grid[None, :]), rtol=1e-4, atol=1e-6)  # qp mixture = ours
        assert np.allclose(qp_cdf[ok], pdf.cdf(grid[None, :]), atol=1e-6)
        if (~ok).any():  # no estimate: one broad Gaussian at 0, flagged
            assert np.allclose(ensemble.objdata["stds"][~ok][:, 0], NO_ESTIMATE_SIGMA)
            assert np.all(ensemble.objdata["weights"][~ok][:, 0] == 1)
        # qp's own mixture CDF at the catalogue's quantiles gives their probabilities back
        z = np.stack([cols["z_lo68"][ok], ancil["zmedian"][ok], cols["z_hi68"][ok]], axis=1)
        cdf = np.stack([ensemble[np.flatnonzero(ok)].cdf(z[:, [i]])[:, 0] for i in range(3)], axis=1)
        assert np.allclose(cdf, [0.158655, 0.5, 0.841345], atol=2e-4)


def test_hats_export_has_every_row_once(run, capsys):
    lsdb = pytest.importorskip("lsdb", reason="needs the [hats] extra")
    pytest.importorskip("hats_import")
    out = run / "hats" / "photoz"
    assert main(["export", "--run", str(run / "parquet"), "--hats", str(out)]) == 0
    assert f"{2 * N_ROWS} rows of 2 catalogues" in capsys.readouterr().out
    frame = lsdb.open_catalog(str(out)).compute()
    expected = [read_catalog(run / "parquet" / f"{t}.parquet").columns for t in ("T0", "T1")]
    ids = np.concatenate([c["object_id"] for c in expected])
    assert len(frame) == len(ids) and np.array_equal(np.sort(frame["object_id"].to_numpy()), np.sort(ids))
    by_id = frame.set_index("object_id").loc[ids]
    z_phot = np.concatenate([c["z_phot"] for c in expected])
    assert np.array_equal(by_id["z_phot"].to_numpy(dtype=np.float32), z_phot, equal_nan=True)
    assert np.allclose(by_id["ra"].to_numpy(), np.concatenate([c["ra"] for c in expected]))
    assert (out / "dpz-export.toml").is_file()
    assert main(["export", "--run", str(run / "parquet"), "--hats", str(out)]) == 1  # never overwritten


def test_predict_config_file_and_its_resolved_copy(run, tmp_path):
    config = tmp_path / "predict.toml"
    config.write_text(
        f'store = "{run / "store"}"\nbundle = "{run / "ensemble"}"\ntile = ["T1"]\n'
        "batch-size = 64\nodds_interval = 0.1\nworkers = 1\nquiet = true\n"
    )
    out = tmp_path / "run"
    assert main(["predict", "--config", str(config), "--out", str(out), "--batch-size", "32"]) == 0
    resolved = tomllib.loads((out / "dpz-predict.toml").read_text())
    assert (resolved["batch-size"], resolved["odds-interval"], resolved["tile"]) == (32, 0.1, ["T1"])
    assert sorted(p.name for p in out.glob("*.parquet")) == ["T1.parquet"]
    assert read_catalog(out / "T1.parquet").meta["odds_interval"] == 0.1
    again = tmp_path / "again"  # the resolved copy is itself a config file
    assert main(["predict", "--config", str(out / "dpz-predict.toml"), "--out", str(again)]) == 0
    assert np.array_equal(
        read_catalog(again / "T1.parquet").columns["z_phot"],
        read_catalog(out / "T1.parquet").columns["z_phot"],
    )
