"""Read the named columns of a FITS, Parquet, CSV or whitespace-ASCII catalogue into numpy arrays.

Every reader returns ``{column: 1-D array}`` for exactly the columns asked for. Missing values
become NaN in floating-point columns; in any other column they are an error naming the row.
Only the asked-for columns are decoded from FITS (memory-mapped) and Parquet files.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from astropy.io import ascii as astropy_ascii
from astropy.io import fits
from astropy.table import MaskedColumn

from distributed_pz.survey.ingest.columnmap import INPUT_FORMATS, CatalogFormat
from distributed_pz.survey.ingest.ingest_errors import IngestError

SUFFIXES = {
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".txt": "ascii",
    ".dat": "ascii",
    ".ascii": "ascii",
}
"""File suffixes (before an optional ``.gz``) and the format they imply."""


def catalog_format(path: Path, declared: str | None) -> str:
    """The format of ``path``: the declared one, else the one its suffix implies."""
    if declared is not None:
        return declared
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in SUFFIXES:
        return SUFFIXES[suffixes[-1]]
    raise IngestError(
        f"{path}: cannot tell the catalogue format from the suffix {''.join(path.suffixes)!r} "
        f"(known: {sorted(SUFFIXES)}); set [catalog] format to one of {list(INPUT_FORMATS)} in the column map"
    )


def read_catalog(path: str | Path, options: CatalogFormat, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """Read ``columns`` of the catalogue at ``path``.

    Parameters
    ----------
    options
        Format options from the column map.
    columns
        Column names to return (case-insensitive for FITS).

    Returns
    -------
    dict
        Column name -> 1-D array of the catalogue's length (string columns as ``str`` arrays).

    Raises
    ------
    IngestError
        The file is absent or not of its format, a column is missing (close matches are listed)
        or not one-dimensional, or a non-float column has a missing value.
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: no such catalogue file")
    reader = {"fits": _read_fits, "parquet": _read_parquet, "csv": _read_text, "ascii": _read_text}
    fmt = catalog_format(path, options.format)
    return reader[fmt](path, fmt, options, list(columns))


def _check_columns(path: Path, available: Sequence[str], wanted: Sequence[str], fold_case: bool) -> None:
    norm = (lambda c: c.upper()) if fold_case else (lambda c: c)
    have = {norm(c) for c in available}
    for column in wanted:
        if norm(column) not in have:
            close = difflib.get_close_matches(column, list(available), n=3, cutoff=0.6)
            hint = f"close matches: {close}" if close else f"columns: {_preview(available)}"
            raise IngestError(f"{path}: no column {column!r} ({hint})")


def _preview(names: Sequence[str], n: int = 12) -> str:
    shown = ", ".join(names[:n])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > n else shown


def _read_fits(path: Path, fmt: str, options: CatalogFormat, columns: list[str]) -> dict[str, np.ndarray]:
    try:
        hdul = fits.open(path, memmap=True)
    except (OSError, ValueError) as exc:
        raise IngestError(f"{path}: not a readable FITS file ({exc})") from None
    with hdul:
        if options.hdu >= len(hdul) or not isinstance(hdul[options.hdu], fits.BinTableHDU | fits.TableHDU):
            tables = [i for i, h in enumerate(hdul) if isinstance(h, fits.BinTableHDU | fits.TableHDU)]
            raise IngestError(f"{path}: HDU {options.hdu} is not a table (table HDUs: {tables})")
        table = hdul[options.hdu]
        _check_columns(path, table.columns.names, columns, fold_case=True)
        return {c: _plain(path, c, np.asarray(table.data[c])) for c in columns}


def _read_parquet(path: Path, fmt: str, options: CatalogFormat, columns: list[str]) -> dict[str, np.ndarray]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(f"{path}: not a readable Parquet file ({exc})") from None
    _check_columns(path, parquet.schema_arrow.names, columns, fold_case=False)
    table = parquet.read(columns=columns)
    return {c: _from_arrow(path, c, table.column(c)) for c in columns}


def _from_arrow(path: Path, column: str, values: pa.ChunkedArray) -> np.ndarray:
    if values.null_count:
        if pa.types.is_floating(values.type):
            values = pc.fill_null(values, float("nan"))
        else:
            row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            raise IngestError(f"{path}: column {column!r}, row {row}: missing value")
    if pa.types.is_nested(values.type):
        raise IngestError(f"{path}: column {column!r} is not one value per row ({values.type})")
    array = values.to_numpy()
    return array.astype(str) if array.dtype == object else array


def _read_text(path: Path, fmt: str, options: CatalogFormat, columns: list[str]) -> dict[str, np.ndarray]:
    delimiter = options.delimiter or ("," if fmt == "csv" else None)
    kwargs = {"comment": options.comment, "guess": False, "fast_reader": True}
    if delimiter is not None:
        kwargs["delimiter"] = delimiter
    if options.names:
        kwargs["names"] = list(options.names)
    text_format = ("csv" if fmt == "csv" else "basic") if options.header else "no_header"
    try:
        table = astropy_ascii.read(path, format=text_format, **kwargs)
    except (ValueError, UnicodeDecodeError, astropy_ascii.InconsistentTableError) as exc:
        message = " ".join(str(exc).split())
        raise IngestError(f"{path}: cannot be read as {fmt} text ({message})") from None
    _check_columns(path, table.colnames, columns, fold_case=False)
    out = {}
    for c in columns:
        col = table[c]
        if isinstance(col, MaskedColumn) and col.mask.any():
            if col.dtype.kind != "f":
                row = int(np.flatnonzero(col.mask)[0])
                raise IngestError(f"{path}: column {c!r}, row {row}: missing value")
            col = col.filled(np.nan)
        out[c] = _plain(path, c, np.asarray(col))
    return out


def _plain(path: Path, column: str, values: np.ndarray) -> np.ndarray:
    """A native-byte-order, in-memory 1-D copy (strings decoded and stripped)."""
    if values.ndim != 1:
        raise IngestError(f"{path}: column {column!r} is not one value per row (shape {values.shape})")
    if values.dtype.kind in "SU":
        return np.char.strip(values.astype(str))
    return np.array(values, dtype=values.dtype.newbyteorder("="))
