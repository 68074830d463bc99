"""The distributed_pz RAIL package: importing it (``RailEnv.import_all_packages``, ``rail info``)
registers its stages (:mod:`rail.estimation.algos.distributed_pz`)."""

from rail.estimation.algos.distributed_pz import DistributedPzEstimator, DistributedPzInformer

__all__ = ["DistributedPzEstimator", "DistributedPzInformer"]
