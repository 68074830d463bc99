"""The split plan of an ensemble: R random splits × K folds, one member per (split, fold).

DEEPZ (Eriksen et al. 2020, §2.4 and §5.2) trains five networks per random 80–20 split so that
every galaxy is in the test part of exactly one of them, and repeats this for ten splits: 50
members, and every training galaxy gets a photo-z from the ten members that never saw it.
Here member ``(r, k)`` tests on fold ``k`` of split ``r``, trains on the other folds and carves
its validation set (early stopping, best weights) out of its own training part.

Everything derives from one master seed through :class:`numpy.random.SeedSequence`, so a plan
and the members' seeds are reproducible; the plan is saved as JSON plus an ``.npz`` of integer
and boolean arrays (read back with ``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PLAN_JSON = "plan.json"
PLAN_ARRAYS = "plan.npz"
PLAN_FORMAT = 1


@dataclass(frozen=True)
class MemberSpec:
    """One member of the ensemble: its split, its test fold and its training seed."""

    index: int
    split: int
    fold: int
    seed: int

    @property
    def member_id(self) -> str:
        """Directory-safe name, sorting in member order (``s03_f1``)."""
        return f"s{self.split:02d}_f{self.fold}"


@dataclass(frozen=True, eq=False)
class SplitPlan:
    """Which rows of the training sample each member trains on, validates on and is tested on.

    Parameters
    ----------
    test_fold
        ``[R, N]`` test fold of every row in every split.
    validation
        ``[M, N]`` True where a row is in member ``m``'s validation set (``M = R * K``,
        member ``m`` is split ``m // K``, fold ``m % K``).
    n_folds
        ``K``.
    val_fraction
        Fraction of each member's training part held out for validation.
    seed
        The master seed.
    member_seeds
        ``[M]`` training seed of every member, derived from ``seed``.
    object_id
        ``[N]`` identifiers of the rows (to match predictions back to sources).
    """

    test_fold: np.ndarray
    validation: np.ndarray
    n_folds: int
    val_fraction: float
    seed: int
    member_seeds: np.ndarray
    object_id: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.test_fold.shape[1])

    @property
    def n_splits(self) -> int:
        return int(self.test_fold.shape[0])

    @property
    def members(self) -> list[MemberSpec]:
        """Every member, split-major."""
        return [
            MemberSpec(m, m // self.n_folds, m % self.n_folds, int(self.member_seeds[m]))
            for m in range(self.n_splits * self.n_folds)
        ]

    def member(self, member_id: str) -> MemberSpec:
        """The member called ``member_id``."""
        for spec in self.members:
            if spec.member_id == member_id:
                return spec
        raise KeyError(f"no member {member_id!r} in a {self.n_splits} × {self.n_folds} plan")

    def test_rows(self, member: MemberSpec) -> np.ndarray:
        """Rows the member never sees: its test fold (sorted)."""
        return np.flatnonzero(self.test_fold[member.split] == member.fold)

    def validation_rows(self, member: MemberSpec) -> np.ndarray:
        """Rows of the member's training part held out for validation (sorted)."""
        return np.flatnonzero(self.validation[member.index])

    def train_rows(self, member: MemberSpec) -> np.ndarray:
        """Rows the member fits its weights on: neither test nor validation (sorted)."""
        seen = (self.test_fold[member.split] != member.fold) & ~self.validation[member.index]
        return np.flatnonzero(seen)

    def save(self, directory: str | Path) -> None:
        """Write ``plan.json`` and ``plan.npz`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            directory / PLAN_ARRAYS,
            test_fold=self.test_fold,
            validation=self.validation,
            member_seeds=self.member_seeds,
            object_id=self.object_id,
        )
        meta = {
            "format": PLAN_FORMAT,
            "n_rows": self.n_rows,
            "n_splits": self.n_splits,
            "n_folds": self.n_folds,
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "members": [
                {"member_id": s.member_id, "split": s.split, "fold": s.fold, "seed": s.seed}
                for s in self.members
            ],
        }
        (directory / PLAN_JSON).write_text(json.dumps(meta, indent=1) + "\n")


def make_plan(
    object_id: np.ndarray,
    n_splits: int = 10,
    n_folds: int = 5,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> SplitPlan:
    """Draw the split plan of an ensemble over the rows of a training sample.

    Parameters
    ----------
    object_id
        ``[N]`` identifiers of the training sample's rows.
    n_splits, n_folds
        ``R`` random splits of ``K`` folds each: ``R * K`` members, each galaxy in the test
        fold of exactly one member per split; folds of a split differ in size by at most one.
    val_fraction
        Fraction of each member's training part (rounded, at least one row) held out for
        validation; 0 for none.
    seed
        Master seed: the folds, the validation sets and the members' seeds derive from it.
    """
    object_id = np.asarray(object_id)
    n = len(object_id)
    if n_splits < 1 or n_folds < 2:
        raise ValueError(f"need at least 1 split and 2 folds, not {n_splits} × {n_folds}")
    if n < n_folds:
        raise ValueError(f"{n} rows cannot fill {n_folds} folds")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction}")
    n_members = n_splits * n_folds
    split_seq, val_seq, member_seq = np.random.SeedSequence(seed).spawn(3)
    test_fold = np.empty((n_splits, n), np.int16)
    for r, seq in enumerate(split_seq.spawn(n_splits)):
        test_fold[r, np.random.default_rng(seq).permutation(n)] = np.arange(n) % n_folds
    validation = np.zeros((n_members, n), bool)
    for m, seq in enumerate(val_seq.spawn(n_members)):
        train_part = np.flatnonzero(test_fold[m // n_folds] != m % n_folds)
        n_val = max(1, round(val_fraction * len(train_part))) if val_fraction > 0 else 0
        validation[m, np.random.default_rng(seq).choice(train_part, n_val, replace=False)] = True
    member_seeds = np.array([s.generate_state(1)[0] for s in member_seq.spawn(n_members)], np.int64)
    return SplitPlan(test_fold, validation, n_folds, float(val_fraction), int(seed), member_seeds, object_id)


def load_plan(directory: str | Path) -> SplitPlan:
    """Read a plan written by :meth:`SplitPlan.save`."""
    directory = Path(directory)
    meta = json.loads((directory / PLAN_JSON).read_text())
    if meta.get("format") != PLAN_FORMAT:
        raise ValueError(f"{directory / PLAN_JSON}: plan format {meta.get('format')} is not {PLAN_FORMAT}")
    with np.load(directory / PLAN_ARRAYS, allow_pickle=False) as arrays:
        plan = SplitPlan(
            test_fold=arrays["test_fold"],
            validation=arrays["validation"],
            n_folds=int(meta["n_folds"]),
            val_fraction=float(meta["val_fraction"]),
            seed=int(meta["seed"]),
            member_seeds=arrays["member_seeds"],
            object_id=arrays["object_id"],
        )
    if plan.n_splits != meta["n_splits"] or plan.n_rows != meta["n_rows"]:
        raise ValueError(f"{directory}: plan.json and plan.npz disagree on the plan's shape")
    return plan


def derived_seed(master_seed: int, purpose: str) -> int:
    """A seed for ``purpose`` (e.g. ``"pretrain"``) derived from the master seed, apart from the members'."""
    tag = int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:8], "little")
    return int(np.random.SeedSequence([master_seed, tag]).generate_state(1)[0])
