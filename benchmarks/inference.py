"""Inference throughput (sources/s) at three levels, each beside its machine bound.

For DEEPZ (1 and 5 members), GaZNet-C9, GaZNet-1 and GaZNet-1-MDN, freshly initialised
(throughput does not depend on training), on one simulated KiDS+VIKING tile:

- ``forward``: the raw model forward on in-memory standardised tensors (``torch.inference_mode``),
  over a batch-size sweep;
- ``predictor``: :class:`~distributed_pz.models.predictor.EnsemblePredictor` on the whole tile,
  its arrays read from Zarr beforehand (the read time is reported apart, ``read_s``; rows
  before the one-predictor merge call this stage ``predict_arrays``);
- ``pipeline``: the whole ``dpz predict`` path, :func:`~distributed_pz.infer.stream.predict_store`
  on a Dask cluster of 1, 2... single-threaded workers (Zarr reads on the workers, Parquet out),
  plus a rows-per-task sweep for one model (DEEPZ by default: little compute per source, so
  the per-task overhead shows).

Derived: ``efficiency`` = pipeline / best forward (same model, members, device, precision);
``scaling`` = pipeline at N workers / (N × pipeline at 1 worker); ``bound`` = the latest
:mod:`benchmarks.bounds` figure. Every row carries the load average (shared cores).

    .venv/bin/python -m benchmarks.bounds            # first: the bounds the tables quote
    .venv/bin/python -m benchmarks.inference         # 20k-source tile, a few minutes
    .venv/bin/python -m benchmarks.inference --quick # 4k sources, fewer sweeps
    .venv/bin/python -m benchmarks.inference --device cuda --precision bf16 --cluster cuda --workers 1

Rows are appended to ``results/inference.jsonl``; ``results/inference.md`` is regenerated
from all of its rows.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.fixtures import TILE, ensure_bundle, ensure_store, suite_parser, work_paths
from benchmarks.harness import (
    append_rows,
    load_average,
    machine,
    markdown_table,
    opt,
    read_rows,
    report,
    time_runs,
)
from distributed_pz.infer.cluster import connect
from distributed_pz.infer.stream import predict_store
from distributed_pz.models import create_model
from distributed_pz.models.bundle import Bundle, load_bundle, make_bundle, save_bundle
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.inputs import batch_tensors, model_inputs, raw_features
from distributed_pz.models.predictor import PRECISIONS, EnsemblePredictor, PredictOptions
from distributed_pz.survey.store.store import open_store
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.plan import make_plan

NAME = "inference"
MODELS = ("deepz", "gaznet_c9", "gaznet_1", "gaznet_1_mdn")
ENSEMBLE_MODEL = "deepz"
INPUT_ARRAYS = ("mag", "cutout", "flux_exp", "flux_exp_err")


@dataclass(frozen=True)
class Case:
    """One benchmarked ensemble: registered model name, member count and its directory."""

    model: str
    members: int
    path: str


def ensure_ensemble(root: Path, base: str, members: int) -> str:
    """An ensemble of ``members`` freshly initialised copies (seeds 0, 1, ...) of bundle ``base``."""
    path = root / f"{Path(base).name}_x{members}"
    if (path / "ensemble.json").is_file():
        return str(path)
    template = load_bundle(base)
    plan = make_plan(np.arange(10 * members), n_splits=1, n_folds=members, seed=0)
    plan.save(path)
    for seed, spec in enumerate(plan.members):
        torch.manual_seed(seed)
        model = create_model(template.model_name)
        bundle = make_bundle(model, template.feature_stats, template.data_bands, template.data_image_bands)
        save_bundle(EnsembleDir(path).member(spec.member_id), bundle)
    EnsembleDir(path).write_manifest(
        plan, {"model": template.model_name}, {"url": "benchmark", "hash": "benchmark"}
    )
    return str(path)


def cases(store_url: str, bundles: Path, models: list[str], ensemble_members: int) -> list[Case]:
    """The single-member bundles of ``models`` and the DEEPZ ensemble, created once."""
    out = [Case(m, 1, ensure_bundle(bundles, m, store_url)) for m in models]
    if ensemble_members > 1 and ENSEMBLE_MODEL in models:
        base = next(c.path for c in out if c.model == ENSEMBLE_MODEL)
        out.append(Case(ENSEMBLE_MODEL, ensemble_members, ensure_ensemble(bundles, base, ensemble_members)))
    return out


def load_members(case: Case, device: str) -> list[Bundle]:
    """The bundles of ``case`` on ``device``."""
    return EnsemblePredictor.from_ensemble(EnsembleDir(case.path).read(device=device)).members


def forward_inputs(bundle: Bundle, rows: TileArrays, device: str) -> dict[str, torch.Tensor]:
    """Standardised network inputs of every row of ``rows``, on ``device``."""
    spec = bundle.input_spec
    raw = raw_features(spec, batch_tensors(rows, spec, device=device))
    return model_inputs(spec, raw, bundle.feature_stats)


def autocast(device: str, precision: str) -> torch.autocast:
    """Autocast context of ``precision`` (``fp32`` = disabled)."""
    dtype = PRECISIONS[precision]
    return torch.autocast(torch.device(device).type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def bench_forward(
    members: list[Bundle], rows: TileArrays, batch_sizes: list[int], device: str, precision: str, repeats: int
) -> list[dict[str, Any]]:
    """Sources/s of the members' forward passes on in-memory tensors, per batch size."""
    inputs = forward_inputs(members[0], rows, device)
    out = []
    for batch_size in batch_sizes:
        batch = {k: v[:batch_size] for k, v in inputs.items()}  # (B, ...)

        @torch.inference_mode()
        def forward(batch: dict[str, torch.Tensor] = batch) -> None:
            with autocast(device, precision):
                for bundle in members:
                    bundle.model(batch)

        timing = time_runs(forward, warmup=1, repeats=repeats)
        out.append(
            {
                "batch_size": batch_size,
                **timing,
                "sources_per_s": batch_size / timing["min_s"],
                **load_average(),
            }
        )
    return out


def bench_predictor(
    members: list[Bundle], tile_url: str, device: str, precision: str, batch_size: int, repeats: int
) -> dict[str, Any]:
    """Sources/s of the :class:`EnsemblePredictor` on a whole tile read from Zarr (read timed apart)."""
    tile = open_store(tile_url).tile(TILE)
    started = time.perf_counter()
    arrays = TileArrays.from_attrs(tile.read([a for a in INPUT_ARRAYS if tile.has(a)]), tile.attrs)
    read_s = time.perf_counter() - started

    options = PredictOptions(batch_size=batch_size, precision=precision)
    predictor = EnsemblePredictor(members, device=device, options=options)

    def run() -> None:
        predictor(arrays)

    timing = time_runs(run, warmup=0, repeats=repeats)  # the forward benchmark warmed the members
    return {
        "batch_size": batch_size,
        "sources": tile.n_rows,
        **timing,
        "read_s": read_s,
        "sources_per_s": tile.n_rows / timing["min_s"],
        **load_average(),
    }


def _import_torch() -> str:
    import torch as worker_torch

    return worker_torch.__version__


def bench_pipeline(
    client, store_url: str, case: Case, options: PredictOptions, rows_per_task: int, repeats: int
) -> dict[str, Any]:
    """Sources/s of whole ``predict_store`` calls (plugin set-up, reads, prediction, Parquet, commit)."""
    client.run(_import_torch)
    n = open_store(store_url).tile(TILE).n_rows

    def run() -> None:
        with tempfile.TemporaryDirectory(prefix="dpz-bench-") as out:
            summary = predict_store(
                client,
                store_url,
                case.path,
                out,
                options=options,
                rows_per_task=rows_per_task,
                progress=False,
            )
        if summary.failed:
            raise RuntimeError(f"benchmark run failed: {summary.failed}")

    timing = time_runs(run, warmup=0, repeats=repeats)
    return {
        "batch_size": options.batch_size,
        "rows_per_task": rows_per_task,
        "sources": n,
        **timing,
        "sources_per_s": n / timing["min_s"],
        **load_average(),
    }


def _key(row: dict[str, Any]) -> tuple:
    return row["model"], row["members"], row["device"], row["precision"]


def derived(rows: list[dict[str, Any]], bounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with ``bound``, ``efficiency`` (vs the best forward of the same run) and ``scaling``.

    Rows of one run share ``time_utc`` of their append; efficiency and scaling compare rows of
    the same run only (the load differs between runs).
    """
    latest_bound = {
        (b["model"], b["members"], b["device"], b["precision"]): b for b in bounds if b["kind"] == "bound"
    }
    best_forward: dict[tuple, float] = {}
    one_worker: dict[tuple, float] = {}
    for r in rows:
        run = (r["time_utc"], *_key(r))
        if r["stage"] == "forward":
            best_forward[run] = max(best_forward.get(run, 0.0), r["sources_per_s"])
        if r["stage"] == "pipeline" and r["workers"] == 1 and not r.get("chunk_sweep"):
            one_worker[run] = r["sources_per_s"]
    out = []
    for r in rows:
        run = (r["time_utc"], *_key(r))
        bound = latest_bound.get(_key(r))
        extra: dict[str, Any] = {"bound_sources_per_s": bound["bound_sources_per_s"] if bound else None}
        if r["stage"] != "forward" and run in best_forward:
            extra["efficiency"] = r["sources_per_s"] / best_forward[run]
        if r["stage"] == "pipeline" and run in one_worker and not r.get("chunk_sweep"):
            extra["scaling"] = r["sources_per_s"] / (r["workers"] * one_worker[run])
        if bound:
            extra["fraction_of_bound"] = r["sources_per_s"] / bound["bound_sources_per_s"]
        out.append({**r, **extra})
    return out


COLUMNS = [
    "time_utc",
    "device",
    "precision",
    "model",
    "members",
    "stage",
    "workers",
    "batch_size",
    "rows_per_task",
    "sources_per_s",
    "bound_sources_per_s",
    "fraction_of_bound",
    "efficiency",
    "scaling",
    "loadavg_1m",
]


INTRO = """\
Freshly initialised paper-size models on a simulated KiDS+VIKING tile. `forward`: raw model
forward on in-memory tensors (best over the batch sweep is the efficiency reference);
`predictor` (`predict_arrays` before the one-predictor merge): the whole tile through the
`EnsemblePredictor` from arrays already read from Zarr;
`pipeline`: whole `predict_store` calls on a Dask cluster of `workers` single-threaded
workers (Zarr reads, prediction, Parquet parts, commit). sources/s use the best of the
repeats. `efficiency` = sources/s / best forward sources/s of the same run (forward and
predictor run with `threads` torch threads, 1 by default, like one pipeline worker);
`scaling` = pipeline at N workers / (N × pipeline at 1 worker); `bound` = min(matmul rate /
FLOPs per source, Zarr read rate / bytes per source) from `bounds.md`, for the whole machine
(all cores; one thread reaches ~2/3 of the two-core matmul rate here). `loadavg_1m`: the
cores were shared with other jobs, so the figures are noisy lower limits."""


def write_report() -> str:
    """Regenerate ``results/inference.md`` from every row of ``results/inference.jsonl``."""
    rows = derived(read_rows(NAME), read_rows("bounds"))
    main_rows = [r for r in rows if not r.get("chunk_sweep")]
    sweep = [r for r in rows if r.get("chunk_sweep")]
    machines = sorted(
        {
            f"{m['cpu_count']} CPU cores, {m.get('memory_gib')} GiB, {m['device']}, torch {m['torch']}"
            for m in (r["machine"] for r in rows)
        }
    )
    report(
        NAME,
        "Inference throughput (sources/s)",
        INTRO,
        "Machines: " + "; ".join(machines) + ".",
        markdown_table(main_rows, COLUMNS),
        "## Rows per task (pipeline)",
        markdown_table(sweep, COLUMNS),
        rows=rows,
    )
    return markdown_table(main_rows, COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = suite_parser(
        __doc__,
        "ensemble_members",
        "rows_per_task",
        quick=opt(help="4k-source tile, short sweeps, one repeat"),
        n=opt(help="sources in the tile (default 20000; 4096 with --quick)"),
        models=list(MODELS),
        precision=opt("fp32", choices=sorted(PRECISIONS)),
        threads=opt(1, help="torch threads of this process (like a pipeline worker's)"),
        workers=opt(help="pipeline cluster sizes (default 1 2)"),
        batch_size=opt(1024, help="rows per forward pass in predict"),
        repeats=opt(help="timed repeats (default 3; 1 with --quick)"),
    )
    parser.add_argument("--cluster", default="local", choices=["local", "cuda"], help="Dask cluster kind")
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="forward sweep (default 256 1024 4096)")
    parser.add_argument(
        "--chunk-sweep", nargs="+", type=int, help="rows per task to sweep (default 1024..8192)"
    )
    parser.add_argument("--sweep-model", default="deepz", help="model of the rows-per-task sweep")
    args = parser.parse_args(argv)
    n = args.n or (4096 if args.quick else 20_000)
    repeats = args.repeats or (1 if args.quick else 3)
    workers = args.workers or [1, 2]
    batch_sizes = args.batch_sizes or ([1024] if args.quick else [256, 1024, 4096])
    chunk_sweep = args.chunk_sweep or ([1024, 4096] if args.quick else [1024, 2048, 4096, 8192])

    torch.set_num_threads(args.threads)
    store_url, bundle_dir = work_paths(args.work, n)
    ensure_store(store_url, n)
    todo = cases(store_url, bundle_dir, args.models, args.ensemble_members)
    tile = open_store(store_url).tile(TILE)
    rows_in_memory = TileArrays.from_attrs(
        tile.read([a for a in INPUT_ARRAYS if tile.has(a)], 0, min(max(batch_sizes), n)), tile.attrs
    )
    common = {
        "device": args.device,
        "precision": args.precision,
        "threads": torch.get_num_threads(),
        "tile_sources": n,
    }
    rows: list[dict[str, Any]] = []
    for case in todo:
        members = load_members(case, args.device)
        tag = {"model": case.model, "members": case.members, **common}
        for r in bench_forward(members, rows_in_memory, batch_sizes, args.device, args.precision, repeats):
            rows.append({**tag, "stage": "forward", **r})
        r = bench_predictor(members, store_url, args.device, args.precision, args.batch_size, repeats)
        rows.append({**tag, "stage": "predictor", **r})
        print(
            case.model, case.members, {r["stage"]: round(r["sources_per_s"]) for r in rows[-2:]}, flush=True
        )
    options = PredictOptions(batch_size=args.batch_size, precision=args.precision)
    for n_workers in workers:
        started = time.perf_counter()
        with connect(args.cluster, workers=n_workers) as client:
            start_s = time.perf_counter() - started
            for case in todo:
                tag = {
                    "model": case.model,
                    "members": case.members,
                    **common,
                    "stage": "pipeline",
                    "cluster": args.cluster,
                    "workers": n_workers,
                    "cluster_start_s": start_s,
                }
                rows.append(
                    {**tag, **bench_pipeline(client, store_url, case, options, args.rows_per_task, repeats)}
                )
                print(case.model, case.members, n_workers, round(rows[-1]["sources_per_s"]), flush=True)
            if n_workers == max(workers):
                case = next(c for c in todo if c.model == args.sweep_model and c.members == 1)
                for rows_per_task in chunk_sweep:
                    r = bench_pipeline(client, store_url, case, options, rows_per_task, repeats)
                    rows.append({**tag, "model": case.model, "members": 1, "chunk_sweep": True, **r})
                    print("rows per task", rows_per_task, round(r["sources_per_s"]), flush=True)
    append_rows(NAME, rows)
    print(write_report())
    print(machine())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
