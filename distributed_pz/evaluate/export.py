"""A run's catalogues as one HATS catalogue (HEALPix-partitioned Parquet, read by ``hats``/``lsdb``).

HATS is how Rubin and the LSDB tools deliver survey catalogues: the sky is cut into HEALPix
tiles of adaptive order so that each Parquet partition holds a bounded number of rows, and
every row carries its ``_healpix_29`` index. :func:`export_hats` runs the ``hats-import``
pipeline over the Parquet catalogues a ``dpz predict`` run committed (its ``manifest.json``
lists them), partitioning by HEALPix of ``ra``, ``dec``; ``lsdb.open_catalog(OUT)`` then reads
the same rows — with the catalogue's columns, or with ``rubin`` in Rubin DP1's ``object_photoz``
columns (:mod:`distributed_pz.evaluate.rubin`). Needs the ``[hats]`` extra (``hats``,
``hats-import``, ``lsdb``).

Only the run's own files are read: every manifest ``file`` entry must lie inside the run folder.
A run with failed or unfinished tiles is refused unless ``allow_partial`` (then they are named).
``OUT`` must be new (or empty): it is checked before anything is written. While the import runs,
``OUT/.dpz-export.json`` records its inputs; an interrupted export (Ctrl-C, a crash) is resumed
by the same command (hats-import's resume files in ``OUT/intermediate/``, or in a local cache
folder when ``OUT`` is a URL), and the record is
removed when the catalogue is complete, so a finished ``OUT`` is never written again. Local
paths and ``s3://``/``gs://`` URLs (credentials as for every other command: the environment,
never hats' anonymous default) work alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distributed_pz._files import (
    cache_dir,
    exists,
    is_file,
    is_remote,
    join,
    local_path,
    makedirs,
    read_json,
    remove_file,
    remove_tree,
    write_json,
)
from distributed_pz.catalog import table_format
from distributed_pz.infer.manifest import FAILURES, RUN_MANIFEST, RunManifest

PROPERTIES = "hats.properties"
"""Written last by hats-import: the catalogue is complete."""
INTERMEDIATE = "intermediate"
"""hats-import's resume files (and its cloudpickled reader) inside ``OUT``."""
EXPORT_RECORD = ".dpz-export.json"
"""Inside ``OUT`` while an export is under way: its inputs, so that only the same export resumes."""

DEFAULT_PIXEL_THRESHOLD = 1_000_000
"""Most rows per HATS partition (hats-import's default)."""


@dataclass(frozen=True)
class HatsExport:
    """What :func:`export_hats` wrote: the catalogue URL, its rows and the input catalogues."""

    path: str
    rows: int
    catalogues: tuple[str, ...]


@dataclass(frozen=True)
class RunCatalogues:
    """The committed catalogues of a run (in tile order) and the tiles left out (failed or unfinished)."""

    files: tuple[str, ...]
    left_out: tuple[str, ...] = ()


def run_catalogues(
    run: str, tiles: Sequence[str] | None = None, *, allow_partial: bool = False
) -> RunCatalogues:
    """The committed Parquet catalogues of a ``dpz predict`` run folder, in tile order.

    Parameters
    ----------
    run
        The run folder (local or a URL).
    tiles
        Only these tiles (default: every committed one).
    allow_partial
        Export the committed tiles of a run whose other tiles failed or did not finish
        (:attr:`RunCatalogues.left_out` names them) instead of refusing it.

    Raises
    ------
    ValueError
        No manifest, a requested tile not committed, a failed or unfinished tile (without
        ``allow_partial``), a ``file`` entry outside the run folder, or catalogues not in Parquet.
    """
    path = join(run, RUN_MANIFEST)
    if not exists(path):
        raise ValueError(f"{run}: not a dpz predict run folder (no {RUN_MANIFEST})")
    state = read_json(path)
    committed = state.get("tiles", {})
    failures = read_json(join(run, FAILURES)) if exists(join(run, FAILURES)) else {}
    incomplete = set(failures) | set(state.get("in_progress", {}))
    unfinished = sorted(incomplete & set(tiles) if tiles else incomplete)
    names = list(tiles) if tiles else sorted(committed)
    if unfinished and not allow_partial:
        raise ValueError(
            f"{run}: tiles failed or unfinished: {', '.join(unfinished)} (see {FAILURES}); rerun dpz "
            f"predict, or pass --allow-partial to export the committed tiles without them"
        )
    missing = [t for t in names if t not in committed]
    if missing or not names:
        raise ValueError(f"{run}: tiles not committed: {missing or 'none at all'}")
    inside = RunManifest(run if is_remote(run) else str(local_path(run).resolve()), {})
    files = []
    for tile in names:
        file = committed[tile].get("file")
        if not isinstance(file, str):
            raise ValueError(f"{path}: tile {tile!r} has no catalogue file")
        try:
            files.append(inside.path(file))
        except ValueError:
            raise ValueError(
                f"{path}: tile {tile!r}: catalogue {file!r} is not inside the run; refused"
            ) from None
    other = [f for f in files if table_format(f) != "parquet"]
    if other:
        raise ValueError(
            f"HATS export reads Parquet catalogues; rerun dpz predict --format parquet ({other[0]})"
        )
    return RunCatalogues(tuple(files), tuple(unfinished))


def _location(url: str) -> Any:
    """A URL as hats reads it: a ``UPath`` with this environment's credentials (hats' own default is anonymous)."""
    from upath import UPath

    return UPath(url) if is_remote(url) else url


def _scratch(out: str) -> str | None:
    """Where hats-import keeps its resume files: inside ``OUT``, or a local cache folder for a URL
    (hats-import reads them with ``open``); the same folder for every rerun, so it resumes."""
    return str(cache_dir("hats-export", out)) if is_remote(out) else None


def _check_destination(out: str, record: dict[str, Any]) -> None:
    """Refuse ``out`` unless it is new, an empty folder, or this same export interrupted (nothing written)."""
    if is_file(out):
        raise ValueError(f"{out} is a file; --hats names a new HATS catalogue folder")
    if not exists(out):
        return
    if exists(join(out, EXPORT_RECORD)):
        if read_json(join(out, EXPORT_RECORD)) != record:
            raise ValueError(
                f"{out} holds an interrupted export of other inputs ({EXPORT_RECORD}); "
                "rerun that export, or remove it"
            )
        return
    if is_remote(out) or any(local_path(out).iterdir()):
        raise ValueError(f"{out} exists; HATS export writes a new catalogue (remove it or choose another)")


def export_hats(
    catalogues: Sequence[str],
    out: str,
    *,
    pixel_threshold: int = DEFAULT_PIXEL_THRESHOLD,
    workers: int = 1,
    rubin: bool = False,
    pdf_components: int | None = None,
) -> HatsExport:
    """Import Parquet catalogues into a new HATS catalogue at ``out`` with ``hats-import``.

    Parameters
    ----------
    catalogues
        Parquet catalogues with ``ra``, ``dec`` (degrees), e.g. :attr:`RunCatalogues.files`.
    out
        The HATS catalogue folder to create (its name is the catalogue name): new, empty, or an
        interrupted export of the same catalogues, which is resumed.
    pixel_threshold
        Most rows per partition.
    workers
        Threads of the local Dask client the import runs on.
    rubin
        Write Rubin DP1's ``object_photoz`` columns (:func:`~distributed_pz.evaluate.rubin.rubin_table`)
        instead of the catalogue's.
    pdf_components
        With ``rubin``: merge each nested mixture into this many Gaussians.
    """
    from dask.distributed import Client
    from hats.catalog import TableProperties
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.pipeline import pipeline_with_client

    if pdf_components is not None and not rubin:
        raise ValueError("--pdf-components reduces the nested p(z) of --rubin; pass --rubin too")
    reader: Any = "parquet"
    if rubin:
        from distributed_pz.evaluate.rubin import RubinReader, check_catalogues

        check_catalogues(catalogues)
        reader = RubinReader(pdf_components)
    out = out.rstrip("/") if is_remote(out) else str(local_path(out).resolve())
    record: dict[str, Any] = {"catalogues": list(catalogues), "pixel_threshold": pixel_threshold}
    if rubin:
        record["rubin"] = {"pdf_components": pdf_components}
    _check_destination(out, record)
    makedirs(out)
    write_json(join(out, EXPORT_RECORD), record)
    if not exists(join(out, PROPERTIES)):  # else: interrupted after the catalogue was complete
        parent, _, name = out.rpartition("/")
        arguments = ImportArguments(
            output_artifact_name=name,
            output_path=_location(parent),
            input_file_list=[_location(c) for c in catalogues],
            file_reader=reader,
            ra_column="ra",
            dec_column="dec",
            pixel_threshold=pixel_threshold,
            progress_bar=False,
            resume=True,
            tmp_dir=_scratch(out),
        )
        with Client(
            processes=False, n_workers=1, threads_per_worker=workers, dashboard_address=None
        ) as client:
            pipeline_with_client(arguments, client)
    rows = TableProperties.read_from_dir(_location(out)).total_rows  # hats_nrows of hats.properties
    remove_tree(join(out, INTERMEDIATE))  # left by an interruption after hats.properties
    if is_remote(out):
        remove_tree(_scratch(out))
    remove_file(join(out, EXPORT_RECORD))
    return HatsExport(out, int(rows), tuple(catalogues))
