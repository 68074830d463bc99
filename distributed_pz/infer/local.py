"""The no-cluster reference run: one tile predicted in this process, chunk by chunk.

:func:`predict_tile_local` reads the same arrays and calls the same
:class:`~distributed_pz.models.predictor.EnsemblePredictor` as the Dask stream
(:mod:`distributed_pz.infer.stream`), so its columns are what the pipeline must match.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from distributed_pz.models.locus import correct_photometry
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.survey.store.store import Tile, open_store
from distributed_pz.survey.store.tiles import TileArrays


def predict_tile_local(
    store_url: str,
    tile_name: str,
    predictor: EnsemblePredictor,
    rows_per_chunk: int | None = None,
    offsets: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Predict a whole tile in this process, chunk by chunk: the reference the pipeline must match.

    Parameters
    ----------
    store_url
        Survey store URL or path.
    tile_name
        Tile to predict.
    predictor
        The loaded ensemble.
    rows_per_chunk
        Rows read per chunk (a multiple of the tile's chunk rows; default one shard).
    offsets
        Band -> zero-point offset subtracted before prediction (``dpz predict --homogenise``:
        :func:`~distributed_pz.infer.stream.tile_zeropoints`); default none.
    """
    tile = open_store(store_url).tile(tile_name)
    parts = [
        predictor.predict_chunk(prediction_rows(tile, predictor, start, stop, offsets))
        for start, stop in tile.row_blocks(rows_per_chunk)
    ]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def prediction_rows(
    tile: Tile, predictor: EnsemblePredictor, start: int, stop: int, offsets: Mapping[str, float] | None
) -> TileArrays:
    """Rows ``[start, stop)`` of ``tile`` as ``predictor`` reads them, less the tile's zero-point
    ``offsets`` when given: what every prediction path (this reference, the Dask tasks) predicts."""
    rows = tile.read_rows(predictor.input_arrays(tile.array_names()), start, stop, predictor.image_bands)
    if offsets:
        rows = dataclasses.replace(rows, arrays=correct_photometry(rows.arrays, offsets, rows.bands))
    return rows
