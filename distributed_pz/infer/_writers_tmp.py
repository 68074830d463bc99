"""Catalogue files: per-task part files, and a tile's catalogue committed atomically.

Columns (:data:`COLUMNS`): ``object_id, ra, dec, z_phot, z_mean, z_std, z_lo68, z_hi68, odds,
flags, n_members`` and the PDF — ``pdf_weights, pdf_means, pdf_sigmas`` (Gaussian mixture,
``K`` components) or ``pdf`` (density on the ``z_grid`` of the metadata). In Parquet the PDF
columns are fixed-size lists, units and descriptions are field metadata, and the catalogue
metadata are schema-metadata keys holding JSON. In FITS the PDF columns are ``(N, K)``
columns of the ``CATALOG`` table, units are ``TUNIT``, metadata are header keywords (see
:data:`FITS_KEYWORDS`) and a grid PDF's redshifts are the ``Z_GRID`` image extension.

A writer has ``write_chunk`` and ``commit`` (STYLE's streaming contract): chunks go to a
hidden temporary file beside the target, renamed into place by ``commit``, so a reader never
sees half a catalogue. Parts are always Parquet.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from astropy.io import fits
from astropy.table import Table

FORMATS = {"parquet": ".parquet", "fits": ".fits"}
"""Catalogue format -> file suffix."""

COLUMNS: dict[str, tuple[str, str]] = {
    "object_id": ("", "source identifier, as in the survey store"),
    "ra": ("deg", "right ascension"),
    "dec": ("deg", "declination"),
    "z_phot": ("", "photometric redshift: mode of p(z)"),
    "z_mean": ("", "mean of p(z)"),
    "z_std": ("", "standard deviation of p(z)"),
    "z_lo68": ("", "15.87 % quantile of p(z)"),
    "z_hi68": ("", "84.13 % quantile of p(z)"),
    "odds": ("", "ODDS: probability within z_phot +- odds_interval / 2 (DEEPZ eq. 7)"),
    "flags": ("", "bit flags, meanings in the flag_bits metadata"),
    "n_members": ("", "ensemble members pooled into this source's p(z)"),
    "pdf_weights": ("", "p(z) Gaussian mixture: component weights (sum to 1)"),
    "pdf_means": ("", "p(z) Gaussian mixture: component means (redshift)"),
    "pdf_sigmas": ("", "p(z) Gaussian mixture: component standard deviations (redshift)"),
    "pdf": ("", "p(z) density per unit redshift at the z_grid metadata redshifts"),
}
"""Column name -> (unit, description), in file order."""

FITS_KEYWORDS = {
    "bundle_hash": "BUNDLE",
    "package_version": "DPZVER",
    "store": "STORE",
    "tile": "TILE",
    "created_utc": "DATE",
    "pdf_type": "PDFTYPE",
    "n_members": "NMEMBERS",
    "odds_interval": "ODDSDZ",
    "precision": "PRECISN",
}
"""Metadata key -> FITS header keyword; flag meanings go to ``FLAGBIT0``, ``FLAGBIT1``, ..."""


def to_arrow(columns: Mapping[str, np.ndarray], metadata: Mapping[str, Any] | None = None) -> pa.Table:
    """Catalogue columns as an Arrow table in :data:`COLUMNS` order, with units and metadata."""
    unknown = set(columns) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown catalogue columns {sorted(unknown)}")
    fields, arrays = [], []
    for name, (unit, description) in COLUMNS.items():
        if name not in columns:
            continue
        values = np.ascontiguousarray(columns[name])
        array = pa.array(values) if values.ndim == 1 else _fixed_size_list(values)
        fields.append(
            pa.field(name, array.type, nullable=False, metadata={"unit": unit, "description": description})
        )
        arrays.append(array)
    schema = pa.schema(fields, metadata={k: json.dumps(v) for k, v in (metadata or {}).items()})
    return pa.Table.from_arrays(arrays, schema=schema)


def _fixed_size_list(values: np.ndarray) -> pa.FixedSizeListArray:
    n, k = values.shape
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(n * k)), k)


def from_arrow(table: pa.Table) -> dict[str, np.ndarray]:
    """Arrow table -> columns, fixed-size lists as ``(N, K)`` arrays."""
    out = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(column.type):
            out[name] = column.flatten().to_numpy().reshape(len(column), column.type.list_size)
        else:
            out[name] = column.to_numpy()
    return out


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


def write_part(path: str | os.PathLike, columns: Mapping[str, np.ndarray]) -> Path:
    """Write one task's rows as a Parquet part file, atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        pq.write_table(to_arrow(columns), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class ParquetWriter:
    """Stream chunks into one Parquet catalogue, renamed into place on :meth:`commit`."""

    def __init__(self, path: str | os.PathLike, metadata: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.metadata = dict(metadata)
        self._tmp = _temporary(self.path)
        self._writer: pq.ParquetWriter | None = None

    def write_chunk(self, chunk: Mapping[str, np.ndarray] | pa.Table) -> None:
        """Append rows (columns, or an Arrow table of part-file columns)."""
        table = to_arrow(from_arrow(chunk) if isinstance(chunk, pa.Table) else chunk, self.metadata)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema)
        self._writer.write_table(table)

    def commit(self) -> Path:
        """Close and rename into place."""
        if self._writer is None:
            raise ValueError(f"{self.path}: no rows written")
        self._writer.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file."""
        if self._writer is not None:
            self._writer.close()
        self._tmp.unlink(missing_ok=True)


class FitsWriter:
    """Collect chunks and write one FITS catalogue on :meth:`commit` (FITS is not streamable)."""

    def __init__(self, path: str | os.PathLike, metadata: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.metadata = dict(metadata)
        self._tmp = _temporary(self.path)
        self._chunks: list[dict[str, np.ndarray]] = []

    def write_chunk(self, chunk: Mapping[str, np.ndarray] | pa.Table) -> None:
        """Append rows (columns, or an Arrow table of part-file columns)."""
        self._chunks.append(from_arrow(chunk) if isinstance(chunk, pa.Table) else dict(chunk))

    def commit(self) -> Path:
        """Write the table (and the ``Z_GRID`` extension of a grid PDF), then rename into place."""
        if not self._chunks:
            raise ValueError(f"{self.path}: no rows written")
        columns = {k: np.concatenate([c[k] for c in self._chunks]) for k in self._chunks[0]}
        table = Table()
        for name, (unit, _) in COLUMNS.items():
            if name in columns:
                table[name] = columns[name]
                table[name].unit = unit or None
        hdu = fits.table_to_hdu(table)
        hdu.name = "CATALOG"
        for key, keyword in FITS_KEYWORDS.items():
            if key in self.metadata:
                hdu.header[keyword] = self.metadata[key]
        for i, (bit, meaning) in enumerate(sorted(self.metadata.get("flag_bits", {}).items(), key=_bit)):
            hdu.header[f"FLAGBIT{i}"] = f"{bit}: {meaning}"
        hdus = [fits.PrimaryHDU(), hdu]
        if "z_grid" in self.metadata:
            hdus.append(fits.ImageHDU(np.asarray(self.metadata["z_grid"], dtype=np.float64), name="Z_GRID"))
        try:
            fits.HDUList(hdus).writeto(self._tmp)
            os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        """Drop what was collected."""
        self._chunks.clear()


def _bit(item: tuple[str, str]) -> int:
    return int(item[0])


def open_writer(path: str | os.PathLike, fmt: str, metadata: Mapping[str, Any]) -> ParquetWriter | FitsWriter:
    """A catalogue writer for ``fmt`` (``"parquet"`` or ``"fits"``)."""
    if fmt == "parquet":
        return ParquetWriter(path, metadata)
    if fmt == "fits":
        return FitsWriter(path, metadata)
    raise ValueError(f"format must be one of {sorted(FORMATS)}, not {fmt!r}")


def commit_parts(
    parts: Iterable[str | os.PathLike], path: str | os.PathLike, fmt: str, metadata: Mapping[str, Any]
) -> int:
    """Concatenate part files, in the order given, into one catalogue committed atomically.

    Returns
    -------
    int
        Rows written.
    """
    writer = open_writer(path, fmt, metadata)
    rows = 0
    try:
        for part in parts:
            table = pq.read_table(part)
            writer.write_chunk(table)
            rows += table.num_rows
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return rows
