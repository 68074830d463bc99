"""Run the main job end to end on a simulated survey, printing every step as a ``dpz`` command.

A survey is used one way: ensembles are trained on the few tiles with spectroscopy and predict
every other tile, each with its own photometric zero points. So: simulate five KiDS+VIKING tiles
→ train DEEPZ, GaZNet-C9 and GaZNet-1 (cutouts + photometry) ensembles on the first two, each
with a star/galaxy/QSO head, zero-point jitter and a p(z) calibration fitted on its out-of-fold
predictions (Ray Train) → predict the three unseen tiles with each (Dask), each tile's photometry
first brought to the training tiles' zero points from its own stars (``--homogenise``) → evaluate
the catalogues against the simulated truth in one report, per tile and pooled, galaxies apart
(PIT, coverage, the ODDS cut, the class cut). Each step is the same command a user would type,
and the steps are data (:func:`demo_steps`); rerunning the demo resumes (finished members are
skipped).
"""

from __future__ import annotations

import argparse
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from distributed_pz.cli import main as dpz
from distributed_pz.options import option

TRAIN_TILES = ("SIM_0000", "SIM_0001")
TARGET_TILES = ("SIM_0002", "SIM_0003", "SIM_0004")
"""Trained on the first two tiles; predicted and evaluated on three it never saw."""


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

    out: str = option("demo_output", path=True, help="directory for the store, bundles, catalogues, report")
    n: int = option(4000, minimum=1, help="sources per simulated tile")
    splits: int = option(2, minimum=1, help="random splits of each ensemble")
    folds: int = option(2, minimum=1, help="folds per split (members = splits × folds)")
    epochs_scale: float = option(
        1.0, help="multiply every model's demo epochs (DEEPZ 30, GaZNet-C9 30, GaZNet-1 16) by this"
    )
    workers: int = option(2, minimum=1, help="Dask workers for prediction")
    seed: int = option(0, help="master seed of the simulation and the ensembles")


OPTIONS = (DemoOptions,)
"""The dataclasses whose fields are the options of ``dpz demo``."""


def demo_steps(args: argparse.Namespace) -> list[Step]:
    """Every command of the demo, in order."""
    out = Path(args.out)
    store = str(out / "survey.zarr")
    steps = [
        Step(
            f"simulate {len(TRAIN_TILES) + len(TARGET_TILES)} tiles, each with its own zero points "
            "(photometry, exposures, cutouts, stars and QSOs, truth)",
            (
                "simulate",
                "--out",
                store,
                "--n",
                str(args.n),
                "--tiles",
                str(len(TRAIN_TILES) + len(TARGET_TILES)),
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
        train_tiles = [a for t in TRAIN_TILES for a in ("--tile", t)]
        target_tiles = [a for t in TARGET_TILES for a in ("--tile", t)]
        steps += [
            Step(
                f"train a {args.splits}×{args.folds} {m.label} ensemble on {' and '.join(TRAIN_TILES)} "
                "(Ray Train), with zero-point jitter, calibrated on its out-of-fold predictions",
                (
                    "train",
                    *("--store", store, *train_tiles, "--model", m.model, *settings),
                    *("--out", str(bundle), "--splits", str(args.splits), "--folds", str(args.folds)),
                    *("--epochs", str(epochs), "--seed", str(args.seed)),
                ),
            ),
            Step(
                f"predict the unseen tiles {', '.join(TARGET_TILES)} with the {m.label} ensemble on a "
                "local Dask cluster, each tile's zero points brought to the training tiles' first",
                (
                    "predict",
                    *("--store", store, *target_tiles, "--bundle", str(bundle)),
                    *("--out", str(catalogues), "--workers", str(args.workers), "--quiet", "--homogenise"),
                ),
            ),
        ]
        catalogs += ["--catalog", f"{m.label}={catalogues}"]
    steps.append(
        Step(
            "evaluate the catalogues against the simulated truth, per tile and pooled, galaxies apart "
            "(PIT, coverage, ODDS and class cuts)",
            (
                "evaluate",
                *catalogs,
                *("--truth", store, *(a for t in TARGET_TILES for a in ("--truth-tile", t))),
                *("--out", str(out / "report")),
                *(
                    "--title",
                    "distributed_pz demo: DEEPZ, GaZNet-C9 and GaZNet-1 on three unseen simulated "
                    "KiDS+VIKING tiles",
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
    print(f"catalogues: {out / 'catalogues'}/*/SIM_000[2-4].parquet")
    print(f"report:     {report / 'report.md'} (plots: {report}/*.png)")
    return 0
