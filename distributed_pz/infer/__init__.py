"""Inference at survey scale: the ensemble predictor, the Dask pipeline, cluster selection, catalogue writers.

- :mod:`~distributed_pz.models.predictor` — :class:`EnsemblePredictor` (chunk of rows -> catalogue columns);
- :mod:`~distributed_pz.infer.stream` — :func:`predict_store` (every tile through a Dask cluster);
- :mod:`~distributed_pz.infer.local` — :func:`predict_tile_local` (one tile in this process, no cluster: the reference);
- :mod:`~distributed_pz.infer.cluster` — :func:`connect` (local, cuda, or a running cluster);
- catalogue files, flag bits and qp export are :mod:`distributed_pz.catalog`.
"""
