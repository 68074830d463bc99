"""Inference throughput on CPU: the Dask pipeline against the plain predictor loop on one tile.

For DEEPZ and GaZNet-1 (paper-size networks, freshly initialised: throughput does not depend
on training) on one simulated KiDS+VIKING tile, sources per second of

- the plain loop: :func:`~distributed_pz.infer.local.predict_tile_local` in this process
  (1 and 2 threads for torch and BLAS);
- the pipeline: :func:`~distributed_pz.infer.pipeline.predict_store` on a ``LocalCluster`` of
  1 and 2 single-threaded workers, reading from Zarr and writing the Parquet catalogue; the
  time covers the whole call (plugin set-up = ensemble load on every worker, tasks, commit),
  with torch already imported on the workers; cluster start-up is reported apart.

Runs are interleaved over ``--repeats`` rounds and the best time of each counts.

    python -m benchmarks.inference_pipeline            # from the repository root

Rows are appended to ``results/inference_cpu.jsonl`` and ``results/inference_cpu.md`` is
rewritten from the rows of this run.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from benchmarks.fixtures import TILE, ensure_bundle, ensure_store
from benchmarks.harness import append_rows, argument_parser, machine, markdown_table, opt, report
from distributed_pz.infer.cluster import connect
from distributed_pz.infer.local import predict_tile_local
from distributed_pz.infer.stream import predict_store
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.predictor import EnsemblePredictor, PredictOptions
from distributed_pz.survey.store.store import open_store
from distributed_pz.survey.store.tiles import TileArrays

NAME = "inference_cpu"
COLUMNS = [
    "model",
    "run",
    "sources",
    "best_s",
    "median_s",
    "sources_per_s",
    "ratio_vs_loop_1_thread",
    "cluster_start_s",
]


MALLOC_NOTE = """\
Clusters started by `dpz predict` unset Dask's default `MALLOC_TRIM_THRESHOLD_=65536` for their
workers: with it, the DEEPZ plain loop on 8192 rows ran at 7.6k sources/s instead of 14.9k
(glibc then maps and unmaps every large tensor), which made workers twice as slow as the loop."""


def plain_loop(
    store_url: str, bundle: str, options: PredictOptions, rows_per_task: int, threads: int
) -> float:
    """Seconds for the whole tile through the predictor in this process (after a warm-up chunk).

    ``threads`` caps torch and the BLAS libraries (as Dask caps them in its workers).
    """
    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        return _timed_loop(store_url, bundle, options, rows_per_task)


def _timed_loop(store_url: str, bundle: str, options: PredictOptions, rows_per_task: int) -> float:
    predictor = EnsemblePredictor.from_ensemble(EnsembleDir(bundle).read(device="cpu"), options)
    tile = open_store(store_url).tile(TILE)
    names = predictor.input_arrays(tile.array_names())
    predictor(TileArrays.from_attrs(tile.read(names, 0, tile.chunk_rows), tile.attrs))
    started = time.perf_counter()
    predict_tile_local(store_url, TILE, predictor, rows_per_chunk=rows_per_task)
    return time.perf_counter() - started


def pipeline(client, store_url: str, bundle: str, options: PredictOptions, rows_per_task: int) -> float:
    """Seconds of one whole ``predict_store`` call into a fresh output directory."""
    with tempfile.TemporaryDirectory(prefix="dpz-bench-") as out:
        started = time.perf_counter()
        summary = predict_store(
            client, store_url, bundle, out, options=options, rows_per_task=rows_per_task, progress=False
        )
        seconds = time.perf_counter() - started
    if summary.failed:
        raise RuntimeError(f"benchmark run failed: {summary.failed}")
    return seconds


def _import_torch() -> str:
    import torch as worker_torch

    return worker_torch.__version__


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(
        __doc__,
        "batch_size",
        work="dpz_bench_inference",
        n=20_000,
        models=["deepz", "gaznet_1"],
        workers=[1, 2],
        rows_per_task=opt(2048, help="rows per task (and per loop chunk)"),
        repeats=opt(2, help="interleaved rounds; the best time of each run counts"),
    )
    args = parser.parse_args(argv)

    work = Path(args.work)
    store_url = str(work / "store")
    ensure_store(store_url, args.n)
    options = PredictOptions(batch_size=args.batch_size)
    bundles = {m: ensure_bundle(work / "bundles", m, store_url) for m in args.models}
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    loads: list[float] = []  # 1-minute load average after each run: other jobs on the shared cores
    start_s: dict[str, float] = {}
    with ExitStack() as stack:
        clients = {}
        for workers in args.workers:
            started = time.perf_counter()
            clients[workers] = stack.enter_context(connect("local", workers=workers))
            start_s[f"pipeline, {workers} worker(s)"] = time.perf_counter() - started
        for round_ in range(args.repeats):
            for model, bundle in bundles.items():
                for threads in (1, 2):
                    seconds = plain_loop(store_url, bundle, options, args.rows_per_task, threads)
                    times[model, f"loop, {threads} torch thread(s)"].append(seconds)
                    loads.append(os.getloadavg()[0])
                for workers, client in clients.items():
                    client.run(_import_torch)  # warm-up: every worker has torch imported
                    seconds = pipeline(client, store_url, bundle, options, args.rows_per_task)
                    times[model, f"pipeline, {workers} worker(s)"].append(seconds)
                    loads.append(os.getloadavg()[0])
                print(
                    round_,
                    model,
                    {k[1]: round(v[-1], 2) for k, v in times.items() if k[0] == model},
                    flush=True,
                )
    rows = []
    for (model, run), seconds in times.items():
        best, loop_1 = min(seconds), min(times[model, "loop, 1 torch thread(s)"])
        rows.append(
            {
                "model": model,
                "run": run,
                "sources": args.n,
                "best_s": best,
                "median_s": statistics.median(seconds),
                "sources_per_s": args.n / best,
                "ratio_vs_loop_1_thread": loop_1 / best,
                "cluster_start_s": start_s.get(run),
            }
        )
    params = {
        "rows_per_task": args.rows_per_task,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "load_avg_1m": [round(x, 2) for x in loads],
    }
    append_rows(NAME, [{**r, **params} for r in rows])
    info = machine()
    report(
        NAME,
        "Inference throughput on CPU: pipeline vs plain predictor loop",
        f"One simulated KiDS+VIKING tile of {args.n:,} sources (Zarr, chunks 1024 rows, shards 8192), "
        f"freshly initialised paper-size single-member bundles, fp32, batch {args.batch_size}, "
        f"{args.rows_per_task} rows per task. Machine: {info['cpu_count']} CPU cores shared with other "
        f"jobs (1-minute load average after the runs: {min(loads):.1f} to {max(loads):.1f}), "
        f"torch {info['torch']}, device {info['device']}.",
        markdown_table(rows, COLUMNS),
        f"Best of {args.repeats} interleaved rounds (loop and pipeline runs alternate, so load from other\n"
        "jobs on the shared cores hits them alike); sources/s and ratios use the best times.\n"
        "`ratio_vs_loop_1_thread` = sources/s over the one-thread plain loop's.\n"
        "Pipeline seconds cover the whole `predict_store` call: worker plugin set-up (ensemble load),\n"
        "Zarr reads on the workers, prediction, Parquet parts, the atomic tile commit and the manifest.",
        MALLOC_NOTE,
        "Command: `python -m benchmarks.inference_pipeline "
        + f"--n {args.n} --models {' '.join(args.models)} --workers {' '.join(map(str, args.workers))} "
        + f"--rows-per-task {args.rows_per_task} --batch-size {args.batch_size}`",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
