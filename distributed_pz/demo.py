"""Run the main job end to end on a simulated survey, printing every step as a ``dpz`` command.

simulate two KiDS+VIKING tiles → train a DEEPZ ensemble (Ray Train) and a GaZNet-C9
ensemble on the first (its spec-z sample) → predict the second tile with each (Dask) →
evaluate both catalogues against the simulated truth in one report. Each step is the same
command a user would type; rerunning the demo resumes (finished steps are skipped).
"""

from __future__ import annotations

import argparse
import shlex
import time
from pathlib import Path

from distributed_pz.cli import main as dpz

TRAIN_TILE, TARGET_TILE = "SIM_0000", "SIM_0001"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default="demo_output", help="directory for the store, bundles, catalogues, report"
    )
    parser.add_argument("--n", type=int, default=6000, help="sources per simulated tile")
    parser.add_argument("--splits", type=int, default=2, help="random splits of each ensemble")
    parser.add_argument("--folds", type=int, default=2, help="folds per split (members = splits × folds)")
    parser.add_argument(
        "--epochs", type=int, default=30, help="epochs per member (early stopping may end sooner)"
    )
    parser.add_argument("--workers", type=int, default=2, help="Dask workers for prediction")
    parser.add_argument("--seed", type=int, default=0, help="master seed of the simulation and the ensembles")


def _step(title: str, argv: list[str]) -> None:
    print(f"\n== {title}\n$ dpz {shlex.join(argv)}", flush=True)
    started = time.perf_counter()
    code = dpz(argv)
    if code:
        raise SystemExit(f"dpz demo: step failed with exit code {code}: dpz {shlex.join(argv)}")
    print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    store, report = str(out / "survey.zarr"), out / "report"
    started = time.perf_counter()
    _step(
        "simulate two tiles (photometry, exposures, cutouts, truth)",
        [
            "simulate",
            "--out",
            store,
            "--n",
            str(args.n),
            "--tiles",
            "2",
            "--seed",
            str(args.seed),
            "--workers",
            "2",
        ],
    )
    catalogs = []
    for model in ("deepz", "gaznet_c9"):
        bundle, catalogues = out / "bundles" / model, out / "catalogues" / model
        _step(
            f"train a {args.splits}×{args.folds} {model} ensemble on {TRAIN_TILE} with Ray Train",
            [
                "train",
                "--store",
                store,
                "--tile",
                TRAIN_TILE,
                "--model",
                model,
                "--out",
                str(bundle),
                "--splits",
                str(args.splits),
                "--folds",
                str(args.folds),
                "--epochs",
                str(args.epochs),
                "--seed",
                str(args.seed),
            ],
        )
        _step(
            f"predict {TARGET_TILE} with the {model} ensemble on a local Dask cluster",
            [
                "predict",
                "--store",
                store,
                "--tile",
                TARGET_TILE,
                "--bundle",
                str(bundle),
                "--out",
                str(catalogues),
                "--workers",
                str(args.workers),
                "--quiet",
            ],
        )
        catalogs += ["--catalog", f"{model}={catalogues / f'{TARGET_TILE}.parquet'}"]
    _step(
        "evaluate both catalogues against the simulated truth",
        [
            "evaluate",
            *catalogs,
            "--truth",
            store,
            "--truth-tile",
            TARGET_TILE,
            "--out",
            str(report),
            "--title",
            "distributed_pz demo: DEEPZ vs GaZNet-C9 on a simulated KiDS+VIKING tile",
        ],
    )
    print(f"\nDemo finished in {time.perf_counter() - started:.0f} s.")
    print(f"catalogues: {out / 'catalogues'}/*/{TARGET_TILE}.parquet")
    print(f"report:     {report / 'report.md'} (plots: {report}/*.png)")
    return 0
