"""Export the catalogues of a ``dpz predict`` run as one HATS catalogue, readable by ``lsdb``.

The run folder's manifest lists the committed tiles; their Parquet catalogues are partitioned
by HEALPix of ra, dec into a new HATS catalogue at --hats (``lsdb.open_catalog(OUT)``). A run with
failed or unfinished tiles is refused unless --allow-partial; an interrupted export resumes when
the same command is run again. With --rubin the columns are Rubin DP1's ``object_photoz``
convention (``dpz_z_median`` ... ``dpz_z_err68_high`` and the nested ``dpz_ens_mixmod``).
Needs the ``[hats]`` extra: ``pip install 'distributed_pz[hats]'``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from distributed_pz.evaluate.export import DEFAULT_PIXEL_THRESHOLD, export_hats, run_catalogues
from distributed_pz.options import option


@dataclass(frozen=True)
class ExportOptions:
    """The options of ``dpz export``."""

    run_folder: str = option(
        path=True, flag="run", metavar="FOLDER", help="a dpz predict output folder (with manifest.json)"
    )
    out: str = option(path=True, flag="hats", metavar="OUT", help="HATS catalogue folder to create")
    tile: list[str] | None = option(
        None, append=True, help="export only this tile (repeatable); default: all"
    )
    pixel_threshold: int = option(DEFAULT_PIXEL_THRESHOLD, minimum=1, help="most rows per HEALPix partition")
    workers: int = option(1, minimum=1, help="threads of the import's Dask client")
    allow_partial: bool = option(
        False, help="export the committed tiles of a run whose other tiles failed or did not finish"
    )
    rubin: bool = option(
        False,
        help="write Rubin DP1's object_photoz columns: dpz_z_median ... dpz_z_err68_high and the "
        "nested p(z) mixture dpz_ens_mixmod (means, stds, weights)",
    )
    pdf_components: int | None = option(
        None,
        minimum=1,
        metavar="K",
        help="with --rubin: merge each nested mixture into K Gaussians (moments kept); default: all",
    )


OPTIONS = (ExportOptions,)
"""The dataclasses whose fields are the options of ``dpz export``."""


def run(args: argparse.Namespace) -> int:
    """Export; 0 on success, 1 on a run folder that cannot be exported."""
    try:
        catalogues = run_catalogues(args.run_folder, args.tile, allow_partial=args.allow_partial)
        if catalogues.left_out:
            print(
                f"dpz export: warning: tiles failed or unfinished, left out: {', '.join(catalogues.left_out)}",
                file=sys.stderr,
            )
        result = export_hats(
            catalogues.files,
            args.out,
            pixel_threshold=args.pixel_threshold,
            workers=args.workers,
            rubin=args.rubin,
            pdf_components=args.pdf_components,
        )
    except (ImportError, ValueError) as exc:
        print(f"dpz export: error: {exc}", file=sys.stderr)
        return 1
    print(f"{result.rows} rows of {len(result.catalogues)} catalogues -> HATS catalogue {result.path}")
    return 0
