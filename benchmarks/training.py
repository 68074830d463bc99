"""Training throughput per member (samples/s) and the ensemble wall times it implies.

``train_member`` (plain PyTorch, no Ray) runs ``--epochs`` epochs of DEEPZ and GaZNet-1 on
``--n`` rows of a simulated tile with one torch thread (CPU; the way Ray packs one member per
CPU); samples/s = training rows per epoch / epoch seconds (an epoch includes its validation
pass and best-weight copy), best epoch counted. From it, on this machine with one member per
core: the wall time of a 10 × 5 DEEPZ ensemble (300 epochs) and of one GaZNet-1 member (60
epochs), with ``--sample-rows`` rows split as ``dpz train`` does (a member trains on
``(1 − 1/folds) × 0.9`` of them). The measured Ray run (``results/training_cpu.md``) is quoted
beside, when present.

    .venv/bin/python -m benchmarks.training
    .venv/bin/python -m benchmarks.training --quick
    .venv/bin/python -m benchmarks.training --device cuda

Rows are appended to ``results/training.jsonl``; ``results/training.md`` is regenerated from
all of its rows.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from benchmarks.fixtures import TILE, ensure_store, suite_parser, work_paths
from benchmarks.harness import (
    RESULTS_DIR,
    append_rows,
    load_average,
    markdown_table,
    opt,
    read_rows,
    report,
)
from distributed_pz.survey.store.store import open_store
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.member import TrainConfig, train_member

NAME = "training"
TRAIN_ARRAYS = ("mag", "cutout", "flux_exp", "flux_exp_err", "z_spec", "class")
PAPER = {"deepz": {"epochs": 300, "batch_size": 100}, "gaznet_1": {"epochs": 60, "batch_size": 128}}
"""Paper epochs and batch sizes (DEEPZ §4; GaZNet)."""
DEEPZ_SPLITS, DEEPZ_FOLDS = 10, 5
VAL_FRACTION = 0.1
"""Validation share of a member's training part in ``dpz train`` plans."""
RAY_RESULTS = "training_cpu.md"


def bench_member(model: str, data: TileArrays, epochs: int, device: str) -> dict[str, Any]:
    """Samples/s of one member trained ``epochs`` epochs on ``data`` (20 % held out)."""
    config = TrainConfig(
        epochs=epochs, batch_size=PAPER[model]["batch_size"], patience=None, device=device, val_fraction=0.2
    )
    result = train_member(model, data, seed=0, train_config=config)
    n_train = data.n_rows - round(config.val_fraction * data.n_rows)
    seconds = [r.seconds for r in result.history]
    return {
        "model": model,
        "rows": data.n_rows,
        "train_rows": n_train,
        "epochs": epochs,
        "batch_size": config.batch_size,
        "epoch_s_min": min(seconds),
        "epoch_s_max": max(seconds),
        "samples_per_s": n_train / min(seconds),
        **load_average(),
    }


def extrapolate(row: dict[str, Any], sample_rows: int, cores: int) -> dict[str, Any]:
    """Wall time on ``cores`` single-thread members: 10 × 5 DEEPZ ensemble, or one GaZNet-1 member."""
    train_rows = round(sample_rows * (1 - 1 / DEEPZ_FOLDS) * (1 - VAL_FRACTION))
    epochs = PAPER[row["model"]]["epochs"]
    member_s = epochs * train_rows / row["samples_per_s"]
    if row["model"] == "deepz":
        members = DEEPZ_SPLITS * DEEPZ_FOLDS
        return {
            "job": f"{DEEPZ_SPLITS} × {DEEPZ_FOLDS} DEEPZ ensemble, {epochs} epochs",
            "members": members,
            "wall_h": member_s * -(-members // cores) / 3600,
        }
    return {"job": f"one {row['model']} member, {epochs} epochs", "members": 1, "wall_h": member_s / 3600}


COLUMNS = [
    "time_utc",
    "device",
    "threads",
    "model",
    "rows",
    "train_rows",
    "epochs",
    "batch_size",
    "epoch_s_min",
    "samples_per_s",
    "job",
    "wall_h",
    "loadavg_1m",
]


INTRO = """\
`train_member` (no Ray) on rows of a simulated KiDS+VIKING tile, freshly initialised
paper-size models, paper batch sizes, augmentations on. samples/s = training rows / fastest
epoch (an epoch includes its validation pass). `wall_h`: extrapolated to the paper's epochs
on the measuring machine with one single-thread member per core, a 20k-source training
sample split as `dpz train` does (14 400 training rows per member); start-up, checkpoints and
out-of-fold prediction not included. `loadavg_1m`: the cores were shared with other jobs."""
RAY_QUOTE = """\
## Measured with Ray (quoted from `training_cpu.md`, same kind of machine, loaded)

- 10 × 5 DEEPZ ensemble, **5 epochs**, 20k-source tile (14 400 training rows per member):
  26 min 44 s wall; median epoch 11.3 s per member (≈ 1 270 samples/s per member, 7.1 s
  ≈ 2 000 samples/s alone). Scaled to 300 epochs: ≈ 27 h.
- One GaZNet-1 member, 1 epoch on 9 000 rows: 136–145 s (≈ 64 samples/s per member);
  60 epochs ≈ 2.3 h per member, 50 members ≈ 2.4 days on 2 cores.
- Ray packs **one member per CPU**: 2 workers × 1 CPU (1 torch thread each) on 2 cores, each
  worker training its share of the members one after another (2 members at any time)."""


def write_report() -> str:
    """Regenerate ``results/training.md`` from every row of ``results/training.jsonl``."""
    rows = read_rows(NAME)
    ray = RESULTS_DIR / RAY_RESULTS
    quoted = RAY_QUOTE if ray.is_file() else "(`training_cpu.md`, the Ray run, was not found.)"
    report(NAME, "Training throughput per member", INTRO, markdown_table(rows, COLUMNS), quoted, rows=rows)
    return markdown_table(rows, COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = suite_parser(
        __doc__,
        "threads",
        quick=opt(help="fewer rows, one epoch"),
        n=opt(help="training rows (default 4000; 1000 with --quick)"),
        epochs=opt(help="epochs (default 2; 1 with --quick)"),
        models=opt(list(PAPER), choices=list(PAPER)),
    )
    parser.add_argument(
        "--sample-rows", type=int, default=20_000, help="training sample of the extrapolation"
    )
    parser.add_argument("--tile-n", type=int, default=20_000, help="sources of the simulated tile read from")
    args = parser.parse_args(argv)
    n = args.n or (1000 if args.quick else 4000)
    epochs = args.epochs or (1 if args.quick else 2)
    torch.set_num_threads(args.threads)
    store_url, _ = work_paths(args.work, args.tile_n)
    ensure_store(store_url, args.tile_n)
    tile = open_store(store_url).tile(TILE)
    data = TileArrays.from_attrs(tile.read([a for a in TRAIN_ARRAYS if tile.has(a)], 0, n), tile.attrs)
    on_gpu = torch.device(args.device).type == "cuda"
    cores = torch.cuda.device_count() if on_gpu else len(os.sched_getaffinity(0))
    rows = []
    for model in args.models:
        row = {
            "device": args.device,
            "threads": args.threads,
            **bench_member(model, data, epochs, args.device),
        }
        rows.append({**row, **extrapolate(row, args.sample_rows, cores), "parallel_members": cores})
        print(model, round(row["samples_per_s"]), flush=True)
    append_rows(NAME, rows)
    print(write_report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
