"""The training sample of a survey store: which rows have a spectroscopic redshift, and reading them.

The driver selects the rows (finite ``z_spec``) once and the split plan indexes them; every Ray
worker then reads the rows it needs straight from the store (a shared filesystem or an object
store URL), shard by shard, so no array larger than the row indices crosses the object store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.features import InputSpec
from distributed_pz.survey.store.store import SurveyStore, open_store
from distributed_pz.survey.store.tiles import TileArrays


@dataclass(frozen=True, eq=False)
class TrainingSample:
    """Rows of a store used for training, in plan order.

    Parameters
    ----------
    store_url
        The survey store.
    tiles
        Tile names; ``tile_index`` points into this tuple.
    tile_index, row
        ``[N]`` tile and row within the tile of every sample row.
    object_id, z_spec
        ``[N]`` identifiers and spectroscopic redshifts.
    """

    store_url: str
    tiles: tuple[str, ...]
    tile_index: np.ndarray
    row: np.ndarray
    object_id: np.ndarray
    z_spec: np.ndarray

    @property
    def n_rows(self) -> int:
        return len(self.row)

    def save(self, ensemble: EnsembleDir) -> None:
        """Write the row selection into the ensemble directory (the URL and tiles live in its config)."""
        np.savez(
            ensemble.sample_arrays,
            tile_index=self.tile_index,
            row=self.row,
            object_id=self.object_id,
            z_spec=self.z_spec,
        )


def load_sample(ensemble: EnsembleDir, store_url: str, tiles: Sequence[str]) -> TrainingSample:
    """Read a sample written by :meth:`TrainingSample.save`."""
    with np.load(ensemble.sample_arrays, allow_pickle=False) as a:
        return TrainingSample(store_url, tuple(tiles), a["tile_index"], a["row"], a["object_id"], a["z_spec"])


def required_arrays(spec: InputSpec, available: Sequence[str]) -> list[str]:
    """Tile arrays a model with input ``spec`` trains from: its inputs (:meth:`InputSpec.arrays`)
    plus ``object_id``, ``z_spec`` and ``class`` among those ``available``."""
    targets = {"object_id", "z_spec", "class"} & set(available)
    return sorted(targets | set(spec.arrays(available)))


def select_sample(store: SurveyStore | str, tiles: Sequence[str] = ()) -> TrainingSample:
    """Rows with a finite, non-negative ``z_spec`` in ``tiles`` (every tile of the store if empty).

    ``store`` is an open store or its URL.

    Raises
    ------
    ValueError
        If a tile has no ``z_spec`` array or the sample is empty.
    """
    store = open_store(store) if isinstance(store, str) else store
    store_url = store.url
    names = tuple(tiles) or tuple(store.tile_names())
    if not names:
        raise ValueError(f"store {store_url} has no tile")
    parts = []
    for i, name in enumerate(names):
        tile = store.tile(name)
        if not tile.has("z_spec"):
            raise ValueError(f"store {store_url}, tile {name!r}: no z_spec array to train on")
        got = tile.read(["object_id", "z_spec"])
        rows = np.flatnonzero(np.isfinite(got["z_spec"]) & (got["z_spec"] >= 0))
        parts.append((np.full(len(rows), i, np.int32), rows, got["object_id"][rows], got["z_spec"][rows]))
    if sum(len(p[1]) for p in parts) == 0:
        raise ValueError(f"store {store_url}: no row with a spectroscopic redshift in tiles {list(names)}")
    tile_index, row, object_id, z_spec = (np.concatenate(a) for a in zip(*parts, strict=True))
    return TrainingSample(store_url, names, tile_index, row.astype(np.int64), object_id, z_spec)


def read_sample_rows(sample: TrainingSample, arrays: Sequence[str]) -> TileArrays:
    """Read ``arrays`` for every sample row (in sample order), one shard-aligned block at a time.

    Every tile must share the band axes of the first one. Rows go straight into preallocated
    arrays, so the sample is held in memory once.
    """
    store = open_store(sample.store_url)
    first = store.tile(sample.tiles[0])
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(sample.tiles):
        tile = store.tile(name)
        if (tile.bands, tile.image_bands) != (first.bands, first.image_bands):
            raise ValueError(f"tile {name!r} has other bands than tile {first.name!r}; train on one band set")
        where = np.flatnonzero(sample.tile_index == i)  # sample positions of this tile's rows
        where = where[np.argsort(sample.row[where])]
        rows = sample.row[where]
        for start, stop in tile.row_blocks():
            inside = (rows >= start) & (rows < stop)
            if not inside.any():
                continue
            for key, values in tile.read(arrays, start, stop).items():
                values = values[rows[inside] - start]
                if key not in out:
                    out[key] = np.empty((sample.n_rows, *values.shape[1:]), values.dtype)
                out[key][where[inside]] = values
    return TileArrays.from_attrs(out, first.attrs)
