"""Distil an ensemble into one student network that reproduces its p(z) (one forward pass per source).

The student trains on draws from the ensemble's pooled p(z) over every row of the tiles named
(labelled and unlabeled alike) and is written as a plain bundle to --out: `dpz predict --bundle
OUT` runs it exactly as it runs the ensemble.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from distributed_pz.options import from_args, option
from distributed_pz.train.config import tiles_option
from distributed_pz.train.distill import DistillConfig

STUDENT = DistillConfig().train
"""The student's default training settings."""


@dataclass(frozen=True, kw_only=True)
class DistillInputs:
    """What ``dpz distill`` reads and writes, and the student's epochs and batch size."""

    ensemble: str = option(path=True, help="the teacher: ensemble (or bundle) directory")
    store: str = option(path=True, help="survey store URL with the rows to distil on")
    tiles: tuple[str, ...] = tiles_option("tile", None, "tile to use (repeat; none = every tile)")
    max_rows: int | None = option(None, minimum=1, help="use at most this many rows per tile")
    out: str = option(path=True, help="student bundle directory (must not exist)")
    epochs: int = option(STUDENT.epochs, minimum=1, help="student epochs (at most)")
    batch_size: int = option(STUDENT.batch_size, minimum=1, help="rows per step")


OPTIONS = (DistillInputs, DistillConfig)
"""The dataclasses whose fields are the options of ``dpz distill``."""


def run(args: argparse.Namespace) -> int:
    """Check the teacher, the store and --out; read the rows, distil, save the student bundle."""
    import dataclasses

    from distributed_pz.models.bundle import BundleError, save_bundle
    from distributed_pz.models.calibration import RecordedCalibration
    from distributed_pz.train.distill import distill

    try:
        teacher, rows = _inputs(args)
    except (BundleError, ValueError) as exc:
        print(f"dpz distill: error: {exc}", file=sys.stderr)
        return 1
    train = dataclasses.replace(STUDENT, epochs=args.epochs, batch_size=args.batch_size)
    result = distill(teacher, rows, config=from_args(DistillConfig, args, train=train))
    path = save_bundle(args.out, result.bundle)
    meta = result.bundle.metadata
    print(
        f"student of {teacher.n_members} members on {meta['distill_rows']} rows x {meta['distill_samples']} draws, "
        f"best epoch {result.best_epoch + 1}/{len(result.history)}: {path}"
    )
    calibration = meta["calibration"]
    if isinstance(calibration, str):
        print(f"student calibration: {calibration}")
    else:
        fitted = RecordedCalibration.from_dict(calibration)
        print(f"student calibration on {fitted.n_rows} held-out labelled rows: {fitted.change()}")
    return 0


def _inputs(args: argparse.Namespace):
    """The teacher's predictor and the rows to distil on, after the checks that need no training:
    a new --out, a mixture-density teacher, tiles of its band set with the bands it reads."""
    from distributed_pz._files import exists
    from distributed_pz.models.compat import check_bands
    from distributed_pz.models.ensemble import EnsembleDir
    from distributed_pz.models.predictor import EnsemblePredictor
    from distributed_pz.survey.store.store import open_store

    if exists(args.out):
        raise ValueError(f"--out {args.out} exists; the student is written to a new folder")
    ensemble = EnsembleDir(args.ensemble).read()
    teacher = EnsemblePredictor.from_ensemble(ensemble)
    if not teacher.has_pdf:
        raise ValueError(
            f"ensemble {args.ensemble!r}: its members give point estimates; a student learns a p(z) "
            "(distil a mixture-density ensemble, e.g. --model-set head=mdn)"
        )
    store = open_store(args.store)
    check_bands(ensemble, store, args.tiles)
    return teacher, _rows(teacher, store, args.tiles or store.tile_names(), args.max_rows)


def _rows(teacher, store, tiles, max_rows: int | None):
    """The first ``max_rows`` rows of each tile (the arrays the teacher reads, and ``z_spec`` and
    ``class`` where the tile has them: the student's calibration leaves stars out), as one."""
    import numpy as np

    from distributed_pz.survey.store.tiles import TileArrays

    parts = []
    for name in tiles:
        tile = store.tile(name)
        stop = tile.n_rows if max_rows is None else min(max_rows, tile.n_rows)
        labels = [label for label in ("z_spec", "class") if tile.has(label)]
        names = [*teacher.input_arrays(tile.array_names()), *labels]
        parts.append(tile.read_rows(names, 0, stop, teacher.image_bands))
    band_sets = {p.band_set for p in parts}
    if len(band_sets) > 1:
        raise ValueError(
            f"tiles {list(tiles)} are of several band sets {sorted(map(str, band_sets))}; distil on one"
        )
    common = set.intersection(*(set(p.arrays) for p in parts))
    arrays = {k: np.concatenate([p.arrays[k] for p in parts]) for k in common}
    return TileArrays(arrays, parts[0].bands, parts[0].image_bands, parts[0].zeropoints, parts[0].band_set)
