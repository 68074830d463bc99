"""Load the ensemble once per Dask worker: a ``WorkerPlugin`` holding the predictor.

The plugin travels to the workers as a bundle path and options (never weights); ``setup``
loads the ensemble with hashes verified, on the worker's GPU when it has one, and checks
that it is the ensemble the client asked for. Tasks fetch it with :func:`worker_predictor`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from distributed import WorkerPlugin, get_worker

from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.predictor import EnsemblePredictor, PredictOptions


def plugin_name(bundle_hash: str, options: PredictOptions) -> str:
    """Name under which a run registers its plugin (one per ensemble and options)."""
    digest = hashlib.sha256(json.dumps(asdict(options), sort_keys=True).encode()).hexdigest()
    return f"distributed_pz-predictor-{bundle_hash[:16]}-{digest[:8]}"


class PredictorPlugin(WorkerPlugin):
    """Holds an :class:`EnsemblePredictor` on each worker.

    Parameters
    ----------
    bundle_path
        Ensemble or bundle directory, readable from every worker.
    bundle_hash
        The content hash the client expects (the worker refuses a different ensemble).
    options
        Predictor options.
    """

    def __init__(self, bundle_path: str, bundle_hash: str, options: PredictOptions) -> None:
        self.bundle_path = bundle_path
        self.bundle_hash = bundle_hash
        self.options = options
        self.predictor: EnsemblePredictor | None = None

    def setup(self, worker) -> None:
        ensemble = EnsembleDir(self.bundle_path).read()  # parsed once per worker; on its GPU if it has one
        predictor = EnsemblePredictor.from_ensemble(ensemble, self.options)
        if predictor.bundle_hash != self.bundle_hash:
            raise RuntimeError(
                f"worker {worker.address}: {self.bundle_path} has content hash {predictor.bundle_hash[:12]}…, "
                f"the run expects {self.bundle_hash[:12]}… (changed during the run?)"
            )
        self.predictor = predictor

    def teardown(self, worker) -> None:
        self.predictor = None


def worker_predictor(name: str) -> EnsemblePredictor:
    """The predictor loaded on this worker by the plugin registered as ``name``."""
    plugin = get_worker().plugins.get(name)
    if not isinstance(plugin, PredictorPlugin) or plugin.predictor is None:
        raise RuntimeError(f"worker {get_worker().address}: no predictor plugin {name!r} is set up")
    return plugin.predictor
