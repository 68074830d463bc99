"""Predict photometric redshifts for every tile of a survey store with a trained ensemble.

Tiles are read, predicted and written by Dask workers (a local cluster by default, one worker
per GPU with --cluster cuda, or a running cluster with --scheduler / --scheduler-file); each
tile's catalogue appears atomically in --out, and a rerun with the same --out resumes where
the last one stopped. The PDF is the ensemble's Gaussian mixture by default (--pdf grid for a
fixed redshift grid). Flag bits are listed in every catalogue's metadata.
"""

from __future__ import annotations

import argparse
import sys

from distributed_pz.catalog import WRITE_FORMATS
from distributed_pz.infer.cluster import CLUSTERS, ClusterError, connect
from distributed_pz.infer.compat import check_bands
from distributed_pz.infer.manifest import FAILURES, ManifestError
from distributed_pz.infer.stream import ON_ERROR, TileFailed, predict_store
from distributed_pz.models.bundle import BundleError
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.predictor import PDF_KINDS, PRECISIONS, PredictOptions
from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.store import absolute_url, open_store

DEFAULTS = PredictOptions()


def _z_grid(text: str) -> tuple[float, float, int]:
    try:
        start, stop, points = text.split(",")
        return float(start), float(stop), int(points)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START,STOP,POINTS (e.g. 0,4,401), not {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", required=True, help="survey store URL or path (every worker must reach it)"
    )
    parser.add_argument("--bundle", required=True, help="ensemble or single-model bundle directory")
    parser.add_argument(
        "--out", required=True, help="output directory: one catalogue per tile + manifest.json"
    )
    parser.add_argument(
        "--tile", action="append", help="predict only this tile (repeatable); default: every tile"
    )
    parser.add_argument("--format", choices=WRITE_FORMATS, default="parquet", help="catalogue file format")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--cluster",
        choices=CLUSTERS,
        default="local",
        help="start a local cluster: 'local' (CPU processes, 1 thread each) or 'cuda' (one worker per GPU)",
    )
    where.add_argument("--scheduler", metavar="ADDRESS", help="join the running Dask cluster at ADDRESS")
    where.add_argument(
        "--scheduler-file", metavar="PATH", help="join the running Dask cluster described by PATH"
    )
    parser.add_argument(
        "--workers", type=int, help="workers of a started cluster (default: one per core, or one per GPU)"
    )
    parser.add_argument(
        "--dashboard-address",
        metavar="ADDRESS",
        help="serve the Dask dashboard of a started cluster here (e.g. localhost:8787); default: none",
    )
    parser.add_argument(
        "--rows-per-task",
        type=int,
        help="rows per task, rounded down to whole Zarr chunks (default: one shard)",
    )
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="rows per forward pass")
    parser.add_argument(
        "--max-in-flight", type=int, help="most tasks submitted at once (default: twice the worker threads)"
    )
    parser.add_argument(
        "--on-error",
        choices=ON_ERROR,
        default="stop",
        help=f"on a bad tile: stop the run, or skip it (recorded in {FAILURES}) and finish the others",
    )
    parser.add_argument(
        "--odds-interval",
        type=float,
        default=DEFAULTS.odds_interval,
        help="full width of the ODDS interval around the mode (DEEPZ eq. 7)",
    )
    parser.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        default=DEFAULTS.precision,
        help="forward-pass precision: fp32, or bf16/fp16 autocast (fp16 on GPUs only)",
    )
    parser.add_argument(
        "--pdf",
        choices=PDF_KINDS,
        default=DEFAULTS.pdf,
        help="PDF columns: the ensemble's Gaussian mixture, or its density on --z-grid",
    )
    parser.add_argument(
        "--z-grid",
        type=_z_grid,
        default=DEFAULTS.z_grid,
        metavar="START,STOP,POINTS",
        help="redshift grid of --pdf grid",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    try:
        options = PredictOptions(
            batch_size=args.batch_size,
            precision=args.precision,
            odds_interval=args.odds_interval,
            pdf=args.pdf,
            z_grid=args.z_grid,
        )
        # read once on the client (no weights): a wrong path, bands or calibration fail before a cluster starts
        ensemble = EnsembleDir(absolute_url(args.bundle)).read(weights=False)
        check_bands(ensemble, open_store(args.store), args.tile)
        with connect(
            args.cluster,
            workers=args.workers,
            scheduler=args.scheduler,
            scheduler_file=args.scheduler_file,
            dashboard_address=args.dashboard_address,
        ) as client:
            if args.dashboard_address:
                print(f"dashboard: {client.dashboard_link}", file=sys.stderr)
            summary = predict_store(
                client,
                absolute_url(args.store),
                ensemble,
                absolute_url(args.out),
                tiles=args.tile,
                options=options,
                fmt=args.format,
                rows_per_task=args.rows_per_task,
                on_error=args.on_error,
                max_in_flight=args.max_in_flight,
                progress=not args.quiet,
            )
    except (BundleError, ClusterError, ManifestError, StoreError, TileFailed, ValueError) as exc:
        print(f"dpz predict: error: {exc}", file=sys.stderr)
        return 1
    rate = summary.rows_predicted / summary.seconds if summary.seconds else 0.0
    print(
        f"{len(summary.committed)} tiles written, {len(summary.already_done)} already done, "
        f"{len(summary.failed)} failed; {summary.rows_predicted} sources in {summary.seconds:.1f} s "
        f"({rate:,.0f} sources/s) -> {args.out}"
    )
    for tile, reason in summary.failed.items():
        print(f"failed: {tile}: {reason}", file=sys.stderr)
    return 1 if summary.failed else 0
