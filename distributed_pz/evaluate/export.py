"""A run's catalogues as one HATS catalogue (HEALPix-partitioned Parquet, read by ``hats``/``lsdb``).

HATS is how Rubin and the LSDB tools deliver survey catalogues: the sky is cut into HEALPix
tiles of adaptive order so that each Parquet partition holds a bounded number of rows, and
every row carries its ``_healpix_29`` index. :func:`export_hats` runs the ``hats-import``
pipeline over the Parquet catalogues a ``dpz predict`` run committed (its ``manifest.json``
lists them), partitioning by HEALPix of ``ra``, ``dec``; ``lsdb.open_catalog(OUT)`` then reads
the same rows. Needs the ``[hats]`` extra (``hats``, ``hats-import``, ``lsdb``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from distributed_pz._files import exists, join, read_text
from distributed_pz.catalog import table_format
from distributed_pz.infer.manifest import RUN_MANIFEST

DEFAULT_PIXEL_THRESHOLD = 1_000_000
"""Most rows per HATS partition (hats-import's default)."""


@dataclass(frozen=True)
class HatsExport:
    """What :func:`export_hats` wrote: the catalogue URL, its rows and the input catalogues."""

    path: str
    rows: int
    catalogues: tuple[str, ...]


def run_catalogues(run: str, tiles: Sequence[str] | None = None) -> list[str]:
    """The committed Parquet catalogues of a ``dpz predict`` run folder, in tile order.

    Raises
    ------
    ValueError
        No manifest, a requested tile not committed, or catalogues not in Parquet.
    """
    path = join(run, RUN_MANIFEST)
    if not exists(path):
        raise ValueError(f"{run}: not a dpz predict run folder (no {RUN_MANIFEST})")
    committed = json.loads(read_text(path))["tiles"]
    names = list(tiles) if tiles else sorted(committed)
    missing = [t for t in names if t not in committed]
    if missing or not names:
        raise ValueError(f"{run}: tiles not committed: {missing or 'none at all'}")
    files = [join(run, committed[t]["file"]) for t in names]
    other = [f for f in files if table_format(f) != "parquet"]
    if other:
        raise ValueError(
            f"HATS export reads Parquet catalogues; rerun dpz predict --format parquet ({other[0]})"
        )
    return files


def export_hats(
    catalogues: Sequence[str],
    out: str,
    *,
    pixel_threshold: int = DEFAULT_PIXEL_THRESHOLD,
    workers: int = 1,
) -> HatsExport:
    """Import Parquet catalogues into a new HATS catalogue at ``out`` with ``hats-import``.

    Parameters
    ----------
    catalogues
        Parquet catalogues with ``ra``, ``dec`` (degrees), e.g. :func:`run_catalogues`.
    out
        The HATS catalogue folder to create (its name is the catalogue name); must not exist.
    pixel_threshold
        Most rows per partition.
    workers
        Threads of the local Dask client the import runs on.
    """
    from dask.distributed import Client
    from hats.catalog import TableProperties
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.pipeline import pipeline_with_client

    if exists(out):
        raise ValueError(f"{out} exists; HATS export writes a new catalogue (remove it or choose another)")
    parent, _, name = out.rstrip("/").rpartition("/")
    arguments = ImportArguments(
        output_artifact_name=name,
        output_path=parent or ".",
        input_file_list=list(catalogues),
        file_reader="parquet",
        ra_column="ra",
        dec_column="dec",
        pixel_threshold=pixel_threshold,
        progress_bar=False,
        resume=False,
    )
    with Client(processes=False, n_workers=1, threads_per_worker=workers, dashboard_address=None) as client:
        pipeline_with_client(arguments, client)
    rows = TableProperties.read_from_dir(out).total_rows  # hats_nrows of hats.properties
    return HatsExport(out, int(rows), tuple(catalogues))
