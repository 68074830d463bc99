"""Inference at survey scale: the ensemble predictor, the Dask pipeline, cluster selection, catalogue writers.

- :mod:`~distributed_pz.models.predictor` — :class:`EnsemblePredictor` (chunk of rows -> catalogue columns)
  and :func:`predict_tile_local` (no cluster);
- :mod:`~distributed_pz.infer.stream` — :func:`predict_store` (every tile through a Dask cluster);
- :mod:`~distributed_pz.infer.cluster` — :func:`connect` (local, cuda, or a running cluster);
- :mod:`~distributed_pz.infer._writers_tmp` — Parquet / FITS catalogues, committed atomically;
- :mod:`~distributed_pz.metrics.mixture`, :mod:`~distributed_pz.infer._flags_tmp`, :mod:`~distributed_pz.infer._qp_tmp`.
"""
