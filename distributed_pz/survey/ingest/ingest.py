"""Ingest one survey catalogue (and optional cutouts) into one tile of a survey store.

The catalogue is read whole (a KiDS tile is ~100k rows), filtered and converted to the store's
arrays through a column map; every value is checked before the store is touched, so a bad input
never harms an existing tile. The tile is then written in shard-aligned row blocks (cutouts cut
block by block), marked complete and validated. A complete tile is replaced only on request;
an incomplete one (an interrupted ingest) is always rewritten.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from distributed_pz import __version__
from distributed_pz.survey.ingest.catalog_readers import read_catalog
from distributed_pz.survey.ingest.columnmap import ColumnMap, load_column_map
from distributed_pz.survey.ingest.cutouts import CutoutCube, CutoutSource, TileImage
from distributed_pz.survey.ingest.ingest_errors import IngestError
from distributed_pz.survey.ingest.validity import equals_any, usable_magnitudes
from distributed_pz.survey.store.schema import (
    CLASS_UNKNOWN,
    FLAG_BAD,
)
from distributed_pz.survey.store.store import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_SHARD_ROWS,
    SurveyStore,
    Tile,
    check_tile_name,
    open_store,
)
from distributed_pz.survey.store.validate import validate_tile

__all__ = [
    "IngestError",
    "convert_columns",
    "default_object_ids",
    "filter_rows",
    "ingest_catalog",
    "photometry",
    "selected_rows",
]

Columns = dict[str, np.ndarray]


def ingest_catalog(
    catalog_path: str | Path,
    column_map: ColumnMap | str | Path,
    store_url: str,
    tile_name: str,
    *,
    images: Mapping[str, str | Path] | None = None,
    cutout_files: Mapping[str, str | Path] | None = None,
    overwrite: bool = False,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    storage_options: Mapping[str, Any] | None = None,
) -> Tile:
    """Write the catalogue at ``catalog_path`` as tile ``tile_name`` of the store at ``store_url``.

    Parameters
    ----------
    column_map
        A :class:`ColumnMap`, the name of a shipped map (``"kids_dr4"``) or a path to a TOML map.
    images
        Band -> tile image (FITS with a celestial WCS) to cut 40×40 px cutouts from at each
        source's ra/dec; adds to (and overrides, per band) the map's ``[images] files``.
    cutout_files
        Band -> FITS cutout cube ``(N, 40, 40)``, one plane per catalogue row in file order.
    overwrite
        Replace a complete tile of the same name (an incomplete one is always replaced).
    chunk_rows, shard_rows
        Rows per Zarr chunk and per shard; the tile is written one shard of rows at a time.
    storage_options
        Passed to fsspec for remote stores.

    Returns
    -------
    Tile
        The written, complete and validated tile.

    Raises
    ------
    IngestError
        An input is unusable or the tile exists and is complete (without ``overwrite``).
    StoreError
        The tile name is not a safe file name, the store cannot be opened or the written tile
        fails validation.
    """
    check_tile_name(tile_name, store_url)
    if shard_rows % chunk_rows:
        raise IngestError(f"shard_rows ({shard_rows}) must be a multiple of chunk_rows ({chunk_rows})")
    cmap = column_map if isinstance(column_map, ColumnMap) else load_column_map(column_map)
    path = Path(catalog_path)
    table = read_catalog(path, cmap.catalog, cmap.columns_needed())
    n_read = len(next(iter(table.values())))
    rows, dropped = filter_rows(table, cmap, path)
    if rows.size == 0:
        raise IngestError(
            f"{path}: no row passes the filters of column map {cmap.source} ({n_read} rows read)"
        )
    arrays = convert_columns(table, cmap, rows, path, tile_name)
    del table
    cutout_paths = _cutout_paths(cmap, path, tile_name, images or {}, cutout_files or {})
    with ExitStack() as stack:
        sources: list[CutoutSource] = [
            stack.enter_context(TileImage(p) if kind == "image" else CutoutCube(p, n_read))
            for kind, p in cutout_paths.values()
        ]
        store = open_store(store_url, "a", storage_options)
        replace = _existing_tile(store, tile_name, overwrite)
        attrs = _tile_attrs(cmap, path, cutout_paths, n_read, len(rows))
        attrs["ingest"]["rows_dropped_by_filter"] = dropped
        optional = [name for name in ("z_spec", "class") if name in arrays] + (["cutout"] if sources else [])
        tile = store.create_tile(
            tile_name,
            len(rows),
            attrs,
            arrays=optional,
            chunk_rows=chunk_rows,
            shard_rows=shard_rows,
            overwrite=replace,
        )
        for start, stop in tile.row_blocks():
            block = {name: values[start:stop] for name, values in arrays.items()}
            if sources:
                cut = [s.cutouts(rows[start:stop], block["ra"], block["dec"]) for s in sources]
                block["cutout"] = np.stack(cut, axis=1)  # (n, C, P, P)
            tile.write_block(start, block)
        tile.mark_complete()
    validate_tile(tile)
    return tile


def _existing_tile(store: SurveyStore, tile_name: str, overwrite: bool) -> bool:
    """Whether a tile of that name exists (and may be replaced); refuse to replace a complete one."""
    if tile_name not in store.tile_names():
        return False
    if store.tile(tile_name).complete and not overwrite:
        raise IngestError(
            f"store {store.url!r} already holds the complete tile {tile_name!r}; "
            "pass --overwrite (overwrite=True) to replace it"
        )
    return True


def selected_rows(table: Columns, cmap: ColumnMap, path: Path) -> np.ndarray:
    """Indices of the catalogue rows that pass the map's ``[filter]`` (all rows without one)."""
    return filter_rows(table, cmap, path)[0]


def filter_rows(table: Columns, cmap: ColumnMap, path: Path) -> tuple[np.ndarray, dict[str, int]]:
    """Rows passing the map's ``[filter]``, and how many rows each filter dropped, in order.

    The filters apply one after the other (``z_spec_min``, ``z_spec_max``, then ``column`` in
    ``ranges``); a row is counted against the first filter that drops it.
    """
    keep = np.ones(len(next(iter(table.values()))), dtype=bool)
    dropped: dict[str, int] = {}

    def apply(label: str, passes: np.ndarray) -> None:
        dropped[label] = int((keep & ~passes).sum())
        keep[:] &= passes

    if cmap.z_spec_min is not None or cmap.z_spec_max is not None:
        z = _numeric(table, cmap.z_spec, None, path)
        if cmap.z_spec_min is not None:
            apply(f"{cmap.z_spec} > {cmap.z_spec_min}", z > cmap.z_spec_min)
        if cmap.z_spec_max is not None:
            apply(f"{cmap.z_spec} < {cmap.z_spec_max}", z < cmap.z_spec_max)
    if cmap.filter_column is not None:
        value = _numeric(table, cmap.filter_column, None, path)
        ranges = " or ".join(f"[{lo:g}, {hi:g})" for lo, hi in cmap.filter_ranges)
        apply(
            f"{cmap.filter_column} in {ranges}",
            np.logical_or.reduce([(value >= lo) & (value < hi) for lo, hi in cmap.filter_ranges]),
        )
    return np.flatnonzero(keep), dropped


def convert_columns(
    table: Columns, cmap: ColumnMap, rows: np.ndarray, path: Path, tile_name: str
) -> dict[str, np.ndarray]:
    """The tile arrays of catalogue rows ``rows``: ids, positions, photometry, z_spec and class.

    Without an id column the ids are :func:`default_object_ids` of ``tile_name``, unique across
    the tiles of a store.
    """
    ra, dec = _positions(table, cmap, rows, path)
    mag, mag_err, mag_flag = photometry(table, cmap, rows, path)
    arrays = {
        "object_id": _object_ids(table, cmap, rows, path, tile_name),
        "ra": ra,
        "dec": dec,
        "mag": mag,
        "mag_err": mag_err,
        "mag_flag": mag_flag,
    }
    if cmap.z_spec is not None:
        z = _numeric(table, cmap.z_spec, rows, path).astype(np.float32)
        arrays["z_spec"] = np.where(np.isfinite(z), z, np.float32(np.nan))
    if cmap.class_column is not None:
        arrays["class"] = _classes(table, cmap, rows, path)
    return arrays


def photometry(
    table: Columns, cmap: ColumnMap, rows: np.ndarray, path: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitudes, errors and flags ``(n, B)`` with the map's sentinels turned into NaN + flag.

    A magnitude equal to a ``not_observed`` value is flagged ``FLAG_NOT_OBSERVED``, one equal to
    a ``not_detected`` value ``FLAG_NOT_DETECTED`` (its error, often the limiting magnitude, is
    kept when usable); a non-finite magnitude, one outside ``valid_range``, or one whose error is
    non-finite, negative, a sentinel or above :data:`~.validity.MAX_MAG_ERR` is ``FLAG_BAD``. Every flagged
    magnitude is NaN.
    """
    n, n_bands = len(rows), cmap.band_set.n_bands
    mag = np.full((n, n_bands), np.nan, dtype=np.float32)
    err = np.full((n, n_bands), np.nan, dtype=np.float32)
    flag = np.full((n, n_bands), FLAG_BAD, dtype=np.uint8)
    sentinels = cmap.not_detected + cmap.not_observed
    for b, (mag_col, err_col) in enumerate(zip(cmap.mag_columns, cmap.mag_err_columns, strict=True)):
        m = _numeric(table, mag_col, rows, path)
        e = _numeric(table, err_col, rows, path)
        not_observed = equals_any(m, cmap.not_observed)
        not_detected = equals_any(m, cmap.not_detected) & ~not_observed
        mag[:, b], err[:, b], flag[:, b] = usable_magnitudes(
            m, e, not_detected, not_observed, cmap.valid_range, sentinels
        )
    return mag, err, flag


def _numeric(table: Columns, column: str, rows: np.ndarray | None, path: Path) -> np.ndarray:
    """A column as floats (float columns keep their precision); a non-number names its row."""
    values = table[column] if rows is None else table[column][rows]
    if values.dtype.kind == "f":
        return values
    try:
        return values.astype(np.float64)
    except ValueError:
        for i, value in enumerate(values):
            try:
                float(value)
            except ValueError:
                row = i if rows is None else int(rows[i])
                raise IngestError(
                    f"{path}: column {column!r}, row {row}: {_show(value)} is not a number"
                ) from None
        raise


def _show(value: Any) -> str:
    """``repr`` of a catalogue value without numpy's type wrapper (``'a'``, not ``np.str_('a')``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _positions(
    table: Columns, cmap: ColumnMap, rows: np.ndarray, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    if cmap.ra is None or cmap.dec is None:  # a catalogue without coordinates: positions unknown
        return np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    ra = _numeric(table, cmap.ra, rows, path).astype(np.float64)
    dec = _numeric(table, cmap.dec, rows, path).astype(np.float64)
    for column, values, ok, allowed in (
        (cmap.ra, ra, (ra >= 0) & (ra < 360), "[0, 360)"),
        (cmap.dec, dec, np.abs(dec) <= 90, "[-90, 90]"),
    ):
        bad = np.flatnonzero(~ok)
        if bad.size:
            i = bad[0]
            raise IngestError(
                f"{path}: column {column!r}, row {rows[i]}: {values[i]} is not in {allowed} deg "
                f"({bad.size} such rows)"
            )
    return ra, dec


def default_object_ids(tile_name: str, rows: np.ndarray) -> np.ndarray:
    """Ids of a catalogue without an id column: 31 bits of the tile name's hash, then the row index.

    Stable (the same tile and rows give the same ids) and unique across the tiles of a store,
    so out-of-fold predictions over several tiles never share an id (row indices < 2**32).
    """
    high = int.from_bytes(hashlib.blake2b(tile_name.encode("utf-8"), digest_size=4).digest(), "little")
    return (np.int64(high & 0x7FFF_FFFF) << np.int64(32)) | rows.astype(np.int64)


def _object_ids(table: Columns, cmap: ColumnMap, rows: np.ndarray, path: Path, tile_name: str) -> np.ndarray:
    """Integer ids: the id column (hashed if asked), else :func:`default_object_ids`."""
    if cmap.object_id is None:
        return default_object_ids(tile_name, rows)
    column = cmap.object_id
    values = table[column][rows]
    if cmap.object_id_hash:
        ids = np.fromiter((_hash_id(v) for v in values), dtype=np.int64, count=len(values))
    elif values.dtype.kind in "iu" and (values.size == 0 or values.max() <= np.iinfo(np.int64).max):
        ids = values.astype(np.int64)
    elif values.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
        if bad.size:
            i = bad[0]
            raise IngestError(f"{path}: column {column!r}, row {rows[i]}: id {values[i]} is not an integer")
        ids = values.astype(np.int64)
    else:
        raise IngestError(
            f"{path}: column {column!r} holds {values.dtype} ids, not int64 integers; "
            "set [columns] object_id_hash = true in the column map to hash them into integers"
        )
    _check_unique(ids, values, column, rows, path)
    return ids


def _hash_id(value: Any) -> int:
    """A stable 63-bit non-negative integer for a text (or any) identifier."""
    digest = hashlib.blake2b(str(value).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


def _check_unique(ids: np.ndarray, values: np.ndarray, column: str, rows: np.ndarray, path: Path) -> None:
    order = np.argsort(ids, kind="stable")
    same = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if same.size:
        first, second = order[same[0]], order[same[0] + 1]
        what = "hash to the same id" if values[first] != values[second] else "is repeated"
        raise IngestError(
            f"{path}: column {column!r}: id {_show(values[first])} (row {rows[first]}) {what} in row "
            f"{rows[second]} ({same.size} duplicates); object ids must be unique in a tile"
        )


def _classes(table: Columns, cmap: ColumnMap, rows: np.ndarray, path: Path) -> np.ndarray:
    column = cmap.class_column
    values = table[column][rows]
    numeric = values.dtype.kind in "iufb"
    out = np.full(len(rows), CLASS_UNKNOWN if cmap.class_default is None else cmap.class_default, np.uint8)
    matched = np.zeros(len(rows), dtype=bool)
    for key, code in cmap.class_values.items():
        try:
            hit = values == (float(key) if numeric else key.strip())
        except ValueError:
            raise IngestError(
                f"{path}: column {column!r} holds numbers but the column map's [class] value {key!r} is not one"
            ) from None
        out[hit] = code
        matched |= hit
    if cmap.class_default is None and not matched.all():
        i = int(np.flatnonzero(~matched)[0])
        raise IngestError(
            f"{path}: column {column!r}, row {rows[i]}: value {_show(values[i])} is not among the column map's "
            f"[class] values {list(cmap.class_values)}; add it or set [class] default"
        )
    return out


def _cutout_paths(
    cmap: ColumnMap,
    catalog: Path,
    tile_name: str,
    images: Mapping[str, str | Path],
    cubes: Mapping[str, str | Path],
) -> dict[str, tuple[str, Path]]:
    """Band -> ("image" | "cube", path), in band-set order; the map's images, then the caller's."""
    bands = cmap.band_set.bands
    unknown = sorted((set(images) | set(cubes)) - set(bands))
    if unknown:
        raise IngestError(
            f"unknown bands {unknown} for cutouts; band set {cmap.band_set.name!r} has {list(bands)}"
        )
    both = sorted(set(images) & set(cubes))
    if both:
        raise IngestError(f"bands {both} have both a tile image and a cutout cube; give one per band")
    from_map = {b: ("image", _map_image_path(t, catalog, tile_name)) for b, t in cmap.image_files.items()}
    given = {
        **from_map,
        **{b: ("image", Path(p)) for b, p in images.items()},
        **{b: ("cube", Path(p)) for b, p in cubes.items()},
    }
    if given and cmap.ra is None:
        raise IngestError(f"column map {cmap.source} has no ra/dec columns, so no cutouts can be placed")
    no_psf = [b for b in given if b not in cmap.psf_fwhm_arcsec]
    if no_psf:
        raise IngestError(f"column map {cmap.source}: [images] psf_fwhm_arcsec lacks image bands {no_psf}")
    return {b: given[b] for b in bands if b in given}


def _map_image_path(template: str, catalog: Path, tile_name: str) -> Path:
    path = Path(template.replace("{tile}", tile_name))
    return path if path.is_absolute() else catalog.parent / path


def _tile_attrs(
    cmap: ColumnMap, catalog: Path, cutout_paths: Mapping[str, tuple[str, Path]], n_read: int, n_rows: int
) -> dict[str, Any]:
    image_bands = list(cutout_paths)
    return {
        "band_set": cmap.band_set.name,
        "bands": list(cmap.band_set.bands),
        "image_bands": image_bands,
        "pixel_scale_arcsec": cmap.pixel_scale_arcsec,
        "psf_fwhm_arcsec": dict(cmap.psf_fwhm_arcsec),
        "zeropoint": dict(cmap.zeropoint),
        "ingest": {
            "catalog": str(catalog.resolve()),
            "column_map": cmap.to_dict(),
            "cutouts": {b: {"kind": kind, "path": str(p.resolve())} for b, (kind, p) in cutout_paths.items()},
            "rows_read": n_read,
            "rows_written": n_rows,
            "distributed_pz_version": __version__,
        },
    }
