"""What the predictor adds on top of pooling: the ensemble's calibration, its metadata, the class head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distributed_pz import catalog as fl
from distributed_pz.metrics import mixture
from distributed_pz.models.bundle import make_bundle
from distributed_pz.models.calibration import Calibration
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.inputs import batch_tensors, fit_feature_stats
from distributed_pz.models.kernel_calibration import NODES, KernelCalibration
from distributed_pz.models.predictor import GALAXY_CUT, EnsemblePredictor
from distributed_pz.models.registry import build_model
from tests.fixtures import fresh_members, learnable_tile, save_ensemble, tiny_config, with_ids

torch.set_num_threads(1)

WIDER = Calibration((), (0.01,), (2.0,), (0.01,), "test rows", 100)


@pytest.fixture(scope="module")
def rows():
    return with_ids(learnable_tile(80, seed=4))


@pytest.mark.parametrize("name", ["deepz", "gaznet_c9"])
def test_the_predictor_applies_the_calibration_to_every_pooled_mixture(name, rows):
    members = fresh_members(name, seeds=(1, 2))
    raw = EnsemblePredictor(members)(rows)
    calibrated = EnsemblePredictor(members, calibration=WIDER)(rows)
    w, mu, sd = (raw[k].astype(np.float64) for k in fl.MIXTURE_COLUMNS)
    expected = WIDER.apply(w, mu, sd)
    np.testing.assert_allclose(calibrated["pdf_means"], expected[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(calibrated["pdf_sigmas"], expected[2], rtol=1e-5, atol=1e-6)
    summary = mixture.summarise(*expected)
    np.testing.assert_allclose(calibrated["z_std"], summary["z_std"], rtol=1e-4)
    assert (calibrated["z_std"] > raw["z_std"]).all()  # T = 2 widens


def test_metadata_says_what_the_pdf_is_and_which_calibration(tmp_path):
    point = EnsemblePredictor(fresh_members("gaznet_c9", seeds=(1, 2)))
    assert point.catalogue_metadata() == {"pdf_source": "member_spread", "calibration": "none"}
    members = fresh_members("deepz", seeds=(1, 2))
    save_ensemble(tmp_path / "plain", members)
    assert EnsemblePredictor.from_ensemble(EnsembleDir(tmp_path / "plain").read()).calibration is None
    save_ensemble(tmp_path / "calibrated", members, WIDER)
    loaded = EnsemblePredictor.from_ensemble(EnsembleDir(tmp_path / "calibrated").read())
    assert loaded.calibration == WIDER
    meta = loaded.catalogue_metadata()
    assert meta["pdf_source"] == "members_mixture" and meta["calibration_hash"] == WIDER.content_hash
    assert meta["calibration"].startswith("width_temperature in 1 z_phot bin")


def test_a_point_ensemble_read_with_its_kernel_calibration_writes_the_kernel_mixture(tmp_path, rows):
    members = fresh_members("gaznet_c9", seeds=(1, 2))
    raw = EnsemblePredictor(members)(rows)
    nodes = tuple(float(q) for q in np.linspace(-2.0, 3.0, NODES))  # a skewed kernel
    kernel = KernelCalibration((), (0.02,), (nodes,), (0.3,), "test rows", 100)
    save_ensemble(tmp_path / "kernel", members, kernel)
    loaded = EnsemblePredictor.from_ensemble(EnsembleDir(tmp_path / "kernel").read())
    assert loaded.calibration == kernel and loaded.n_components == NODES
    assert loaded.catalogue_metadata()["calibration"].startswith("residual_kernel in 1 z_phot bin")
    out = loaded(rows)
    expected = kernel.apply(*(raw[k].astype(np.float64) for k in fl.MIXTURE_COLUMNS))
    assert out["pdf_weights"].shape == (len(rows.arrays["object_id"]), NODES)
    for column, value in zip(fl.MIXTURE_COLUMNS, expected, strict=True):
        np.testing.assert_allclose(out[column], value, rtol=1e-5, atol=1e-6)
    assert (out["z_mean"] > raw["z_mean"]).mean() > 0.9  # the kernel's mean lies above the members' mean


def test_the_class_head_gives_p_galaxy_and_flags_the_rest(rows):
    assert "p_galaxy" not in EnsemblePredictor(fresh_members("gaznet_c9", seeds=(1, 2)))(rows)
    with_head = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = build_model(tiny_config("gaznet_c9", classify=True))
        stats = fit_feature_stats(model.input_spec, batch_tensors(rows, model.input_spec))
        with_head.append(make_bundle(model, stats, rows.bands, rows.image_bands))
    out = EnsemblePredictor(with_head)(rows)
    p = out["p_galaxy"]
    assert p.shape == (80,) and ((p >= 0) & (p <= 1)).all()
    flagged = (out["flags"] & fl.Flag.NOT_GALAXY) != 0
    np.testing.assert_array_equal(flagged, p < GALAXY_CUT)


@pytest.mark.parametrize("name", ["gaznet_c9", "gaznet_1", "gaznet_i4"])
def test_gaznet_point_redshifts_are_never_negative(name, rows):
    config = tiny_config(name)
    assert config.nonnegative and config.huber_delta == 1e-3  # GaZNet §3.1
    members = fresh_members(name, seeds=(1,))
    with torch.no_grad():
        members[0].model.head.linear.bias.fill_(-5.0)  # a head that would say z < 0
    z = EnsemblePredictor(members)(rows)["z_phot"]
    assert (z >= 0).all()
