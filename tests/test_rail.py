"""RAIL's own inform -> estimate round trip (``rail.utils.testing_utils.one_algo``) on its 100-galaxy table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rail.estimation.estimator", reason="needs the [rail] extra (pz-rail-base)")
qp = pytest.importorskip("qp")

from rail.core.data import TableHandle  # noqa: E402
from rail.utils.testing_utils import one_algo, traindata  # noqa: E402

from distributed_pz.rail import DistributedPzEstimator, DistributedPzInformer  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.distributed]


def test_inform_estimate_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = str(tmp_path / "dpz_model.json")
    train_kwargs = {
        "name": "inform_dpz",
        "model": model,
        "hdf5_groupname": "photometry",
        "ensemble_dir": str(tmp_path / "ensemble"),
        "model_overrides": {"hidden": 16, "n_layers": 4, "latent": 4, "n_components": 3},
        "n_splits": 1,
        "n_folds": 2,
        "epochs": 1,
        "num_workers": 1,
    }
    estim_kwargs = {"model": model, "hdf5_groupname": "photometry", "chunk_size": 4}
    DistributedPzInformer.make_stage(**train_kwargs).inform(TableHandle("training_data", path=traindata))
    assert set(json.loads(Path(model).read_text())) == {"ensemble", "content_hash"}  # JSON, not a pickle
    # one_algo informs again (the finished ensemble is reused), estimates three ways, removes the model
    first, reloaded, from_handle = one_algo(
        "DistributedPz", DistributedPzInformer, DistributedPzEstimator, train_kwargs, estim_kwargs
    )
    assert isinstance(first, qp.Ensemble) and first.npdf == 10  # validation_10gal, in 3 chunks
    assert set(first.objdata) == {"weights", "means", "stds"}  # qp.mixmod
    for name in ("zmode", "zmean", "zmedian", "z_lo68", "z_hi68", "flags", "object_id"):
        assert name in first.ancil, name
    usable = first.ancil["flags"] & 15 == 0
    assert usable.any()
    median = first.ppf(0.5)[:, 0]  # qp's own quantile of the mixture ~ our zmedian
    assert np.allclose(median[usable], first.ancil["zmedian"][usable], atol=1e-3)
    for other in (reloaded, from_handle):
        assert np.allclose(other.objdata["means"], first.objdata["means"], equal_nan=True)
        assert np.array_equal(other.ancil["zmode"], first.ancil["zmode"], equal_nan=True)
