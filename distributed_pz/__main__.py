"""``python -m distributed_pz STAGE ...``: how a RAIL (ceci) pipeline launches our RAIL stages.

ceci runs each stage of a pipeline as ``python -m TOP STAGE --config ...``, ``TOP`` being the
top-level package of the module that defines the stage class (:mod:`distributed_pz.rail.stages`);
this is ceci's own entry point with our stages registered. Needs the ``[rail]`` extra.
"""

import sys

from ceci import PipelineStage

import distributed_pz.rail  # noqa: F401  (registers DistributedPzInformer and DistributedPzEstimator)

if __name__ == "__main__":
    sys.exit(PipelineStage.main())
