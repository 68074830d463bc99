"""Schema validation of survey tiles: every problem is one line naming tile, array and chunk."""

from __future__ import annotations

import numpy as np
from zarr.core.array import _shards_initialized
from zarr.core.sync import sync

from distributed_pz.survey.errors import StoreError
from distributed_pz.survey.schema import ARRAYS, CUTOUT_SIZE, REQUIRED_ATTRS, SCHEMA_VERSION
from distributed_pz.survey.store import SurveyStore, Tile


def check_tile(tile: Tile, deep: bool = False) -> list[StoreError]:
    """All schema problems of ``tile``.

    Parameters
    ----------
    deep
        Also decode every chunk of every array and check values (unique ``object_id``,
        coordinates in range, non-negative errors). Reads the whole tile.
    """
    problems = _check_attrs(tile)
    if problems:
        return problems
    problems += _check_arrays(tile)
    if problems or not deep:
        return problems
    for spec in ARRAYS:
        if tile.has(spec.name):
            bad = tile.first_bad_chunk(spec.name)
            problems += [bad] if bad else []
    return problems or _check_values(tile)


def validate_tile(tile: Tile, deep: bool = False) -> None:
    """Raise the first problem :func:`check_tile` finds."""
    problems = check_tile(tile, deep=deep)
    if problems:
        raise problems[0]


def check_store(store: SurveyStore, deep: bool = False) -> list[StoreError]:
    """Problems of every tile of ``store`` (an empty store is a problem too)."""
    names = store.tile_names()
    if not names:
        return [StoreError("the store holds no tile", store=store.url)]
    return [p for name in names for p in check_tile(store.tile(name), deep=deep)]


def _check_attrs(tile: Tile) -> list[StoreError]:
    attrs = tile.attrs
    missing = [a for a in REQUIRED_ATTRS if a not in attrs]
    if missing:
        return [tile.error(f"missing tile attributes {missing}")]
    problems = []
    if attrs["schema_version"] != SCHEMA_VERSION:
        problems.append(tile.error(f"schema version {attrs['schema_version']}, expected {SCHEMA_VERSION}"))
    for key, needed in (("zeropoint", attrs["bands"]), ("psf_fwhm_arcsec", attrs["image_bands"])):
        absent = [b for b in needed if b not in attrs[key]]
        if absent:
            problems.append(tile.error(f"attribute {key!r} lacks bands {absent}"))
    if not attrs["complete"]:
        problems.append(tile.error("tile is incomplete: its writer did not finish (rerun the writer)"))
    return problems


def _check_arrays(tile: Tile) -> list[StoreError]:
    present = set(tile.array_names())
    problems = [
        tile.error("required array is missing", array=s.name)
        for s in ARRAYS
        if s.required and s.name not in present
    ]
    if problems:
        return problems
    n_exp = tile.array("flux_exp").shape[2] if "flux_exp" in present else 0
    dims = {"B": len(tile.bands), "C": len(tile.image_bands), "E": n_exp, "P": CUTOUT_SIZE}
    chunk_rows = tile.chunk_rows
    for spec in ARRAYS:
        if spec.name not in present:
            continue
        arr = tile.array(spec.name)
        expected = spec.shape(tile.n_rows, dims)
        if arr.shape != expected:
            problems.append(tile.error(f"shape {arr.shape}, expected {expected}", array=spec.name))
        elif arr.dtype != spec.dtype:
            problems.append(tile.error(f"dtype {arr.dtype}, expected {spec.dtype}", array=spec.name))
        elif arr.chunks[0] != chunk_rows:
            problems.append(
                tile.error(f"{arr.chunks[0]} rows per chunk, object_id has {chunk_rows}", array=spec.name)
            )
        else:
            problems += _check_chunks_present(tile, spec.name)
    return problems


def _check_chunks_present(tile: Tile, name: str) -> list[StoreError]:
    arr = tile.array(name)
    written = set(sync(_shards_initialized(arr._async_array)))
    for index, key in enumerate(arr._iter_shard_keys()):
        if key not in written:
            start = index * tile.shard_rows
            stop = min(start + tile.shard_rows, tile.n_rows)
            first_chunk = start // tile.chunk_rows
            return [
                tile.error(
                    f"shard {key!r} is missing (never written or deleted)",
                    array=name,
                    chunk=first_chunk,
                    rows=(start, stop),
                )
            ]
    return []


def _check_values(tile: Tile) -> list[StoreError]:
    data = tile.read(["object_id", "ra", "dec", "mag_err"])
    problems = []
    ids = data["object_id"]
    if len(np.unique(ids)) != len(ids):
        problems.append(
            tile.error(f"{len(ids) - len(np.unique(ids))} duplicate object_id values", array="object_id")
        )
    ra, dec = data["ra"], data["dec"]  # NaN = position unknown (e.g. SDSS MGS test data)
    if np.any((ra < 0) | (ra >= 360)):
        problems.append(tile.error("values outside [0, 360) deg", array="ra"))
    if np.any(np.abs(dec) > 90):
        problems.append(tile.error("values outside [-90, 90] deg", array="dec"))
    if np.any(data["mag_err"] < 0):
        problems.append(tile.error("negative magnitude errors", array="mag_err"))
    return problems
