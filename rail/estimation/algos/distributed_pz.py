"""distributed_pz's RAIL stages in RAIL's namespace, where ``rail.core.introspection`` finds them.

:class:`DistributedPzInformer` trains a distributed_pz ensemble (Ray Train, as ``dpz train``);
:class:`DistributedPzEstimator` runs it on a table and returns a ``qp.Ensemble`` of Gaussian
mixtures. Both are defined in :mod:`distributed_pz.rail` (``pip install 'distributed_pz[rail]'``).
"""

from distributed_pz.rail import DistributedPzEstimator, DistributedPzInformer

__all__ = ["DistributedPzEstimator", "DistributedPzInformer"]
