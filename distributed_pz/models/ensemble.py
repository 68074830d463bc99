"""Ensemble bundles: every member's model bundle, the split plan and the training record, in one directory.

Layout::

    ensemble.json        manifest, written last: members and their content hashes, plan,
                         resolved training config, training-store hash, ensemble content hash
    config.json          the resolved training config (written when training starts)
    plan.json, plan.npz  the split plan (:class:`SplitPlan`, drawn by :mod:`distributed_pz.train.plan`)
    sample.npz           the training sample: tile index, row, object_id, z_spec of every plan row
    members/<member_id>/ one model bundle per member (:func:`distributed_pz.models.bundle.save_bundle`)
    pretrain/            the pre-trained bundle members fine-tuned from (when there was one)
    oof.parquet          out-of-fold predictions (:mod:`distributed_pz.train.oof`)
    calibration.json     the p(z) recalibration fitted on them, with its own content hash
                         (:mod:`distributed_pz.models.calibration`)

Each member bundle appears atomically (temporary directory, then rename), and the manifest is
renamed into place only after every member, so a directory with ``ensemble.json`` is complete.
The ensemble content hash covers the members' content hashes, the plan arrays, the config and
the store hash. A single model bundle directory loads as an ensemble of one.

The plan's format lives here (:class:`SplitPlan`, :class:`MemberSpec`, :func:`load_plan`: plain
arrays, read without pickle), so reading an ensemble needs nothing from training;
:mod:`distributed_pz.train.plan` draws plans.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distributed_pz import __version__
from distributed_pz._files import local_copy, utc_now, write_json, write_text
from distributed_pz.models.bundle import MANIFEST as BUNDLE_MANIFEST
from distributed_pz.models.bundle import Bundle, BundleError, load_bundle

ENSEMBLE_FORMAT = "distributed_pz.ensemble"
ENSEMBLE_VERSION = 1
MANIFEST = "ensemble.json"
CONFIG = "config.json"
MEMBERS = "members"
PRETRAIN = "pretrain"
SINGLE_MEMBER_ID = "member"
"""Member id of a plain model bundle loaded as an ensemble."""
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
        write_text(directory / PLAN_JSON, json.dumps(meta, indent=1) + "\n")


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


@dataclass(frozen=True, eq=False)
class Ensemble:
    """A trained ensemble.

    Parameters
    ----------
    path
        Its directory.
    members
        Member id -> bundle, in plan order.
    plan
        The split plan (``None`` for a single bundle).
    config
        The resolved training config (empty for a single bundle).
    store_hash
        Content hash of the training store's tiles (``None`` if unknown).
    content_hash
        The ensemble's own hash (a single bundle's content hash for an ensemble of one).
    """

    path: Path
    members: Mapping[str, Bundle]
    plan: SplitPlan | None
    config: Mapping[str, Any]
    store_hash: str | None
    content_hash: str

    def __len__(self) -> int:
        return len(self.members)

    @property
    def bundles(self) -> list[Bundle]:
        """Member bundles in plan order (what :class:`distributed_pz.models.predictor.EnsemblePredictor` takes)."""
        return list(self.members.values())

    @property
    def model_name(self) -> str:
        return self.bundles[0].model_name


def member_dir(root: str | os.PathLike, member_id: str) -> Path:
    """Where member ``member_id``'s bundle lives."""
    return Path(root) / MEMBERS / member_id


def finished_members(root: str | os.PathLike) -> set[str]:
    """Ids of the members whose bundle is complete on disk (not the hidden temporary ones)."""
    members = Path(root) / MEMBERS
    if not members.is_dir():
        return set()
    return {
        p.name for p in members.iterdir() if not p.name.startswith(".") and (p / BUNDLE_MANIFEST).is_file()
    }


def ensemble_hash(
    member_hashes: Mapping[str, str], plan: SplitPlan, config: Mapping[str, Any], store_hash: str
) -> str:
    """SHA-256 over the members' content hashes, the plan arrays, the config and the store hash."""
    h = hashlib.sha256()
    description = {"members": dict(member_hashes), "config": config, "store_hash": store_hash}
    h.update(json.dumps(description, sort_keys=True).encode())
    for array in (plan.test_fold, plan.validation, plan.member_seeds, plan.object_id):
        h.update(f"{array.dtype}|{array.shape}|".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def write_manifest(
    root: str | os.PathLike,
    plan: SplitPlan,
    config: Mapping[str, Any],
    store: Mapping[str, Any],
    pretrain: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Any] | None = None,
) -> str:
    """Write ``ensemble.json`` atomically, after every member of ``plan`` is on disk.

    Parameters
    ----------
    root
        The ensemble directory, holding ``members/``, the plan and the config.
    plan
        The split plan.
    config
        The resolved training config.
    store
        ``url``, ``tiles``, ``hash`` (and anything else worth recording) of the training store.
    pretrain
        What the members fine-tuned from (bundle hash, store), if anything.
    calibration
        The calibration file's entry (path, content hash; :mod:`distributed_pz.models.calibration`),
        if one was fitted.

    Returns
    -------
    str
        The ensemble content hash.
    """
    root = Path(root)
    members = []
    for spec in plan.members:
        manifest = _read_json(member_dir(root, spec.member_id) / BUNDLE_MANIFEST)
        members.append(
            {
                "member_id": spec.member_id,
                "split": spec.split,
                "fold": spec.fold,
                "seed": spec.seed,
                "path": f"{MEMBERS}/{spec.member_id}",
                "content_hash": manifest["content_hash"],
            }
        )
    digest = ensemble_hash({m["member_id"]: m["content_hash"] for m in members}, plan, config, store["hash"])
    manifest = {
        "format": ENSEMBLE_FORMAT,
        "format_version": ENSEMBLE_VERSION,
        "model_name": config.get("model"),
        "n_members": len(members),
        "members": members,
        "plan": {
            "n_splits": plan.n_splits,
            "n_folds": plan.n_folds,
            "seed": plan.seed,
            "n_rows": plan.n_rows,
        },
        "config": config,
        "store": dict(store),
        "pretrain": dict(pretrain) if pretrain else None,
        "calibration": dict(calibration) if calibration else None,
        "package_version": __version__,
        "created_utc": utc_now(),
        "content_hash": digest,
    }
    write_json(root / MANIFEST, manifest)
    return digest


def load_ensemble(
    path: str | os.PathLike, device: torch.device | str = "cpu", verify: bool = True
) -> Ensemble:
    """Read an ensemble directory, or a single model bundle directory as an ensemble of one.

    Parameters
    ----------
    path
        Directory with ``ensemble.json`` (an ensemble) or ``bundle.json`` (one bundle).
    device
        Where the members' weights go.
    verify
        Check every member's and the ensemble's content hash (:class:`BundleError` if one differs).
    """
    root = local_directory(path)
    if _manifest_of(root).name == BUNDLE_MANIFEST:
        bundle = load_bundle(root, device=device, verify=verify)
        return Ensemble(root, {SINGLE_MEMBER_ID: bundle}, None, {}, None, bundle.content_hash)
    manifest = _read_json(root / MANIFEST)
    if manifest.get("format") != ENSEMBLE_FORMAT or manifest.get("format_version") != ENSEMBLE_VERSION:
        raise BundleError(
            f"ensemble {str(root)!r}: format {manifest.get('format')!r} v{manifest.get('format_version')}, "
            f"expected {ENSEMBLE_FORMAT!r} v{ENSEMBLE_VERSION}"
        )
    members = {}
    for entry in manifest["members"]:
        bundle = load_bundle(root / entry["path"], device=device, verify=verify)
        if bundle.content_hash != entry["content_hash"]:
            raise BundleError(f"ensemble {str(root)!r}: member {entry['member_id']} is not the one recorded")
        members[entry["member_id"]] = bundle
    plan = load_plan(root)
    if verify:
        hashes = {k: b.content_hash for k, b in members.items()}
        digest = ensemble_hash(hashes, plan, manifest["config"], manifest["store"]["hash"])
        if digest != manifest["content_hash"]:
            raise BundleError(f"ensemble {str(root)!r}: content hash does not match the manifest (edited?)")
    return Ensemble(
        root, members, plan, manifest["config"], manifest["store"]["hash"], manifest["content_hash"]
    )


def local_directory(path: str | os.PathLike) -> Path:
    """The directory itself, or a remote one's local copy (downloaded once into the cache)."""
    try:
        return local_copy(path)
    except FileNotFoundError as exc:
        raise BundleError(str(exc)) from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{str(path)!r} is missing") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{str(path)!r} is not JSON ({exc})") from None


def _manifest_of(root: Path) -> Path:
    """``ensemble.json`` of an ensemble directory, else ``bundle.json`` of a bundle directory."""
    for name in (MANIFEST, BUNDLE_MANIFEST):
        if (root / name).is_file():
            return root / name
    raise BundleError(
        f"{str(root)!r} holds neither an ensemble ({MANIFEST}) nor a bundle ({BUNDLE_MANIFEST})"
    )


def read_content_hash(path: str | Path) -> str:
    """Content hash of an ensemble or bundle directory, read from its manifest (no weights loaded)."""
    return _read_json(_manifest_of(local_directory(path)))["content_hash"]
