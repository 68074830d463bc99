"""The distributed_pz RAIL package: importing it (``RailEnv.import_all_packages``, ``rail info``)
registers its stages (:mod:`rail.estimation.algos.distributed_pz`); :func:`load_catalog_tags`
registers its catalogue tag ``kids_viking`` (:mod:`rail.dpz.catalog_tags`)."""

from rail.dpz.catalog_tags import CATALOG_TAGS, load_catalog_tags
from rail.estimation.algos.distributed_pz import DistributedPzEstimator, DistributedPzInformer

__all__ = ["CATALOG_TAGS", "DistributedPzEstimator", "DistributedPzInformer", "load_catalog_tags"]
