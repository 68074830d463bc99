"""Run the main job end to end on a simulated survey, printing every step as a ``dpz`` command.

simulate two KiDS+VIKING tiles → train DEEPZ, GaZNet-C9 and GaZNet-1 (cutouts + photometry)
ensembles on the first, each with a star/galaxy/QSO head and a p(z) calibration fitted on its
out-of-fold predictions (Ray Train) → predict the second tile with each (Dask) → evaluate the
three catalogues against the simulated truth in one report (PIT, coverage, the ODDS cut, the
class cut). Each step is the same command a user would type, and the steps are data
(:func:`demo_steps`); rerunning the demo resumes (finished members are skipped).
"""

from __future__ import annotations

import argparse
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from distributed_pz.cli import main as dpz
from distributed_pz.options import option

TRAIN_TILE, TARGET_TILE = "SIM_0000", "SIM_0001"


@dataclass(frozen=True)
class DemoModel:
    """One ensemble of the demo: registered model, label, epochs and ``--model-set`` overrides."""

    model: str
    label: str
    epochs: int
    settings: tuple[str, ...] = ()


MODELS = (
    DemoModel("deepz", "DEEPZ", 30, ("classify=true",)),
    DemoModel("gaznet_c9", "GaZNet-C9", 30, ("classify=true",)),
    DemoModel(
        "gaznet_1",
        "GaZNet-1",
        16,
        (
            "classify=true",
            "conv_widths=[8, 16, 16, 32]",
            "conv_depths=[1, 1, 1, 1]",
            "catalog_widths=[64, 64, 64, 64, 64, 64, 64, 64]",
            "neck_widths=[128, 64, 32, 16]",
        ),
    ),
)
"""The demo's ensembles. GaZNet-1 runs at CPU widths (one conv per VGG block, narrow layers; the
layer counts are the paper's); on a GPU train it with its registered widths."""


@dataclass(frozen=True)
class Step:
    """One ``dpz`` command of the demo."""

    title: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class DemoOptions:
    """The options of ``dpz demo``."""

    out: str = option("demo_output", help="directory for the store, bundles, catalogues, report")
    n: int = option(6000, help="sources per simulated tile")
    splits: int = option(2, help="random splits of each ensemble")
    folds: int = option(2, help="folds per split (members = splits × folds)")
    epochs_scale: float = option(
        1.0, help="multiply every model's demo epochs (DEEPZ 30, GaZNet-C9 30, GaZNet-1 16) by this"
    )
    workers: int = option(2, help="Dask workers for prediction")
    seed: int = option(0, help="master seed of the simulation and the ensembles")


OPTIONS = (DemoOptions,)
"""The dataclasses whose fields are the options of ``dpz demo``."""


def demo_steps(args: argparse.Namespace) -> list[Step]:
    """Every command of the demo, in order."""
    out = Path(args.out)
    store = str(out / "survey.zarr")
    steps = [
        Step(
            "simulate two tiles (photometry, exposures, cutouts, stars and QSOs, truth)",
            (
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
            ),
        )
    ]
    catalogs: list[str] = []
    for m in MODELS:
        bundle, catalogues = out / "bundles" / m.model, out / "catalogues" / m.model
        epochs = max(2, round(m.epochs * args.epochs_scale))
        settings = [a for s in m.settings for a in ("--model-set", s)]
        steps += [
            Step(
                f"train a {args.splits}×{args.folds} {m.label} ensemble on {TRAIN_TILE} (Ray Train), "
                "calibrated on its out-of-fold predictions",
                (
                    "train",
                    *("--store", store, "--tile", TRAIN_TILE, "--model", m.model, *settings),
                    *("--out", str(bundle), "--splits", str(args.splits), "--folds", str(args.folds)),
                    *("--epochs", str(epochs), "--seed", str(args.seed)),
                ),
            ),
            Step(
                f"predict {TARGET_TILE} with the {m.label} ensemble on a local Dask cluster",
                (
                    "predict",
                    *("--store", store, "--tile", TARGET_TILE, "--bundle", str(bundle)),
                    *("--out", str(catalogues), "--workers", str(args.workers), "--quiet"),
                ),
            ),
        ]
        catalogs += ["--catalog", f"{m.label}={catalogues / f'{TARGET_TILE}.parquet'}"]
    steps.append(
        Step(
            "evaluate the catalogues against the simulated truth (PIT, coverage, ODDS and class cuts)",
            (
                "evaluate",
                *catalogs,
                *("--truth", store, "--truth-tile", TARGET_TILE, "--out", str(out / "report")),
                *(
                    "--title",
                    "distributed_pz demo: DEEPZ, GaZNet-C9 and GaZNet-1 on a simulated KiDS+VIKING tile",
                ),
            ),
        )
    )
    return steps


def _run_step(step: Step) -> None:
    print(f"\n== {step.title}\n$ dpz {shlex.join(step.argv)}", flush=True)
    started = time.perf_counter()
    code = dpz(list(step.argv))
    if code:
        raise SystemExit(f"dpz demo: step failed with exit code {code}: dpz {shlex.join(step.argv)}")
    print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    started = time.perf_counter()
    for step in demo_steps(args):
        _run_step(step)
    report = out / "report"
    print(f"\nDemo finished in {time.perf_counter() - started:.0f} s.")
    print(f"catalogues: {out / 'catalogues'}/*/{TARGET_TILE}.parquet")
    print(f"report:     {report / 'report.md'} (plots: {report}/*.png)")
    return 0
