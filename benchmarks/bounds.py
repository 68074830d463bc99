"""Machine bounds on inference throughput, measured in the same run as the rates they use.

- matmul rate: FLOP/s of a square ``torch.mm`` (fp32 on CPU with 1 and all threads; every
  ``--precision`` asked for, on the ``--device``);
- Zarr read rate: decoded bytes/s reading a simulated tile's ``cutout`` and ``mag`` arrays
  (one process; the page cache is warm after the first read);
- per model: FLOPs per source (``torch.utils.flop_counter.FlopCounterMode`` over one forward
  pass; counts matmuls and convolutions, 1 multiply-add = 2 FLOPs) and bytes read per source
  (every array the predictor reads, decoded).

``bound`` = min(matmul rate / FLOPs per source, read rate / bytes per source) sources/s, with
the all-thread matmul rate: an upper limit (convolutions and small layers run below matmul
speed, and the read rate is one process's).

    .venv/bin/python -m benchmarks.bounds
    .venv/bin/python -m benchmarks.bounds --device cuda --precision bf16 fp32

Rows are appended to ``results/bounds.jsonl``; ``results/bounds.md`` is regenerated from all
of its rows.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.fixtures import TILE, ensure_bundle, ensure_store, suite_parser, work_paths
from benchmarks.harness import (
    append_rows,
    load_average,
    markdown_table,
    opt,
    read_rows,
    report,
    time_runs,
)
from benchmarks.inference import ENSEMBLE_MODEL, INPUT_ARRAYS, MODELS, autocast, forward_inputs
from distributed_pz.models.bundle import load_bundle
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.predictor import PRECISIONS, EnsemblePredictor
from distributed_pz.survey.store.store import open_store
from distributed_pz.survey.store.tiles import TileArrays

NAME = "bounds"
FLOP_ROWS = 64
"""Rows of the forward pass whose FLOPs are counted."""


def matmul_rate(device: str, precision: str, size: int, threads: int) -> dict[str, Any]:
    """FLOP/s of a ``size`` × ``size`` matrix product in ``precision`` on ``device``."""
    dtype = PRECISIONS[precision] or torch.float32
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        timing = time_runs(lambda: torch.mm(a, b), warmup=2, repeats=5)
    finally:
        torch.set_num_threads(previous)
    return {
        "kind": "matmul",
        "device": device,
        "precision": precision,
        "threads": threads,
        "size": size,
        **timing,
        "rate": 2 * size**3 / timing["min_s"],
        "unit": "FLOP/s",
        **load_average(),
    }


def read_rate(store_url: str) -> dict[str, Any]:
    """Decoded bytes/s of reading the tile's ``cutout`` and ``mag`` arrays whole."""
    tile = open_store(store_url).tile(TILE)
    names = ["cutout", "mag"]
    nbytes = sum(a.nbytes for a in tile.read(names).values())
    timing = time_runs(lambda: tile.read(names), warmup=1, repeats=3)
    return {
        "kind": "zarr_read",
        "arrays": "+".join(names),
        "sources": tile.n_rows,
        "bytes": nbytes,
        **timing,
        "rate": nbytes / timing["min_s"],
        "unit": "B/s",
        **load_average(),
    }


def bytes_per_source(store_url: str, predictor: EnsemblePredictor) -> int:
    """Decoded bytes of one row of every array ``predictor`` reads from the tile."""
    tile = open_store(store_url).tile(TILE)
    total = 0
    for name in predictor.input_arrays(tile.array_names()):
        array = tile.array(name)
        total += array.dtype.itemsize * math.prod(array.shape[1:])
    return total


def flops_per_source(bundle_path: str, rows: TileArrays, device: str, precision: str) -> float:
    """FLOPs of one forward pass per source (``FLOP_ROWS`` rows counted)."""
    bundle = load_bundle(bundle_path, device=device)
    inputs = forward_inputs(bundle, rows, device)
    with torch.inference_mode(), autocast(device, precision), FlopCounterMode(display=False) as counter:
        bundle.model(inputs)
    return counter.get_total_flops() / rows.n_rows


COLUMNS = [
    "time_utc",
    "device",
    "precision",
    "model",
    "members",
    "mflop_per_source",
    "bytes_per_source",
    "matmul_gflop_per_s",
    "read_mb_per_s",
    "compute_bound",
    "io_bound",
    "bound_sources_per_s",
    "limited_by",
    "loadavg_1m",
]
RATE_COLUMNS = [
    "time_utc",
    "kind",
    "device",
    "precision",
    "threads",
    "size",
    "arrays",
    "rate_g",
    "unit_g",
    "loadavg_1m",
]


def _display(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its rates and FLOPs in readable units (GFLOP/s, MB/s, MFLOP)."""
    if row["kind"] == "bound":
        return {
            **row,
            "mflop_per_source": row["flops_per_source"] / 1e6,
            "matmul_gflop_per_s": row["matmul_flop_per_s"] / 1e9,
            "read_mb_per_s": row["read_bytes_per_s"] / 1e6,
        }
    return {**row, "rate_g": row["rate"] / 1e9, "unit_g": "G" + row["unit"]}


INTRO = """\
Bound (sources/s) = min(matmul rate / FLOPs per source, Zarr read rate / bytes per source),
rates measured in the same run (all-thread matmul; one-process read of decoded bytes, warm
page cache). FLOPs counted by `FlopCounterMode` on one forward pass (matmuls and
convolutions; 1 multiply-add = 2 FLOPs); bytes = every array the predictor reads, decoded.
An upper limit: convolutions and small layers run below matmul speed. `loadavg_1m`: the
cores were shared with other jobs while measuring."""


def write_report() -> str:
    """Regenerate ``results/bounds.md`` from every row of ``results/bounds.jsonl``."""
    rows = [_display(r) for r in read_rows(NAME)]
    bounds = [r for r in rows if r["kind"] == "bound"]
    rates = [r for r in rows if r["kind"] != "bound"]
    report(
        NAME,
        "Machine bounds on inference throughput",
        INTRO,
        markdown_table(bounds, COLUMNS),
        "## Measured rates",
        markdown_table(rates, RATE_COLUMNS),
        rows=rows,
    )
    return markdown_table(bounds, COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = suite_parser(
        __doc__,
        "ensemble_members",
        n=20_000,
        models=list(MODELS),
        precision=opt(["fp32"], nargs="+", choices=sorted(PRECISIONS), help="matmul and forward precisions"),
    )
    parser.add_argument("--size", type=int, help="matmul size (default 2048 on CPU, 8192 on GPU)")
    args = parser.parse_args(argv)
    on_gpu = torch.device(args.device).type == "cuda"
    size = args.size or (8192 if on_gpu else 2048)

    store_url, bundle_dir = work_paths(args.work, args.n)
    ensure_store(store_url, args.n)
    threads = [1] if on_gpu else sorted({1, torch.get_num_threads()})
    rates = [matmul_rate(args.device, p, size, t) for p in args.precision for t in threads]
    read = read_rate(store_url)
    tile = open_store(store_url).tile(TILE)
    rows = TileArrays.from_attrs(
        tile.read([a for a in INPUT_ARRAYS if tile.has(a)], 0, FLOP_ROWS), tile.attrs
    )
    bounds = []
    for model in args.models:
        path = ensure_bundle(bundle_dir, model, store_url)
        n_bytes = bytes_per_source(
            store_url, EnsemblePredictor.from_ensemble(EnsembleDir(path).read(device="cpu"))
        )
        members = [1, args.ensemble_members] if model == ENSEMBLE_MODEL and args.ensemble_members > 1 else [1]
        for precision in args.precision:
            flops = flops_per_source(path, rows, args.device, precision)
            flop_rate = max(r["rate"] for r in rates if r["precision"] == precision)
            for m in members:
                compute, io = flop_rate / (m * flops), read["rate"] / n_bytes
                bounds.append(
                    {
                        "kind": "bound",
                        "device": args.device,
                        "precision": precision,
                        "model": model,
                        "members": m,
                        "flops_per_source": m * flops,
                        "bytes_per_source": n_bytes,
                        "matmul_flop_per_s": flop_rate,
                        "read_bytes_per_s": read["rate"],
                        "compute_bound": compute,
                        "io_bound": io,
                        "bound_sources_per_s": min(compute, io),
                        "limited_by": "compute" if compute < io else "read",
                        **load_average(),
                    }
                )
    append_rows(NAME, [*rates, read, *bounds])
    print(write_report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
