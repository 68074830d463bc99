"""The no-cluster reference run: one tile predicted in this process, chunk by chunk.

:func:`predict_tile_local` reads the same arrays and calls the same
:class:`~distributed_pz.models.predictor.EnsemblePredictor` as the Dask stream
(:mod:`distributed_pz.infer.stream`), so its columns are what the pipeline must match.
"""

from __future__ import annotations

import numpy as np

from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.survey.store.store import open_store


def predict_tile_local(
    store_url: str,
    tile_name: str,
    predictor: EnsemblePredictor,
    rows_per_chunk: int | None = None,
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
    """
    tile = open_store(store_url).tile(tile_name)
    names = predictor.input_arrays(tile.array_names())
    parts = [
        predictor.predict_chunk(tile.read_rows(names, start, stop, predictor.image_bands))
        for start, stop in tile.row_blocks(rows_per_chunk)
    ]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
