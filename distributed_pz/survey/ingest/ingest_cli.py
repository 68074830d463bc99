"""Ingest a survey catalogue (FITS, Parquet, CSV or whitespace ASCII) into one tile of a survey store.

A column map names the catalogue's columns, sentinels and band set; tile images or cutout cubes
add 40x40 px cutouts. A complete tile is never replaced without --overwrite.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from distributed_pz.options import option
from distributed_pz.survey.ingest.catalog_readers import SUFFIXES
from distributed_pz.survey.ingest.columnmap import list_column_maps
from distributed_pz.survey.ingest.ingest import ingest_catalog
from distributed_pz.survey.ingest.ingest_errors import IngestError
from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.store import DEFAULT_CHUNK_ROWS, DEFAULT_SHARD_ROWS

RESOLVED_CONFIG = ("store", "beside")
"""Where the resolved options go (:mod:`distributed_pz.configfile`)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


@dataclass(frozen=True)
class IngestOptions:
    """The options of ``dpz ingest``."""

    catalog: str = option(
        path=True,
        positional=True,
        help="survey catalogue to ingest: a FITS table, Parquet, CSV or whitespace-separated ASCII file "
        "(format from the suffix, or from [catalog] format in the column map)",
    )
    columns: str = option(
        metavar="MAP",
        help="column map saying which catalogue columns hold ids, positions, magnitudes, errors, "
        f"sentinels, spec-z and class: a shipped name ({', '.join(list_column_maps())}) "
        "or the path of your own .toml map",
    )
    store: str = option(
        path=True,
        metavar="URL",
        help="survey store to write into: a local path or an fsspec URL (created if absent; "
        "other tiles in it are left untouched)",
    )
    tile: str | None = option(
        None,
        metavar="NAME",
        help="name of the tile to write (default: the catalogue's file name without its "
        "catalogue suffix, e.g. KIDS_129.0_-0.5 for KIDS_129.0_-0.5.fits)",
    )
    image: tuple[str, ...] = option(
        (),
        append=True,
        metavar="BAND=PATH",
        help="tile image of BAND (FITS with a celestial WCS) to cut a 40x40 px cutout from at each "
        "source's ra/dec, NaN-padded near the edges; repeat once per band; overrides the column "
        "map's [images] files for that band",
    )
    cutout_cube: tuple[str, ...] = option(
        (),
        append=True,
        metavar="BAND=PATH",
        help="precomputed cutouts of BAND: a FITS cube (N, 40, 40) whose plane i is the cutout of "
        "catalogue row i (all data rows, in file order); repeat once per band",
    )
    overwrite: bool = option(
        False,
        help="replace the tile if the store already holds a complete tile of that name (without it "
        "ingest refuses; an incomplete tile left by an interrupted ingest is always rewritten)",
    )
    chunk_rows: int = option(
        DEFAULT_CHUNK_ROWS,
        minimum=1,
        parse=_positive_int,
        metavar="N",
        help="rows per Zarr chunk, the unit readers decode (default: %(default)s)",
    )
    shard_rows: int = option(
        DEFAULT_SHARD_ROWS,
        minimum=1,
        parse=_positive_int,
        metavar="N",
        help="rows per Zarr shard (one file each), a multiple of --chunk-rows; the tile is written "
        "one shard of rows at a time (default: %(default)s)",
    )


OPTIONS = (IngestOptions,)
"""The dataclasses whose fields are the options of ``dpz ingest``."""


def run(args: argparse.Namespace) -> int:
    """Run ``dpz ingest``; print one summary line, or one error line to stderr.

    Returns
    -------
    int
        0 on success, 1 when an input or the store is unusable.
    """
    tile_name = args.tile or default_tile_name(Path(args.catalog))
    started = time.perf_counter()
    try:
        images = _band_paths(args.image, "--image")
        cubes = _band_paths(args.cutout_cube, "--cutout-cube")
        tile = ingest_catalog(
            args.catalog,
            args.columns,
            args.store,
            tile_name,
            images=images,
            cutout_files=cubes,
            overwrite=args.overwrite,
            chunk_rows=args.chunk_rows,
            shard_rows=args.shard_rows,
        )
    except (IngestError, StoreError) as exc:
        print(f"dpz ingest: error: {exc}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(
        f"ingested {tile.n_rows} rows of {args.catalog} into tile {tile.name!r} of {args.store} "
        f"({len(tile.bands)} bands, {len(tile.image_bands)} cutout bands) "
        f"in {seconds:.2f} s ({tile.n_rows / seconds:,.0f} rows/s)"
    )
    for label, count in tile.attrs["ingest"].get("rows_dropped_by_filter", {}).items():
        print(f"  filter {label}: dropped {count} rows")
    return 0


def default_tile_name(catalog: Path) -> str:
    """The catalogue's file name without ``.gz`` and a known catalogue suffix."""
    name = catalog.name.removesuffix(".gz")
    suffix = Path(name).suffix
    return name.removesuffix(suffix) if suffix.lower() in SUFFIXES else name


def _band_paths(pairs: Sequence[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        band, sep, path = pair.partition("=")
        if not sep or not band or not path:
            raise IngestError(f"{flag} {pair!r}: expected BAND=PATH, e.g. {flag} r=tile_r.fits")
        if band in out:
            raise IngestError(f"{flag}: band {band!r} is given twice")
        out[band] = path
    return out
