"""The whole chain with every path an ``s3://`` URL, against a real S3 server (moto) on loopback.

simulate → train → predict → evaluate → export, then the same commands again: the rerun finds
the ensemble and the catalogues complete and redoes nothing. Nothing stands in for S3: moto's
server speaks the S3 protocol over HTTP on 127.0.0.1, and s3fs/botocore reach it through
``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("s3fs", reason="needs s3fs (the dev extra)")
pytest.importorskip("moto.server", reason="needs moto[server] (the dev extra)")

from distributed_pz.catalog import read_catalog  # noqa: E402
from distributed_pz.cli import main  # noqa: E402
from distributed_pz.infer.cluster import connect  # noqa: E402
from distributed_pz.models.ensemble import EnsembleDir  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.distributed]


def _commands(root: str, scheduler: str) -> dict[str, list[str]]:
    """The demo's commands, every path under ``root`` (an ``s3://`` URL); predict joins ``scheduler``."""
    store, ensemble, run, report = (f"{root}/{name}" for name in ("sim.zarr", "ens", "run", "report"))
    return {
        "simulate": f"simulate --out {store} --n 256 --tiles 2 --chunk-rows 64 --shard-rows 128".split(),
        "train": f"train --store {store} --tile SIM_0000 --out {ensemble} --splits 1 --folds 2 --epochs 1 "
        "--num-workers 1 --model-set hidden=16 --model-set n_layers=4".split(),
        "predict": f"predict --store {store} --bundle {ensemble} --out {run} --tile SIM_0001 "
        f"--scheduler {scheduler} --quiet".split(),
        "evaluate": f"evaluate --catalog {run}/SIM_0001.parquet --truth {store} --truth-tile SIM_0001 "
        f"--out {report} --no-plots".split(),
    }


def test_demo_chain_on_s3_resumes(bucket, capsys, tmp_path):
    fs, root = bucket
    ensemble, run, report = f"{root}/ens", f"{root}/run", f"{root}/report"
    with connect("local", workers=1) as client:  # its worker starts with the S3 environment set
        commands = _commands(root, client.scheduler.address)
        for name, argv in commands.items():
            assert main(argv) == 0, name
        capsys.readouterr()

        assert fs.isfile(f"{ensemble}/ensemble.json") and fs.isfile(f"{ensemble}/{EnsembleDir.options_file}")
        assert fs.isfile(f"{run}/manifest.json") and fs.isfile(f"{run}/dpz-predict.toml")
        assert not fs.exists(f"{run}/_staging/SIM_0001")  # parts removed once the tile was committed
        assert not [p for p in fs.find(root) if "/." in p or ".tmp-" in p]  # no temporary key ever written
        catalogue = read_catalog(f"{run}/SIM_0001.parquet")
        assert len(catalogue) == 256 and np.isfinite(catalogue.columns["z_phot"]).any()
        summary = json.loads(fs.cat_file(f"{report}/summary.json"))
        assert "store s3://" in summary["truth"]["source"] and "SIM_0001" in summary["truth"]["source"]

        before = fs.info(f"{run}/SIM_0001.parquet")["ETag"]
        assert main(commands["train"]) == 0 and main(commands["predict"]) == 0
        out = capsys.readouterr().out

        # the remote ensemble predicts exactly what its local copy predicts, calibration included
        fs.get(f"{ensemble}/", str(tmp_path / "ens"), recursive=True)
        local_run = f"{root}/run-local"
        argv = [
            a.replace(ensemble, str(tmp_path / "ens")).replace(run, local_run) for a in commands["predict"]
        ]
        assert main(argv) == 0
    assert "2/2 members (0 trained now" in out
    assert "0 tiles written, 1 already done" in out
    assert fs.info(f"{run}/SIM_0001.parquet")["ETag"] == before
    remote, local = (read_catalog(f"{r}/SIM_0001.parquet") for r in (run, local_run))
    assert remote.meta["calibration"].startswith("width_temperature")
    for key in ("calibration", "calibration_hash", "bundle_hash", "pdf_source"):
        assert remote.meta[key] == local.meta[key], key
    assert remote.columns.keys() == local.columns.keys()
    for name, column in remote.columns.items():
        np.testing.assert_array_equal(column, local.columns[name], err_msg=name)
