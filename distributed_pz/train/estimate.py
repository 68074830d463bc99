"""How long a training plan will take, measured before Ray starts: one short epoch timed here.

:func:`estimate_plan` trains the plan's model for two epochs on a few hundred rows of the first
training tile (on this machine's GPU when it has one, else its CPU) and scales the second
epoch's time per row (the first pays the set-up) to the plan: ``members x epochs x training rows / workers``. It is an upper bound (early
stopping may end members sooner) that ignores Ray's start-up (~10 s) and the out-of-fold
predictions, and it is only as good as the assumption that the workers run as fast as this
process: on a shared machine they may not.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from distributed_pz.survey.store.store import SurveyStore
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.config import EnsembleConfig
from distributed_pz.train.member import train_member

PROBE_ROWS = 384
"""Rows of the timed epoch."""


@dataclass(frozen=True)
class PlanEstimate:
    """The estimate of a plan: seconds per member epoch and in all (upper bound)."""

    members: int
    epochs: int
    rows_per_member: int
    workers: int
    device: str
    epoch_seconds: float
    total_seconds: float

    def line(self) -> str:
        """One line for ``dpz train``'s output."""
        return (
            f"estimate: {self.members} members × {self.epochs} epochs × ~{self.rows_per_member} rows on "
            f"{self.workers} worker{'s' * (self.workers > 1)}, {self.epoch_seconds:.1f} s per member epoch "
            f"({self.device}, timed here) -> at most ~{_duration(self.total_seconds)} (early stopping may end sooner)"
        )


def estimate_plan(
    config: EnsembleConfig,
    store: SurveyStore,
    arrays: list[str],
    n_rows: int,
    members: int,
    workers: int,
    threads_per_worker: int = 1,
) -> PlanEstimate:
    """Time one epoch of the plan's model on a few rows and scale it to ``members`` members.

    Parameters
    ----------
    config
        The resolved ensemble config.
    store, arrays
        The opened training store and the arrays a member reads.
    n_rows
        Rows of the training sample.
    members, workers
        Members left to train and the workers sharing them.
    threads_per_worker
        Torch threads of each worker (the probe runs with as many).
    """
    tile = store.tile(config.tiles[0])
    rows = TileArrays.from_attrs(tile.read(arrays, 0, min(PROBE_ROWS, tile.n_rows)), tile.attrs)
    rows = rows.take(np.flatnonzero(np.isfinite(rows.arrays["z_spec"])))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    probe = dataclasses.replace(config.train, epochs=2, patience=None, device=device)
    val = rows.take(np.arange(min(32, rows.n_rows)))
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_worker)  # as a worker runs it (oversubscribed threads crawl)
    try:
        result = train_member(config.model_config(), rows, config.seed, train_config=probe, val_data=val)
    finally:
        torch.set_num_threads(threads)
    per_row = result.history[-1].seconds / max(rows.n_rows, 1)  # the second epoch: no set-up in it
    held_out = 1.0 / config.n_folds if config.n_folds > 1 else 0.0
    rows_per_member = int(n_rows * (1 - held_out) * (1 - config.val_fraction))
    epoch_seconds = per_row * rows_per_member
    rounds = math.ceil(members / max(workers, 1))
    return PlanEstimate(
        members=members,
        epochs=config.train.epochs,
        rows_per_member=rows_per_member,
        workers=workers,
        device=device,
        epoch_seconds=epoch_seconds,
        total_seconds=rounds * config.train.epochs * epoch_seconds,
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
