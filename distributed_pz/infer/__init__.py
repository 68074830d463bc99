"""Inference at survey scale: the ensemble predictor, the Dask pipeline, cluster selection, catalogue writers.

- :mod:`~distributed_pz.infer.predictor` — :class:`EnsemblePredictor` (chunk of rows -> catalogue columns)
  and :func:`predict_tile_local` (no cluster);
- :mod:`~distributed_pz.infer.pipeline` — :func:`predict_store` (every tile through a Dask cluster);
- :mod:`~distributed_pz.infer.cluster` — :func:`connect` (local, cuda, or a running cluster);
- :mod:`~distributed_pz.infer.writers` — Parquet / FITS catalogues, committed atomically;
- :mod:`~distributed_pz.infer.mixture`, :mod:`~distributed_pz.infer.flags`, :mod:`~distributed_pz.infer.qp_export`.
"""
