"""RAIL's own discovery (``rail.core.introspection.RailEnv``, what ``rail info stages`` runs) lists our stages."""

from __future__ import annotations

import pytest

pytest.importorskip("rail.core.introspection", reason="needs the [rail] extra (pz-rail-base)")

from rail.core.introspection import RailEnv  # noqa: E402
from rail.core.stage import RailStage  # noqa: E402


def test_rail_introspection_finds_the_stages():
    assert "rail.dpz" in RailEnv.list_rail_packages()
    RailEnv.import_all_packages(silent=True)
    modules = RailEnv.list_rail_modules()
    assert "rail.estimation.algos.distributed_pz" in modules
    for name in ("DistributedPzInformer", "DistributedPzEstimator"):
        stage = RailStage.pipeline_stages[name][0]
        assert stage.__name__ == stage.name == name  # RAIL's rule: name equal to the class name
    import rail.stages

    rail.stages.import_and_attach_all(silent=True)
    assert {"DistributedPzInformer", "DistributedPzEstimator"} <= set(rail.stages.__all__)
