"""Schema validation of survey tiles: every problem is one line naming tile, array and chunk.

A tile whose metadata cannot even be read is one problem of that tile, never the end of the
check: every other tile is still checked and reported.
"""

from __future__ import annotations

import numpy as np

from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.schema import ARRAYS, CUTOUT_SIZE, READABLE_SCHEMA_VERSIONS, REQUIRED_ATTRS
from distributed_pz.survey.store.store import SurveyStore, Tile


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
    return [p for name in names for p in check_named_tile(store, name, deep=deep)]


def check_named_tile(store: SurveyStore, name: str, deep: bool = False) -> list[StoreError]:
    """Problems of tile ``name``; a tile that cannot be opened or read is one problem, not a raise."""
    try:
        return check_tile(store.tile(name), deep=deep)
    except StoreError as exc:
        return [exc]


def checksum_notes(tile: Tile) -> list[str]:
    """One line if some arrays of ``tile`` lack chunk checksums (tiles of schema version 1)."""
    bare = [name for name in tile.array_names() if not tile.has_checksums(name)]
    if not bare:
        return []
    return [
        f"{tile.error(f'arrays {bare} have no chunk checksums (schema version 1)')}; "
        "corruption of their chunks may go undetected: re-ingest or re-simulate the tile to add them"
    ]


def _check_attrs(tile: Tile) -> list[StoreError]:
    attrs = tile.attrs
    missing = [a for a in REQUIRED_ATTRS if a not in attrs]
    if missing:
        return [tile.error(f"missing tile attributes {missing}")]
    problems = []
    if attrs["schema_version"] not in READABLE_SCHEMA_VERSIONS:
        problems.append(
            tile.error(
                f"schema version {attrs['schema_version']}, readable: {list(READABLE_SCHEMA_VERSIONS)}"
            )
        )
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
            missing = tile.missing_shard(spec.name)
            problems += [missing] if missing else []
    return problems


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
