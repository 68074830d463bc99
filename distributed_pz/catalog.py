"""THE output catalogue: columns, flag bits, Parquet/FITS read and write, PDF columns, qp.

Every catalogue distributed_pz writes — a tile's photo-z (``dpz predict``), an ensemble's
out-of-fold predictions (``oof.parquet``) — and every one it reads (``dpz evaluate``) goes
through this module.

Columns (:data:`COLUMNS`): ``object_id, ra, dec, z_phot, z_mean, z_std, z_lo68, z_hi68, odds,
flags, n_members`` and the PDF — ``pdf_weights, pdf_means, pdf_sigmas`` (Gaussian mixture,
``K`` components) or ``pdf`` (density on the ``z_grid`` of the metadata). In Parquet the PDF
columns are fixed-size lists, units and descriptions are field metadata, and the catalogue
metadata are schema-metadata keys holding JSON. In FITS the PDF columns are ``(N, K)``
columns of the ``CATALOG`` table, units are ``TUNIT``, metadata are header keywords (see
:data:`FITS_KEYWORDS`) and a grid PDF's redshifts are the ``Z_GRID`` image extension.
The ``flags`` column is the OR of the :class:`Flag` bits.

A third format, ``qp`` (``.hdf5``), is LSST DESC qp's own file: ``qp.read(path)`` gives a
``qp.Ensemble`` of the PDFs (``qp.mixmod``, or ``qp.interp`` for a grid PDF) with the point
estimates in its ancil table under RAIL's names (:data:`QP_ANCIL`).

A writer has ``write_chunk`` and ``commit`` (STYLE's streaming contract): chunks go to a
hidden temporary file, moved onto the target by ``commit`` (a rename on a local disk, one
upload to the final key on an object store, :mod:`distributed_pz._files`), so a reader never
sees half a catalogue. Paths may be fsspec URLs (``s3://``, ``gs://``). Parts are always Parquet.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from distributed_pz._files import atomic_path, commit_file, is_remote, local_path, temporary_beside
from distributed_pz.metrics.pdf import GaussianMixturePDF, GridPDF, RedshiftPDF, to_qp


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
    NOT_GALAXY = 128
    """The ensemble's star/galaxy/QSO head gives this source ``p_galaxy`` < 0.5 (GaZNet §4.1's cut)."""


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
    Flag.NOT_GALAXY: "NOT_GALAXY: the class head's p_galaxy < 0.5 (likely a star or QSO; cut it)",
}
"""Bit value -> one-line meaning, written into catalogue metadata."""

FLAG_DTYPE = np.dtype("int32")
"""Dtype of the ``flags`` column."""


def describe(flags: int) -> list[str]:
    """Names of the bits set in ``flags``, e.g. ``["NO_PHOTOMETRY", "PARTIAL_INPUT"]``."""
    return [bit.name for bit in Flag if flags & bit]


FORMATS: dict[str, tuple[str, ...]] = {
    "parquet": (".parquet", ".pq"),
    "fits": (".fits", ".fit", ".fits.gz"),
    "csv": (".csv", ".csv.gz"),
    "qp": (".hdf5",),
}
"""Table format -> the file suffixes read as it; the first is the one written."""
WRITE_FORMATS = ("parquet", "fits", "qp")
"""Formats catalogues are written in."""
Z_GRID_KEY = "z_grid"
"""Metadata key (``Z_GRID`` in FITS) of a grid PDF's redshift grid."""
MIXTURE_COLUMNS = ("pdf_weights", "pdf_means", "pdf_sigmas")
"""The Gaussian-mixture PDF columns."""
COLUMNS: dict[str, tuple[str, str]] = {
    "object_id": ("", "source identifier, as in the survey store"),
    "ra": ("deg", "right ascension"),
    "dec": ("deg", "declination"),
    "tile": ("", "survey tile of the source"),
    "z_spec": ("", "spectroscopic redshift (out-of-fold catalogues)"),
    "z_phot": ("", "photometric redshift: mode of p(z)"),
    "z_mean": ("", "mean of p(z)"),
    "z_std": ("", "standard deviation of p(z)"),
    "z_lo68": ("", "15.87 % quantile of p(z)"),
    "z_hi68": ("", "84.13 % quantile of p(z)"),
    "odds": ("", "ODDS: probability within z_phot +- odds_interval / 2 (DEEPZ eq. 7)"),
    "flags": ("", "bit flags, meanings in the flag_bits metadata"),
    "n_members": ("", "ensemble members pooled into this source's p(z)"),
    "p_galaxy": ("", "probability of being a galaxy (not a star or QSO), ensemble class head"),
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
    "pdf_source": "PDFSRC",
    "calibration": "CALIB",
    "calibration_hash": "CALIBSHA",
}
"""Metadata key -> FITS header keyword; flag meanings go to ``FLAGBIT0``, ``FLAGBIT1``, ..."""


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
        array = _arrow_array(values) if values.ndim == 1 else _fixed_size_list(values)
        fields.append(
            pa.field(name, array.type, nullable=False, metadata={"unit": unit, "description": description})
        )
        arrays.append(array)
    schema = pa.schema(fields, metadata=_schema_metadata(metadata or {}))
    return pa.Table.from_arrays(arrays, schema=schema)


def _schema_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v) for k, v in metadata.items()}


def _fixed_size_list(values: np.ndarray) -> pa.FixedSizeListArray:
    n, k = values.shape
    return pa.FixedSizeListArray.from_arrays(_arrow_array(values.reshape(n * k)), k)


def _arrow_array(values: np.ndarray) -> pa.Array:
    """A contiguous 1-D array as Arrow; numbers without ``pa.array``, which imports pandas (0.2 s of
    every ``dpz predict`` worker, issue 25)."""
    if values.dtype.kind not in "iuf" or not values.dtype.isnative:
        return pa.array(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def from_arrow(table: pa.Table) -> dict[str, np.ndarray]:
    """Arrow table -> columns, list columns as ``(N, K)`` arrays."""
    return {name: _arrow_to_numpy(name, table.column(name)) for name in table.column_names}


def _target(path: str | os.PathLike) -> str | Path:
    """A local path as a :class:`Path`, a URL kept as the string."""
    return str(path) if is_remote(path) else local_path(path)


def write_part(path: str | os.PathLike, columns: Mapping[str, np.ndarray]) -> str | Path:
    """Write one task's rows as a Parquet part file, atomically (temporary file, then rename)."""
    with writing(path, "parquet", {}) as writer:
        writer.write_chunk(columns)
    return writer.path


def write_table(
    path: str | os.PathLike, columns: Mapping[str, np.ndarray], metadata: Mapping[str, Any]
) -> str | Path:
    """Write a whole catalogue (format from the suffix) in one call, atomically."""
    with writing(path, table_format(path), metadata) as writer:
        writer.write_chunk(columns)
    return writer.path


class ParquetWriter:
    """Stream chunks into one Parquet catalogue, renamed into place on :meth:`commit`."""

    def __init__(self, path: str | os.PathLike, metadata: Mapping[str, Any]) -> None:
        self.path = _target(path)
        self.metadata = dict(metadata)
        self._tmp = temporary_beside(self.path)
        self._writer: pq.ParquetWriter | None = None

    def write_chunk(self, chunk: Mapping[str, np.ndarray] | pa.Table) -> None:
        """Append rows (columns, or an Arrow table of part-file columns, taken as they are)."""
        if isinstance(chunk, pa.Table):
            table = chunk.replace_schema_metadata(_schema_metadata(self.metadata))
        else:
            table = to_arrow(chunk, self.metadata)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema)
        self._writer.write_table(table)

    def commit(self) -> str | Path:
        """Close and move into place."""
        if self._writer is None:
            raise ValueError(f"{self.path}: no rows written")
        self._writer.close()
        commit_file(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file."""
        if self._writer is not None:
            self._writer.close()
        self._tmp.unlink(missing_ok=True)


class _CollectingWriter:
    """Collect chunks and write the whole file on :meth:`commit` (formats that do not stream)."""

    def __init__(self, path: str | os.PathLike, metadata: Mapping[str, Any]) -> None:
        self.path = _target(path)
        self.metadata = dict(metadata)
        self._chunks: list[dict[str, np.ndarray]] = []

    def write_chunk(self, chunk: Mapping[str, np.ndarray] | pa.Table) -> None:
        """Append rows (columns, or an Arrow table of part-file columns)."""
        self._chunks.append(from_arrow(chunk) if isinstance(chunk, pa.Table) else dict(chunk))

    def abort(self) -> None:
        """Drop what was collected."""
        self._chunks.clear()

    def _columns(self) -> dict[str, np.ndarray]:
        if not self._chunks:
            raise ValueError(f"{self.path}: no rows written")
        return {k: np.concatenate([c[k] for c in self._chunks]) for k in self._chunks[0]}


class FitsWriter(_CollectingWriter):
    """Write one FITS catalogue on :meth:`commit` (FITS is not streamable)."""

    def commit(self) -> str | Path:
        """Write the table (and the ``Z_GRID`` extension of a grid PDF), then move into place."""
        from astropy.io import fits
        from astropy.table import Table

        columns = self._columns()
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
        with atomic_path(self.path) as tmp:
            fits.HDUList(hdus).writeto(tmp)
        return self.path


QP_ANCIL = {
    "object_id": "object_id",
    "ra": "ra",
    "dec": "dec",
    "z_phot": "zmode",
    "z_mean": "zmean",
    "z_std": "zstd",
    "z_lo68": "z_lo68",
    "z_hi68": "z_hi68",
    "odds": "odds",
    "flags": "flags",
    "n_members": "n_members",
}
"""Catalogue column -> its name in a qp file's ancil table; ``zmedian`` (the 50 % quantile) is added."""


NO_ESTIMATE_SIGMA = 10.0
"""σ of the placeholder PDF (one Gaussian at z = 0) of a source without an estimate in a qp file."""


def qp_defined(pdf: RedshiftPDF) -> RedshiftPDF:
    """``pdf`` with a placeholder where a source has none, so that every qp PDF is normalised.

    A source without an estimate (all-zero weights or grid) becomes one Gaussian of mean 0 and
    σ :data:`NO_ESTIMATE_SIGMA` (flat to 5 % over 0 < z < 3), or a flat grid PDF: no redshift
    information, and no NaN for qp to warn about. Rows are kept so that a qp file (and a RAIL
    estimate) has one PDF per catalogue row; their ancil ``flags`` and NaN ``zmode`` say why.
    """
    if isinstance(pdf, GaussianMixturePDF):
        empty = ~np.isfinite(pdf.weights).all(axis=1)
        weights, means, sigmas = pdf.weights.copy(), pdf.means.copy(), pdf.sigmas.copy()
        weights[empty], means[empty], sigmas[empty] = 0.0, 0.0, NO_ESTIMATE_SIGMA
        weights[empty, 0] = 1.0
        return GaussianMixturePDF(weights, means, sigmas)
    density = np.array(pdf.density, dtype=np.float64)
    z = np.asarray(pdf.z_grid, dtype=np.float64)
    density[~(np.nan_to_num(density).sum(axis=1) > 0)] = 1.0 / (z[-1] - z[0])
    return GridPDF(z, density)


def qp_ensemble(columns: Mapping[str, np.ndarray], meta: Mapping[str, Any]):
    """Catalogue columns as a ``qp.Ensemble`` with the point estimates in ancil (:data:`QP_ANCIL`).

    Sources flagged with no estimate hold a placeholder PDF (:func:`qp_defined`); their ancil
    ``flags`` say why (select ``flags & NO_ESTIMATE == 0``).
    """
    pdf = pdf_from_columns(columns, meta)
    if pdf is None:
        raise ValueError("no PDF columns (pdf_weights/pdf_means/pdf_sigmas, or pdf with a z grid)")
    ancil = {name: np.asarray(columns[col]) for col, name in QP_ANCIL.items() if col in columns}
    usable = np.isfinite(columns["z_phot"]) if "z_phot" in columns else np.ones(len(pdf), bool)
    median = np.full(len(pdf), np.nan)
    if usable.any():
        median[usable] = pdf.subset(usable).quantile(0.5)
    ancil["zmedian"] = median.astype(np.float32)
    ensemble = to_qp(qp_defined(pdf))
    ensemble.set_ancil(ancil)
    return ensemble


class QpWriter(_CollectingWriter):
    """Write one qp file (HDF5) on :meth:`commit`: ``qp.read`` gives the PDFs with ancil."""

    def commit(self) -> str | Path:
        """Build the ensemble, write it, then move it into place."""
        ensemble = qp_ensemble(self._columns(), self.metadata)
        with atomic_path(self.path) as tmp, tempfile.TemporaryDirectory() as folder:
            written = os.path.join(folder, "pdfs.hdf5")  # qp names its file from the suffix: a plain name
            ensemble.write_to(written)
            shutil.move(written, tmp)
        return self.path


def _bit(item: tuple[str, str]) -> int:
    return int(item[0])


def open_writer(
    path: str | os.PathLike, fmt: str, metadata: Mapping[str, Any]
) -> ParquetWriter | FitsWriter | QpWriter:
    """A catalogue writer for ``fmt`` (``"parquet"``, ``"fits"`` or ``"qp"``)."""
    if fmt == "parquet":
        return ParquetWriter(path, metadata)
    if fmt == "fits":
        return FitsWriter(path, metadata)
    if fmt == "qp":
        return QpWriter(path, metadata)
    raise ValueError(f"format must be one of {list(WRITE_FORMATS)}, not {fmt!r}")


@contextmanager
def writing(
    path: str | os.PathLike, fmt: str, metadata: Mapping[str, Any]
) -> Iterator[ParquetWriter | FitsWriter | QpWriter]:
    """A writer (:func:`open_writer`) committed when the block ends; aborted, leaving nothing,
    when it raises."""
    writer = open_writer(path, fmt, metadata)
    try:
        yield writer
        writer.commit()
    except BaseException:
        writer.abort()
        raise


def commit_parts(
    parts: Iterable[str | os.PathLike], path: str | os.PathLike, fmt: str, metadata: Mapping[str, Any]
) -> int:
    """Concatenate part files, in the order given, into one catalogue committed atomically.

    Each part is read on this thread: a part is a few MB, and Arrow's thread pools would add
    threads, each with its own malloc arena and mimalloc heap, to a worker meant to run one.

    Returns
    -------
    int
        Rows written.
    """
    rows = 0
    with writing(path, fmt, metadata) as writer:
        for part in parts:
            table = _read_parquet(str(part), use_threads=False)
            writer.write_chunk(table)
            rows += table.num_rows
    return rows


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


def table_format(path: str | os.PathLike) -> str:
    """The format named by a file's suffix (see :data:`FORMATS`)."""
    name = str(path).lower()
    matches = [(len(s), fmt) for fmt, suffixes in FORMATS.items() for s in suffixes if name.endswith(s)]
    if not matches:
        known = ", ".join(s for suffixes in FORMATS.values() for s in suffixes)
        raise ValueError(f"{path}: unknown table format (expected one of {known})")
    return max(matches)[1]


def suffix(fmt: str) -> str:
    """The suffix a catalogue of format ``fmt`` is written with."""
    return FORMATS[fmt][0]


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
    if fmt == "qp":
        raise ValueError(f"{path}: a qp file; read it with qp.read")
    if fmt == "fits":
        return _read_fits(str(path), columns)
    if fmt == "parquet":
        table = _read_parquet(str(path), columns)
    else:
        with fsspec.open(str(path), "rb", compression="infer") as handle:
            table = pa_csv.read_csv(handle)
        if columns is not None:
            table = table.select([c for c in columns if c in table.column_names])
    raw = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    raw.pop("ARROW:schema", None)
    meta = {key: _decode(value) for key, value in raw.items()}
    cols = {name: _arrow_to_numpy(name, table.column(name)) for name in table.column_names}
    return CatalogTable(str(path), fmt, cols, _with_grid(meta, path))


def _read_parquet(url: str, columns: Sequence[str] | None = None, use_threads: bool = True) -> pa.Table:
    """A Parquet file (local or fsspec URL), only the ``columns`` it has (all when None); read as
    one file, not through ``pq.read_table``'s datasets, which import pandas (issue 25)."""
    fs, path = fsspec.core.url_to_fs(url)
    with pq.ParquetFile(path, filesystem=fs) as file:
        wanted = None if columns is None else [c for c in columns if c in file.schema_arrow.names]
        return file.read(columns=wanted, use_threads=use_threads)


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
    import pyarrow.compute as pc  # imported when first needed: not by dpz predict (issue 25)

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
    from astropy.io import fits

    with fits.open(path, use_fsspec=is_remote(path)) as hdul:
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


def pdf_from_columns(columns: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> RedshiftPDF | None:
    """The catalogue's PDFs: Gaussian-mixture columns, or a ``pdf`` grid with ``z_grid`` metadata.

    Returns None for a point-only catalogue.
    """
    if all(name in columns for name in MIXTURE_COLUMNS):
        return GaussianMixturePDF(*(columns[name] for name in MIXTURE_COLUMNS))
    if "pdf" in columns:
        if Z_GRID_KEY not in meta:
            raise ValueError(f"catalogue has a 'pdf' column but no '{Z_GRID_KEY}' metadata")
        return GridPDF(meta[Z_GRID_KEY], columns["pdf"])
    return None


def read_qp(path: str | os.PathLike):
    """Read a catalogue's PDFs as a ``qp.Ensemble`` (LSST DESC qp; ``pip install qp-prob``).

    The exact calls, for anyone reading a catalogue without this package::

        qp.Ensemble(qp.mixmod, data={"weights": pdf_weights, "means": pdf_means, "stds": pdf_sigmas})
        qp.Ensemble(qp.interp, data={"xvals": z_grid, "yvals": pdf})   # --pdf grid

    Sources flagged with no estimate have all-zero mixture weights (or an all-zero grid): their
    ``qp`` PDF is not defined, so select ``flags & NO_ESTIMATE == 0`` first.
    """
    table = read_catalog(path, [*MIXTURE_COLUMNS, "pdf"])
    pdf = pdf_from_columns(table.columns, table.meta)
    if pdf is None:
        raise ValueError(f"{path}: no PDF columns (pdf_weights/pdf_means/pdf_sigmas, or pdf with a z grid)")
    return to_qp(pdf)
