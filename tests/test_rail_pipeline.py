"""A RAIL pipeline (``rail pipe build`` + run) of inform -> estimate -> RAIL's own PIT and point evaluation."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rail.evaluation.single_evaluator", reason="needs the [rail] extra (pz-rail-base)")
qp = pytest.importorskip("qp")

import ceci  # noqa: E402
import tables_io  # noqa: E402
from rail.core.stage import RailPipeline  # noqa: E402
from rail.evaluation.single_evaluator import SingleEvaluator  # noqa: E402
from rail.utils.path_utils import find_rail_file  # noqa: E402

from distributed_pz.rail import DistributedPzEstimator, DistributedPzInformer  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

N_TRAIN, N_TEST = 2000, 500
POINT_METRICS = ["point_bias", "point_stats_sigma_mad", "point_outlier_rate"]


class DpzEvaluationPipeline(RailPipeline):
    """Inform a small ensemble on ``input_train``, estimate ``input_test``, evaluate against its redshifts."""

    default_input_dict = dict(input_train="dummy.in", input_test="dummy.in")

    def __init__(self, ensemble_dir: str = "dpz_ensemble") -> None:
        RailPipeline.__init__(self)
        self.inform_dpz = DistributedPzInformer.build(
            aliases=dict(input="input_train"),
            ensemble_dir=ensemble_dir,
            n_splits=1,
            n_folds=2,
            epochs=15,
            num_workers=1,
        )
        self.estimate_dpz = DistributedPzEstimator.build(
            aliases=dict(input="input_test"),
            connections=dict(model=self.inform_dpz.io.model),
        )
        self.evaluate_dpz = SingleEvaluator.build(
            aliases=dict(truth="input_test"),
            connections=dict(input=self.estimate_dpz.io.output),
            point_estimates=["zmode"],
            truth_point_estimates=["redshift"],
            metrics=["pit", *POINT_METRICS],
            force_exact=True,  # the whole test set at once: chunked PIT needs pytdigest
        )


def simulated_split(folder) -> dict[str, str]:
    """Disjoint random training and test rows of RAIL's simulated DC2 example photometry (sorted by z)."""
    table = tables_io.read(find_rail_file("examples_data/testdata/test_dc2_training_9816.hdf5"))["photometry"]
    order = np.random.default_rng(0).permutation(len(table["redshift"]))
    paths = {}
    for name, rows in (("input_train", order[:N_TRAIN]), ("input_test", order[N_TRAIN : N_TRAIN + N_TEST])):
        paths[name] = str(folder / f"{name}.hdf5")
        tables_io.write({"photometry": {col: np.asarray(v)[rows] for col, v in table.items()}}, paths[name])
    return paths


def test_rail_pipeline_ends_with_the_evaluator_outputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # ceci starts every stage as `python3 -m distributed_pz STAGE`: the environment's python3, as
    # in a shell where it is activated (CI runs the suite with the venv's python, not on PATH)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    inputs = simulated_split(tmp_path)
    yaml = str(tmp_path / "dpz_pipeline.yml")
    # `rail pipe build`'s steps (RailPipeline.build_and_write), without its loop over
    # `stage_execution_config`, which ceci 2.7 does not have (pz-rail-base 2.0.11 fails there)
    built = DpzEvaluationPipeline(ensemble_dir=str(tmp_path / "ensemble"))
    run_config = dict(output_dir=str(tmp_path / "out"), log_dir=str(tmp_path / "logs"), resume=False)
    built.initialize(inputs, run_config, None)
    built.save(yaml)
    pipeline = ceci.Pipeline.read(yaml)  # what `rail pipe run` / `ceci` does: each stage its own process
    assert pipeline.run() == 0
    out = tmp_path / "out"
    estimate = qp.read(str(out / "output_estimate_dpz.hdf5"))
    assert estimate.npdf == N_TEST
    summary = tables_io.read(str(out / "summary_evaluate_dpz.hdf5"))
    values = {key: float(np.squeeze(summary[key])) for key in summary}
    assert abs(values["point_bias_zmode_redshift"]) < 0.03, values  # DC2 ugrizy: a working photo-z
    assert 0 < values["point_stats_sigma_mad_zmode_redshift"] < 0.1, values
    assert 0 <= values["point_outlier_rate_zmode_redshift"] < 0.2, values
    pit = qp.read_dict(str(out / "single_distribution_summary_evaluate_dpz.hdf5"))["pit_redshift"]
    assert pit.npdf == 1  # the PIT distribution of the whole test set (qp quantiles)
    grid = np.linspace(0.0, 1.0, 11)
    cdf = np.ravel(pit.cdf(grid))
    assert cdf[0] == pytest.approx(0.0, abs=0.02) and cdf[-1] == pytest.approx(1.0, abs=0.02)
    assert np.max(np.abs(cdf - grid)) < 0.15  # PIT near uniform: calibrated p(z)
