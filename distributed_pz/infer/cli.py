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
from dataclasses import dataclass

from distributed_pz.catalog import WRITE_FORMATS
from distributed_pz.infer.cluster import CLUSTERS, ClusterError, check_local_workers, connect
from distributed_pz.infer.manifest import FAILURES, ManifestError, check_out
from distributed_pz.infer.stream import ON_ERROR, TileFailed, predict_store
from distributed_pz.models.bundle import BundleError
from distributed_pz.models.compat import check_bands, check_homogenise
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.predictor import PredictOptions
from distributed_pz.options import from_args, option
from distributed_pz.survey.store.errors import StoreError
from distributed_pz.survey.store.store import absolute_url, open_store


@dataclass(frozen=True)
class PredictRun:
    """What ``dpz predict`` reads and writes, and how it schedules the tiles."""

    store: str = option(path=True, help="survey store URL or path (every worker must reach it)")
    bundle: str = option(path=True, help="ensemble or single-model bundle directory")
    out: str = option(path=True, help="output directory: one catalogue per tile + manifest.json")
    tile: list[str] | None = option(
        None, append=True, help="predict only this tile (repeatable); default: every tile"
    )
    format: str = option("parquet", choices=WRITE_FORMATS, help="catalogue file format")
    dashboard_address: str | None = option(
        None,
        metavar="ADDRESS",
        help="serve the Dask dashboard of a started cluster here (e.g. localhost:8787); default: none",
    )
    rows_per_task: int | None = option(
        None, minimum=1, help="rows per task, rounded down to whole Zarr chunks (default: one shard)"
    )
    max_in_flight: int | None = option(
        None, minimum=1, help="most tasks submitted at once (default: twice the worker threads)"
    )
    on_error: str = option(
        "stop",
        choices=ON_ERROR,
        help=f"on a bad tile: stop the run, or skip it (recorded in {FAILURES}) and finish the others",
    )
    quiet: bool = option(False, help="no progress bar")
    homogenise: bool = option(
        False,
        help="bring each tile's zero points to the training tiles' first (stellar-locus regression on "
        "the tile's stars; the offsets go into the catalogue's metadata)",
    )


@dataclass(frozen=True)
class Connection:
    """Which Dask cluster ``dpz predict`` runs on (``deploy/dask/slurm_predict.py`` sets these itself)."""

    cluster: str = option(
        "local",
        choices=CLUSTERS,
        exclusive="where",
        help="start a local cluster: 'local' (CPU processes, 1 thread each) or 'cuda' (one worker per GPU)",
    )
    scheduler: str | None = option(
        None, metavar="ADDRESS", exclusive="where", help="join the running Dask cluster at ADDRESS"
    )
    scheduler_file: str | None = option(
        None,
        path=True,
        metavar="PATH",
        exclusive="where",
        help="join the running Dask cluster described by PATH",
    )
    workers: int | None = option(
        None, minimum=1, help="workers of a started cluster (default: one per core, or one per GPU)"
    )


OPTIONS = (PredictRun, Connection, PredictOptions)
"""The dataclasses whose fields are the options of ``dpz predict``."""


def run(args: argparse.Namespace) -> int:
    try:
        options = from_args(PredictOptions, args)
        # read once on the client (no weights): a wrong path, bands or calibration fail before a cluster starts
        ensemble = EnsembleDir(absolute_url(args.bundle)).read(weights=False)
        check_bands(ensemble, open_store(args.store), args.tile)
        if args.homogenise:
            check_homogenise(ensemble)
        check_out(absolute_url(args.out), absolute_url(args.store), absolute_url(args.bundle))
        if args.workers and args.cluster == "local" and not (args.scheduler or args.scheduler_file):
            warning = check_local_workers(args.workers)
            if warning:
                print(f"dpz predict: {warning}", file=sys.stderr)
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
                homogenise=args.homogenise,
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
