"""The ensemble directory, the project's central artefact: :class:`EnsembleDir` owns it.

``dpz train`` writes it; ``dpz predict``, ``dpz distill`` and the RAIL estimator read it. Every
name in it lives here, and every read and write goes through :class:`EnsembleDir`, for a local
path and an fsspec URL alike (a remote directory is read from its local copy,
:func:`distributed_pz._files.local_copy`; training writes a local mirror,
:func:`distributed_pz._files.mirrored`). Layout::

    ensemble.json        manifest, written last: members and their content hashes, plan,
                         resolved training config, training store, calibration, ensemble hash
    config.json          the resolved training config (written when training starts)
    dpz-train.toml       the options of the ``dpz train`` run as given, by option name (pass
                         back with ``--config``; the same fields as config.json declare them,
                         :mod:`distributed_pz.options`)
    plan.json, plan.npz  the split plan (:class:`SplitPlan`, drawn by :mod:`distributed_pz.train.plan`)
    sample.json, .npz    the training sample: store, tiles, hash; tile index, row, object_id, z_spec
    members/<member_id>/ one model bundle per member (:func:`distributed_pz.models.bundle.save_bundle`)
    pretrain/            the pre-trained bundle members fine-tuned from (when there was one)
    oof/<member_id>.npz  each member's out-of-fold part (:mod:`distributed_pz.train.oof`)
    calibration_share/<member_id>.npz
                         each member's prediction of the calibration share (when the plan has one)
    oof.parquet          the pooled out-of-fold predictions, calibrated cross-fitted
    calibration.json     the p(z) recalibration fitted on the calibration share, else on the
                         out-of-fold rows (:mod:`distributed_pz.models.calibration`)
    stellar_locus.json   the training tiles' stellar locus, to homogenise other tiles' photometry
                         (:mod:`distributed_pz.models.locus`)
    status.json          training progress (:mod:`distributed_pz.train.progress`)
    ray_train/           Ray Train's checkpoints, until the ensemble is complete

Each member bundle appears atomically (temporary directory, then rename), and the manifest is
renamed into place only after every member, so a directory with ``ensemble.json`` is complete.
The ensemble content hash covers the members' content hashes, the plan arrays, the config, the
store hash, the calibration's and the stellar locus's content hashes: a catalogue's ``bundle_hash``
names the p(z) it holds, calibration included. :meth:`EnsembleDir.read` parses ``ensemble.json`` once into an
:class:`Ensemble`. A single model bundle directory reads as an ensemble of one.

The plan's format lives here (:class:`SplitPlan`, :class:`MemberSpec`, :func:`load_plan`: plain
arrays, read without pickle), so reading an ensemble needs nothing from training;
:mod:`distributed_pz.train.plan` draws plans.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distributed_pz import __version__
from distributed_pz._files import local_copy, read_json, utc_now, write_json, write_text
from distributed_pz.models.bundle import BUNDLE_FILE, Bundle, BundleError, load_bundle
from distributed_pz.models.calibration import RecordedCalibration
from distributed_pz.models.locus import StellarLocus
from distributed_pz.models.registry import ModelConfig, config_from_dict

ENSEMBLE_FORMAT = "distributed_pz.ensemble"
ENSEMBLE_VERSION = 2
"""v2: the ensemble hash covers the calibration (v1 ensembles are refused: retrain them)."""
ENSEMBLE_FILE = "ensemble.json"
SINGLE_MEMBER_ID = "member"
"""Member id of a plain model bundle read as an ensemble."""
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
    groups
        ``[N]`` group (training tile) of every row, when the plan was drawn with them.
    calibration
        ``[N]`` True where a row is in the calibration share: held out of every member's training
        and validation, predicted by every member as a catalogue row is, and fitted on by the
        calibration (``None``: no share, the calibration fits on the out-of-fold rows). Its rows
        keep their test folds, so ``oof.parquet`` still covers every row.
    """

    test_fold: np.ndarray
    validation: np.ndarray
    n_folds: int
    val_fraction: float
    seed: int
    member_seeds: np.ndarray
    object_id: np.ndarray
    groups: np.ndarray | None = None
    calibration: np.ndarray | None = None

    @property
    def leaves_groups_out(self) -> bool:
        """Whether every test fold holds whole groups (tiles), of two groups or more."""
        if self.groups is None or self.n_folds < 2 or len(np.unique(self.groups)) < 2:
            return False
        return all(
            len(np.unique(self.test_fold[r, self.groups == g])) == 1
            for r in range(self.n_splits)
            for g in np.unique(self.groups)
        )

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
        if self.calibration is not None:
            seen &= ~self.calibration
        return np.flatnonzero(seen)

    def calibration_rows(self) -> np.ndarray:
        """Rows of the calibration share, which every member predicts (sorted; empty without one)."""
        return np.flatnonzero(self.calibration) if self.calibration is not None else np.empty(0, np.int64)

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
            **({"groups": self.groups} if self.groups is not None else {}),
            **({"calibration": self.calibration} if self.calibration is not None else {}),
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
            groups=arrays["groups"] if "groups" in arrays.files else None,
            calibration=arrays["calibration"] if "calibration" in arrays.files else None,
        )
    if plan.n_splits != meta["n_splits"] or plan.n_rows != meta["n_rows"]:
        raise ValueError(f"{directory}: plan.json and plan.npz disagree on the plan's shape")
    return plan


@dataclass(frozen=True, eq=False)
class Ensemble:
    """A trained ensemble, as :meth:`EnsembleDir.read` parsed it (``ensemble.json`` once).

    Parameters
    ----------
    location
        Its directory as given (a local path or a URL: what Dask workers read again).
    content_hash
        The ensemble's hash (a single bundle's content hash for an ensemble of one); it covers
        the calibration.
    configs
        Member id -> model config, in plan order.
    members
        Member id -> bundle, in plan order; empty when read with ``weights=False``.
    calibration
        The p(z) recalibration fitted out of fold (``None``: none was fitted).
    band_set
        Band set of the training tiles (a single bundle's: its metadata's, e.g. a distilled
        student's; ``None`` where unrecorded).
    locus
        The training tiles' stellar locus (``None``: too few stars, or a single bundle).
    plan
        The split plan (``None`` for a single bundle).
    config
        The resolved training config (empty for a single bundle).
    store_hash
        Content hash of the training store's tiles (``None`` if unknown).
    """

    location: str
    content_hash: str
    configs: Mapping[str, ModelConfig]
    members: Mapping[str, Bundle] = field(default_factory=dict)
    calibration: RecordedCalibration | None = None
    band_set: str | None = None
    locus: StellarLocus | None = None
    plan: SplitPlan | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    store_hash: str | None = None

    def __len__(self) -> int:
        return len(self.configs)

    @property
    def bundles(self) -> list[Bundle]:
        """Member bundles in plan order (what :class:`~distributed_pz.models.predictor.EnsemblePredictor` takes)."""
        if not self.members:
            raise ValueError(f"ensemble {self.location!r} was read without its weights")
        return list(self.members.values())

    @property
    def model_name(self) -> str:
        return next(iter(self.configs.values())).name

    @property
    def bands(self) -> list[str]:
        """Catalogue bands any member reads."""
        specs = [c.input_spec() for c in self.configs.values()]
        return list(dict.fromkeys(b for s in specs if s.catalog != "none" for b in s.bands))

    @property
    def image_bands(self) -> list[str]:
        """Cutout bands any member reads."""
        return list(dict.fromkeys(b for c in self.configs.values() for b in c.input_spec().image_bands))


def ensemble_hash(
    member_hashes: Mapping[str, str],
    plan: SplitPlan,
    config: Mapping[str, Any],
    store_hash: str,
    calibration_hash: str | None,
    locus_hash: str | None = None,
) -> str:
    """SHA-256 over the members' content hashes, the plan arrays, the config, the store hash and
    the calibration's and stellar locus's content hashes (``None`` without one)."""
    h = hashlib.sha256()
    description = {
        "members": dict(member_hashes),
        "config": config,
        "store_hash": store_hash,
        "calibration": calibration_hash,
        "stellar_locus": locus_hash,
    }
    h.update(json.dumps(description, sort_keys=True).encode())
    for array in (plan.test_fold, plan.validation, plan.member_seeds, plan.object_id):
        h.update(f"{array.dtype}|{array.shape}|".encode())
        h.update(array.tobytes())
    return h.hexdigest()


class _Entry:
    """A file or folder of the ensemble directory: its name on the class, its path on an instance."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, ensemble: EnsembleDir | None, owner: type | None = None) -> Any:
        return self.name if ensemble is None else ensemble.root / self.name


class EnsembleDir:
    """One ensemble directory: every name in it, and all its reads and writes.

    Parameters
    ----------
    location
        A local path or an fsspec URL. A remote directory is read from its local copy
        (downloaded once, reused while unchanged); writers work in a local directory (training
        writes a local mirror of a remote ``--out`` and uploads it).

    Each entry is a name on the class (``EnsembleDir.oof_catalog == "oof.parquet"``) and a path
    on an instance (``EnsembleDir(out).oof_catalog``).
    """

    manifest_file = _Entry(ENSEMBLE_FILE)
    config_file = _Entry("config.json")
    options_file = _Entry("dpz-train.toml")
    """The ``dpz train`` options as given, to pass back with ``--config``."""
    sample_file = _Entry("sample.json")
    sample_arrays = _Entry("sample.npz")
    pretrain = _Entry("pretrain")
    """The pre-trained bundle members fine-tune from."""
    oof_catalog = _Entry("oof.parquet")
    calibration_file = _Entry("calibration.json")
    locus_file = _Entry("stellar_locus.json")
    status_file = _Entry("status.json")
    ray_run = _Entry("ray_train")
    """Ray Train's run: its checkpoints live here until the ensemble is complete."""
    MEMBERS = "members"
    OOF_PARTS = "oof"
    CALIBRATION_PARTS = "calibration_share"

    def __init__(self, location: str | os.PathLike) -> None:
        self.location = str(location)

    def __repr__(self) -> str:
        return f"EnsembleDir({self.location!r})"

    @cached_property
    def root(self) -> Path:
        """The local directory: the directory itself, or a remote one's local copy."""
        try:
            return local_copy(self.location)
        except FileNotFoundError as exc:
            raise BundleError(str(exc)) from None

    # -- per-member names ----------------------------------------------------------------------
    def member(self, member_id: str) -> Path:
        """Where member ``member_id``'s bundle lives."""
        return self.root / self.MEMBERS / member_id

    def oof_part(self, member_id: str) -> Path:
        """Where member ``member_id``'s out-of-fold part lives."""
        return self.root / self.OOF_PARTS / f"{member_id}.npz"

    def calibration_part(self, member_id: str) -> Path:
        """Where member ``member_id``'s prediction of the calibration share lives."""
        return self.root / self.CALIBRATION_PARTS / f"{member_id}.npz"

    # -- state ---------------------------------------------------------------------------------
    @property
    def is_complete(self) -> bool:
        """Whether the manifest is written (it is written last)."""
        return self.manifest_file.is_file()

    @property
    def has_pretrain(self) -> bool:
        return (self.pretrain / BUNDLE_FILE).is_file()

    def finished_members(self) -> set[str]:
        """Ids of the members whose bundle is complete (not the hidden temporary ones)."""
        members = self.root / self.MEMBERS
        if not members.is_dir():
            return set()
        return {
            p.name for p in members.iterdir() if not p.name.startswith(".") and (p / BUNDLE_FILE).is_file()
        }

    def read_json(self, path: Path) -> dict[str, Any]:
        """A JSON file of the directory (:class:`BundleError` naming it if missing or malformed)."""
        return read_json(path, BundleError)

    def read_plan(self) -> SplitPlan:
        return load_plan(self.root)

    # -- writes --------------------------------------------------------------------------------
    def save_calibration(self, calibration: RecordedCalibration) -> dict[str, str]:
        """Write ``calibration.json``; returns its manifest entry (path, content hash, method)."""
        write_json(self.calibration_file, calibration.to_dict())
        return {
            "path": EnsembleDir.calibration_file,
            "content_hash": calibration.content_hash,
            "method": calibration.method,
        }

    def save_locus(self, locus: StellarLocus) -> dict[str, Any]:
        """Write ``stellar_locus.json``; returns its manifest entry (path, content hash, stars)."""
        write_json(self.locus_file, locus.to_dict())
        return {"path": EnsembleDir.locus_file, "content_hash": locus.content_hash, "n_stars": locus.n_stars}

    def write_manifest(
        self,
        plan: SplitPlan,
        config: Mapping[str, Any],
        store: Mapping[str, Any],
        pretrain: Mapping[str, Any] | None = None,
        calibration: Mapping[str, Any] | None = None,
        locus: Mapping[str, Any] | None = None,
    ) -> str:
        """Write ``ensemble.json`` atomically, after every member of ``plan`` is on disk.

        Parameters
        ----------
        plan
            The split plan.
        config
            The resolved training config.
        store
            ``url``, ``tiles``, ``hash`` (and ``band_set``, ...) of the training store.
        pretrain
            What the members fine-tuned from (bundle hash, store), if anything.
        calibration
            The calibration's entry (:meth:`save_calibration`), if one was fitted.
        locus
            The stellar locus's entry (:meth:`save_locus`), if one was built.

        Returns
        -------
        str
            The ensemble content hash.
        """
        members = []
        for spec in plan.members:
            manifest = self.read_json(self.member(spec.member_id) / BUNDLE_FILE)
            members.append(
                {
                    "member_id": spec.member_id,
                    "split": spec.split,
                    "fold": spec.fold,
                    "seed": spec.seed,
                    "path": f"{self.MEMBERS}/{spec.member_id}",
                    "content_hash": manifest["content_hash"],
                }
            )
        digest = ensemble_hash(
            {m["member_id"]: m["content_hash"] for m in members},
            plan,
            config,
            store["hash"],
            calibration["content_hash"] if calibration else None,
            locus["content_hash"] if locus else None,
        )
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
            "stellar_locus": dict(locus) if locus else None,
            "package_version": __version__,
            "created_utc": utc_now(),
            "content_hash": digest,
        }
        write_json(self.manifest_file, manifest)
        return digest

    # -- the one read --------------------------------------------------------------------------
    def read(
        self, device: torch.device | str | None = None, verify: bool = True, weights: bool = True
    ) -> Ensemble:
        """Parse ``ensemble.json`` once into an :class:`Ensemble` (or read a single bundle as one).

        Parameters
        ----------
        device
            Where the members' weights go (default: the GPU when torch sees one, else the CPU).
        verify
            Check every member's, the calibration's and the ensemble's content hash
            (:class:`BundleError` if one differs).
        weights
            Load the members' weights; without, only their configs are read (bands, hashes,
            calibration: what a client checks before a cluster starts).
        """
        root = self.root
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if not self.is_complete:
            if not (root / BUNDLE_FILE).is_file():
                raise BundleError(
                    f"{self.location!r} holds neither an ensemble ({ENSEMBLE_FILE}) nor a bundle ({BUNDLE_FILE})"
                )
            return self._read_bundle(device, verify, weights)
        manifest = self.read_json(self.manifest_file)
        where = f"ensemble {self.location!r}"
        if manifest.get("format") != ENSEMBLE_FORMAT or manifest.get("format_version") != ENSEMBLE_VERSION:
            raise BundleError(
                f"{where}: format {manifest.get('format')!r} v{manifest.get('format_version')}, expected "
                f"{ENSEMBLE_FORMAT!r} v{ENSEMBLE_VERSION}; retrain it with this version of distributed_pz"
            )
        members: dict[str, Bundle] = {}
        configs: dict[str, ModelConfig] = {}
        for entry in manifest["members"]:
            name, path = entry["member_id"], root / entry["path"]
            if weights:
                members[name] = load_bundle(path, device=device, verify=verify)
                configs[name] = members[name].config
                recorded = members[name].content_hash
            else:
                bundle_json = self.read_json(path / BUNDLE_FILE)
                configs[name] = config_from_dict(bundle_json["config"])
                recorded = bundle_json["content_hash"]
            if recorded != entry["content_hash"]:
                raise BundleError(f"{where}: member {name} is not the one recorded")
        calibration = self._read_recorded(manifest.get("calibration"), RecordedCalibration, "calibration")
        locus = self._read_recorded(manifest.get("stellar_locus"), StellarLocus, "stellar locus")
        plan = self.read_plan()
        if verify:
            digest = ensemble_hash(
                {e["member_id"]: e["content_hash"] for e in manifest["members"]},
                plan,
                manifest["config"],
                manifest["store"]["hash"],
                calibration.content_hash if calibration else None,
                locus.content_hash if locus else None,
            )
            if digest != manifest["content_hash"]:
                raise BundleError(f"{where}: content hash does not match the manifest (edited?)")
        return Ensemble(
            location=self.location,
            content_hash=manifest["content_hash"],
            configs=configs,
            members=members,
            calibration=calibration,
            band_set=manifest["store"].get("band_set"),
            locus=locus,
            plan=plan,
            config=manifest["config"],
            store_hash=manifest["store"]["hash"],
        )

    def _read_bundle(self, device: torch.device | str, verify: bool, weights: bool) -> Ensemble:
        if weights:
            bundle = load_bundle(self.root, device=device, verify=verify)
            config, digest, metadata = bundle.config, bundle.content_hash, bundle.metadata
        else:
            bundle_json = self.read_json(self.root / BUNDLE_FILE)
            config, digest = config_from_dict(bundle_json["config"]), bundle_json["content_hash"]
            metadata, bundle = bundle_json.get("metadata", {}), None
        calibration = self._bundle_calibration(metadata.get("calibration"))
        if calibration is not None:  # the hash a catalogue records names the p(z), calibration included
            digest = hashlib.sha256(f"{digest}:{calibration.content_hash}".encode()).hexdigest()
        return Ensemble(
            location=self.location,
            content_hash=digest,
            configs={SINGLE_MEMBER_ID: config},
            members={} if bundle is None else {SINGLE_MEMBER_ID: bundle},
            calibration=calibration,
            band_set=metadata.get("band_set"),
        )

    def _bundle_calibration(self, recorded: Any) -> RecordedCalibration | None:
        """The calibration a bundle's metadata carries (a distilled student's), ``None`` without one."""
        if not isinstance(recorded, Mapping):
            return None
        try:
            return RecordedCalibration.from_dict(recorded)
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(
                f"bundle {self.location!r}: its metadata's calibration is not one ({exc})"
            ) from None

    def _read_recorded(self, entry: Mapping[str, Any] | None, kind: type, what: str) -> Any:
        """The ``what`` (``kind``: a calibration, a stellar locus) the manifest records, its content
        hash checked; ``None`` if it records none."""
        if not entry:
            return None
        where, path = f"ensemble {self.location!r}", self.root / entry["path"]
        if not path.is_file():
            raise BundleError(f"{where}: the {what} {entry['path']} it records is missing")
        try:
            value = kind.from_dict(self.read_json(path))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{where}: {entry['path']} is not a {what} ({exc})") from None
        if value.content_hash != entry["content_hash"]:
            raise BundleError(f"{where}: {entry['path']} is not the {what} recorded (edited?)")
        return value
