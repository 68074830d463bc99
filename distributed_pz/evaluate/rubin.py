"""A catalogue in Rubin DP1's ``object_photoz`` convention, with ``dpz`` as the algorithm name.

DP1's photo-z catalogue (read with ``lsdb``) has, per algorithm ``ALGO``, the point columns
``ALGO_z_{median,mean,mode,err95_low,err95_high,err68_low,err68_high}`` — the ``err`` columns are
the bounds of the central 95 % and 68 % intervals, in redshift — and one nested PDF column, here
``dpz_ens_mixmod`` with the fields ``means, stds, weights`` (one list per source), from which
its tutorial rebuilds ``qp.Ensemble(qp.mixmod_gen, data=dict(means=..., stds=..., weights=...))``.
:func:`rubin_table` turns a chunk of a ``dpz predict`` Parquet catalogue into those columns (with
``object_id, ra, dec, flags`` kept); :class:`RubinReader` feeds it to ``hats-import``.

The point columns summarise the catalogue's full p(z): mode, mean and 68 % bounds are its
``z_phot, z_mean, z_lo68, z_hi68``; median and 95 % bounds are the mixture's quantiles. The
nested mixture is the full one, or its ``components``-Gaussian reduction
(:func:`~distributed_pz.metrics.reduce.reduce_mixture`: each source's mean and variance kept).
A source without an estimate has NaN point columns and the qp placeholder mixture
(:func:`~distributed_pz.catalog.qp_defined`), so the whole column is one valid ``qp.Ensemble``.
"""

from __future__ import annotations

from collections.abc import Sequence

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from hats_import.catalog.file_readers.parquet import ParquetPyarrowReader

from distributed_pz.catalog import MIXTURE_COLUMNS, from_arrow, qp_defined
from distributed_pz.metrics.pdf import GaussianMixturePDF
from distributed_pz.metrics.reduce import reduce_mixture

ALGORITHM = "dpz"
"""The algorithm name that prefixes every photo-z column."""
PDF_COLUMN = f"{ALGORITHM}_ens_mixmod"
"""The nested mixture column: fields ``means, stds, weights``, as DP1's ``knn_ens_mixmod``."""
KEPT = ("object_id", "ra", "dec", "flags")
"""Catalogue columns copied as they are."""
COPIED = {"mean": "z_mean", "mode": "z_phot", "err68_low": "z_lo68", "err68_high": "z_hi68"}
"""DP1 point column (after ``dpz_z_``) -> the catalogue column it is."""
QUANTILES = {"median": 0.5, "err95_low": 0.025, "err95_high": 0.975}
"""DP1 point column (after ``dpz_z_``) -> the quantile of p(z) it is."""
POINTS = ("median", "mean", "mode", "err95_low", "err95_high", "err68_low", "err68_high")
"""DP1's order of the point columns."""
SOURCE_COLUMNS = (*KEPT, *COPIED.values(), *MIXTURE_COLUMNS)
"""The catalogue columns :func:`rubin_table` reads."""
CHUNK_ROWS = 65_536
"""Rows per chunk the reader transforms (a 500-component mixture: ~0.8 GB of float64 at once)."""


def check_catalogues(files: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the first catalogue without the columns :func:`rubin_table` reads."""
    for file in files:
        fs, path = fsspec.core.url_to_fs(file)
        missing = [c for c in SOURCE_COLUMNS if c not in pq.read_schema(path, filesystem=fs).names]
        if missing:
            raise ValueError(
                f"{file}: --rubin needs the catalogue's Gaussian-mixture p(z); missing columns "
                f"{', '.join(missing)} (a --pdf grid run has no mixture)"
            )


def _lists(values: np.ndarray) -> pa.ListArray:
    """``(N, K)`` float64 values as a list column, one list of ``K`` per row."""
    n, k = values.shape
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(n * k), pa.float64()))


def rubin_table(table: pa.Table, components: int | None = None) -> pa.Table:
    """A chunk of a ``dpz predict`` Parquet catalogue in DP1's ``object_photoz`` columns.

    Parameters
    ----------
    table
        Catalogue rows with :data:`SOURCE_COLUMNS`.
    components
        Merge each nested mixture into this many Gaussians; default: keep all.

    Returns
    -------
    pyarrow.Table
        :data:`KEPT`, ``dpz_z_*`` (float64, in :data:`POINTS` order) and :data:`PDF_COLUMN`.
    """
    cols = from_arrow(table.select(list(SOURCE_COLUMNS)))
    pdf = GaussianMixturePDF(*(cols[name] for name in MIXTURE_COLUMNS))
    points = {p: pdf.quantile(q) for p, q in QUANTILES.items()}
    points |= {p: np.asarray(cols[c], dtype=np.float64) for p, c in COPIED.items()}
    weights, means, stds = qp_defined(pdf).mixture
    if components is not None:
        merged = reduce_mixture(*(torch.from_numpy(a) for a in (weights, means, stds)), components)
        weights, means, stds = (t.numpy() for t in merged)
    mixture = pa.StructArray.from_arrays(
        [_lists(means), _lists(stds), _lists(weights)], names=["means", "stds", "weights"]
    )
    names = [*KEPT, *(f"{ALGORITHM}_z_{p}" for p in POINTS), PDF_COLUMN]
    arrays = [table.column(c).combine_chunks() for c in KEPT]
    arrays += [pa.array(points[p], pa.float64()) for p in POINTS] + [mixture]
    return pa.Table.from_arrays(arrays, names=names)


class RubinReader(ParquetPyarrowReader):
    """hats-import's Parquet reader, each chunk turned into DP1's columns by :func:`rubin_table`.

    hats-import's mapping pass asks for only the position columns: those are read as they are.
    """

    def __init__(self, components: int | None = None) -> None:
        super().__init__(chunksize=CHUNK_ROWS)
        self.components = components

    def read(self, input_file, read_columns=None):
        """Yield the file's chunks: ``read_columns`` as stored, or all of DP1's columns."""
        if read_columns is not None:
            yield from super().read(input_file, read_columns=read_columns)
            return
        for table in super().read(input_file, read_columns=list(SOURCE_COLUMNS)):
            yield rubin_table(table, self.components)
