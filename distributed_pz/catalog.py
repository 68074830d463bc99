"""Read photo-z catalogues and truth tables (Parquet, FITS, CSV) into numpy arrays.

Only reading lives here (the writers belong to the inference layer). A catalogue's grid PDF
keeps its redshift grid in the file metadata under ``z_grid``: in Parquet a schema-metadata
key holding a JSON list; in FITS a ``Z_GRID`` extension (image or one-column table) or a
``Z_GRID`` header keyword holding a JSON list. Fixed-size list columns (Parquet) and
multi-dimensional columns (FITS) become [N, K] arrays.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from astropy.io import fits

FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".fits": "fits",
    ".fit": "fits",
    ".fits.gz": "fits",
    ".csv": "csv",
    ".csv.gz": "csv",
}
"""File suffix → format."""
Z_GRID_KEY = "z_grid"
"""Metadata key (``Z_GRID`` in FITS) of a grid PDF's redshift grid."""
_FITS_STRUCTURAL = (
    "XTENSION",
    "BITPIX",
    "NAXIS",
    "PCOUNT",
    "GCOUNT",
    "TFIELDS",
    "EXTNAME",
    "SIMPLE",
    "EXTEND",
    "COMMENT",
    "HISTORY",
)
_FITS_COLUMN_KEYS = ("TTYPE", "TFORM", "TUNIT", "TDIM", "TZERO", "TSCAL", "TNULL", "TDISP")


class Flag(enum.IntFlag):
    """Bits of a catalogue's ``flags`` column: why a photo-z is missing or less trustworthy.

    A source with any bit of :data:`NO_ESTIMATE` has NaN redshift columns and ``n_members`` 0;
    no other source has a NaN there. The meanings travel in every catalogue's metadata
    (:data:`FLAG_BITS`).
    """

    NO_PHOTOMETRY = 1
    """No catalogue band the models read is measured."""
    NO_REFERENCE = 2
    """DEEPZ: the reference band is missing or its flux is not positive (no flux ratios)."""
    NO_IMAGE = 4
    """An image model got a cutout with a channel without any finite pixel."""
    BAD_OUTPUT = 8
    """The inputs were usable but no ensemble member returned a finite result."""
    MEMBER_DROPPED = 16
    """Some (not all) members returned non-finite results; the PDF pools the ``n_members`` others."""
    PARTIAL_INPUT = 32
    """Some inputs are missing or non-finite (a band not measured, a NaN pixel): the members saw fill values."""
    WIDTH_FLOOR = 64
    """Point-estimate members with fewer than two finite results: the width is the floor, not a spread."""


NO_ESTIMATE = Flag.NO_PHOTOMETRY | Flag.NO_REFERENCE | Flag.NO_IMAGE | Flag.BAD_OUTPUT
"""Bits that mean "no redshift": the redshift columns are NaN."""

FLAG_BITS: dict[int, str] = {
    Flag.NO_PHOTOMETRY: "NO_PHOTOMETRY: no catalogue band the models read is measured (no estimate)",
    Flag.NO_REFERENCE: "NO_REFERENCE: reference-band flux missing or not positive (no estimate)",
    Flag.NO_IMAGE: "NO_IMAGE: a cutout channel has no finite pixel (no estimate)",
    Flag.BAD_OUTPUT: "BAD_OUTPUT: no ensemble member returned a finite result (no estimate)",
    Flag.MEMBER_DROPPED: "MEMBER_DROPPED: some members returned non-finite results; pooled over n_members",
    Flag.PARTIAL_INPUT: "PARTIAL_INPUT: some inputs missing or non-finite; the members saw fill values",
    Flag.WIDTH_FLOOR: "WIDTH_FLOOR: fewer than two finite point estimates; the PDF width is the floor",
}
"""Bit value -> one-line meaning, written into catalogue metadata."""

FLAG_DTYPE = np.dtype("int32")
"""Dtype of the ``flags`` column."""


def describe(flags: int) -> list[str]:
    """Names of the bits set in ``flags``, e.g. ``["NO_PHOTOMETRY", "PARTIAL_INPUT"]``."""
    return [bit.name for bit in Flag if flags & bit]


@dataclass(frozen=True)
class CatalogTable:
    """A table read from disk.

    Attributes
    ----------
    path
        Where it was read from.
    format
        ``"parquet"``, ``"fits"`` or ``"csv"``.
    columns
        Column name → array of N rows ([N] or [N, K]), native byte order.
    meta
        File metadata (Parquet schema metadata or FITS header), values JSON-decoded where
        possible; ``z_grid``, when present, as a float64 array.
    """

    path: str
    format: str
    columns: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


def table_format(path: str | Path) -> str:
    """The format named by a file's suffix (see :data:`FORMATS`)."""
    name = str(path).lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    raise ValueError(f"{path}: unknown table format (expected one of {', '.join(sorted(FORMATS))})")


def read_catalog(path: str | Path, columns: Sequence[str] | None = None) -> CatalogTable:
    """Read a catalogue or truth table.

    Parameters
    ----------
    path
        A ``.parquet``/``.pq``, ``.fits``/``.fit``/``.fits.gz`` or ``.csv``/``.csv.gz`` file.
    columns
        Columns to read; names absent from the file are skipped. All columns when None.

    Returns
    -------
    CatalogTable
    """
    fmt = table_format(path)
    if fmt == "fits":
        return _read_fits(str(path), columns)
    if fmt == "parquet":
        schema = pq.read_schema(path)
        wanted = None if columns is None else [c for c in columns if c in schema.names]
        table = pq.read_table(path, columns=wanted)
    else:
        table = pa_csv.read_csv(path)
        if columns is not None:
            table = table.select([c for c in columns if c in table.column_names])
    raw = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    raw.pop("ARROW:schema", None)
    meta = {key: _decode(value) for key, value in raw.items()}
    cols = {name: _arrow_to_numpy(name, table.column(name)) for name in table.column_names}
    return CatalogTable(str(path), fmt, cols, _with_grid(meta, path))


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _with_grid(meta: dict[str, Any], path: str | Path) -> dict[str, Any]:
    if Z_GRID_KEY in meta:
        grid = np.asarray(meta[Z_GRID_KEY], dtype=np.float64)
        if grid.ndim != 1:
            raise ValueError(f"{path}: metadata '{Z_GRID_KEY}' is not a list of redshifts")
        meta[Z_GRID_KEY] = grid
    return meta


def _arrow_to_numpy(name: str, column: pa.ChunkedArray) -> np.ndarray:
    array = column.combine_chunks()
    if pa.types.is_fixed_size_list(array.type) or pa.types.is_list(array.type):
        lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
        valid = ~np.isnan(lengths.astype(np.float64))
        width = int(lengths[valid][0]) if valid.any() else 0
        if np.any(lengths[valid] != width):
            raise ValueError(f"list column {name!r} has rows of different lengths")
        filled = pc.fill_null(array, pa.scalar([None] * width, type=array.type))
        values = pc.list_flatten(filled).to_numpy(zero_copy_only=False)
        return values.reshape(len(array), width)
    return array.to_numpy(zero_copy_only=False)


def _read_fits(path: str, columns: Sequence[str] | None) -> CatalogTable:
    with fits.open(path) as hdul:
        table_hdu = next((h for h in hdul if isinstance(h, fits.BinTableHDU | fits.TableHDU)), None)
        if table_hdu is None:
            raise ValueError(f"{path}: no table extension")
        names = table_hdu.columns.names
        wanted = names if columns is None else [c for c in columns if c in names]
        cols = {}
        for name in wanted:
            data = np.asarray(table_hdu.data[name])
            cols[name] = data.astype(data.dtype.newbyteorder("="), copy=True)
        meta = {
            key.lower(): _decode(value) if isinstance(value, str) else value
            for key, value in table_hdu.header.items()
            if key and not key.startswith(_FITS_STRUCTURAL + _FITS_COLUMN_KEYS)
        }
        if "Z_GRID" in hdul:
            grid_hdu = hdul["Z_GRID"]
            data = grid_hdu.data
            meta[Z_GRID_KEY] = np.asarray(
                data[data.columns.names[0]] if isinstance(grid_hdu, fits.BinTableHDU) else data
            ).ravel()
    return CatalogTable(path, "fits", cols, _with_grid(meta, path))
