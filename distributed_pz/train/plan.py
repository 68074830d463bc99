"""The split plan of an ensemble: R random splits × K folds, one member per (split, fold).

DEEPZ (Eriksen et al. 2020, §2.4 and §5.2) trains five networks per random 80–20 split so that
every galaxy is in the test part of exactly one of them, and repeats this for ten splits: 50
members, and every training galaxy gets a photo-z from the ten members that never saw it.
Here member ``(r, k)`` tests on fold ``k`` of split ``r``, trains on the other folds and carves
its validation set (early stopping, best weights) out of its own training part.

A survey's tiles each have their own photometric calibration, and the ensemble predicts tiles it
never saw. With rows in groups (their tiles) at least as many as the folds, whole groups are
dealt to the folds, so every out-of-fold prediction is one of a tile its member never saw: the
calibration fitted on them then includes the tile-to-tile error.

A calibration share (``calibration_share``) is a random part of the rows held out of every
member: every member predicts it, so its rows are pooled over all members exactly as a catalogue
row is, and the calibration fitted on it is tuned to the width a catalogue row gets. The
out-of-fold rows pool one member per split, and a point ensemble's spread over fewer, less
accurate means is not the catalogue's (``benchmarks/results/point_width.md``).

Everything derives from one master seed through :class:`numpy.random.SeedSequence`, so a plan
and the members' seeds are reproducible. The plan's format (:class:`SplitPlan`: JSON plus an
``.npz`` of integer and boolean arrays, read back with ``allow_pickle=False``) belongs to the
ensemble directory, :mod:`distributed_pz.models.ensemble`; this module draws plans.
"""

from __future__ import annotations

import hashlib

import numpy as np

from distributed_pz.models.ensemble import SplitPlan

NO_TEST_FOLD = -1
"""Test fold of every row in a one-fold ("train on everything") plan: no member tests on it."""


def make_plan(
    object_id: np.ndarray,
    n_splits: int = 10,
    n_folds: int = 5,
    val_fraction: float = 0.1,
    seed: int = 0,
    groups: np.ndarray | None = None,
    calibration_share: float = 0.0,
) -> SplitPlan:
    """Draw the split plan of an ensemble over the rows of a training sample.

    Parameters
    ----------
    object_id
        ``[N]`` identifiers of the training sample's rows.
    n_splits, n_folds
        ``R`` random splits of ``K`` folds each: ``R * K`` members, each galaxy in the test
        fold of exactly one member per split; folds of a split differ in size by at most one.
        ``K = 1`` trains on everything: no test fold (every row's fold is
        :data:`NO_TEST_FOLD`), each member trains on all rows but its own validation set, and
        there are no out-of-fold predictions.
    val_fraction
        Fraction of each member's training part (rounded, at least one row) held out for
        validation; 0 for none.
    seed
        Master seed: the folds, the validation sets and the members' seeds derive from it.
    groups
        ``[N]`` group (tile) of every row. With at least ``K`` groups, each split deals whole
        groups to its folds (a random order, each group to the fold with the fewest rows so
        far), so no member tests on a tile it trained on; otherwise rows are dealt one by one.
    calibration_share
        Fraction of the rows (rounded) held out of every member's training and validation for
        the calibration to fit on (:attr:`SplitPlan.calibration`); 0 for none. Needs ``K > 1``.
    """
    object_id = np.asarray(object_id)
    n = len(object_id)
    if n_splits < 1 or n_folds < 1:
        raise ValueError(f"need at least 1 split and 1 fold, not {n_splits} × {n_folds}")
    if n_folds == 1 and val_fraction <= 0:
        raise ValueError("one fold (train on everything) needs a validation fraction > 0")
    if n < n_folds:
        raise ValueError(f"{n} rows cannot fill {n_folds} folds")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction}")
    if not 0 <= calibration_share < 0.5:
        raise ValueError(f"calibration_share must be in [0, 0.5), not {calibration_share}")
    if calibration_share > 0 and n_folds == 1:
        raise ValueError("a calibration share needs folds > 1: one fold fits no calibration")
    n_members = n_splits * n_folds
    split_seq, val_seq, member_seq = np.random.SeedSequence(seed).spawn(3)
    share = None
    if calibration_share > 0:
        share = np.zeros(n, bool)
        drawn = np.random.default_rng(derived_seed(seed, "calibration share")).permutation(n)
        share[drawn[: max(1, round(calibration_share * n))]] = True
    test_fold = np.empty((n_splits, n), np.int16)
    by_group = groups is not None and n_folds > 1 and len(np.unique(groups)) >= n_folds
    for r, seq in enumerate(split_seq.spawn(n_splits)):
        rng = np.random.default_rng(seq)
        test_fold[r] = _deal_groups(np.asarray(groups), n_folds, rng) if by_group else 0
        if not by_group:
            test_fold[r, rng.permutation(n)] = np.arange(n) % n_folds
    if n_folds == 1:
        test_fold[:] = NO_TEST_FOLD
    validation = np.zeros((n_members, n), bool)
    for m, seq in enumerate(val_seq.spawn(n_members)):
        trains = test_fold[m // n_folds] != m % n_folds
        train_part = np.flatnonzero(trains if share is None else trains & ~share)
        n_val = max(1, round(val_fraction * len(train_part))) if val_fraction > 0 else 0
        validation[m, np.random.default_rng(seq).choice(train_part, n_val, replace=False)] = True
    member_seeds = np.array([s.generate_state(1)[0] for s in member_seq.spawn(n_members)], np.int64)
    groups = None if groups is None else np.asarray(groups)
    return SplitPlan(
        test_fold, validation, n_folds, float(val_fraction), int(seed), member_seeds, object_id, groups, share
    )


def _deal_groups(groups: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of every row: whole groups, in a random order, each to the fold with the fewest rows."""
    names, sizes = np.unique(groups, return_counts=True)
    fold_rows = np.zeros(n_folds, np.int64)
    fold_of = {}
    for g in rng.permutation(len(names)):
        fold = int(np.argmin(fold_rows))
        fold_of[names[g]] = fold
        fold_rows[fold] += sizes[g]
    return np.array([fold_of[g] for g in groups], np.int16)


def derived_seed(master_seed: int, purpose: str) -> int:
    """A seed for ``purpose`` (e.g. ``"pretrain"``) derived from the master seed, apart from the members'."""
    tag = int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:8], "little")
    return int(np.random.SeedSequence([master_seed, tag]).generate_state(1)[0])
