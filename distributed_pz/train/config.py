"""Configuration of an ensemble training run: what to train (hashed into the ensemble) and where.

:class:`EnsembleConfig` decides the result — data, model, split plan, member training — and is
written, resolved, as ``config.json`` beside the ensemble; a rerun on the same output must
match it. :class:`ClusterConfig` only decides where and how fast (Ray address, workers,
resources) and may change between reruns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from distributed_pz.models.registry import config_to_dict, model_config
from distributed_pz.train.member import TrainConfig

DEVICE_FIELD = "device"
"""TrainConfig field chosen per Ray worker, so left out of the saved config."""


@dataclass(frozen=True)
class EnsembleConfig:
    """What ``dpz train`` trains.

    Parameters
    ----------
    store, tiles
        Training store URL and its tiles (empty = every tile); rows with a finite ``z_spec`` train.
    out
        Ensemble directory; every Ray node must see it (local disk for a one-node cluster, a
        shared filesystem otherwise).
    model, model_overrides
        Registered model name and config fields to replace (``create_model(model, **overrides)``).
    n_splits, n_folds, val_fraction, seed
        Split plan (:func:`distributed_pz.train.plan.make_plan`); ``seed`` is the master seed.
    train
        How each member trains (epochs, batch size, learning rate, ...).
    pretrain_store, pretrain_tiles, pretrain
        Optional pre-training (DEEPZ §3): one model trained on this (simulated) store with these
        settings, from which every member fine-tunes.
    """

    store: str
    out: str
    tiles: tuple[str, ...] = ()
    model: str = "deepz"
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    n_splits: int = 10
    n_folds: int = 5
    val_fraction: float = 0.1
    seed: int = 0
    train: TrainConfig = field(default_factory=lambda: TrainConfig(on_nan="stop"))
    pretrain_store: str | None = None
    pretrain_tiles: tuple[str, ...] = ()
    pretrain: TrainConfig = field(default_factory=lambda: TrainConfig(on_nan="stop"))

    def __post_init__(self) -> None:
        if not 0 < self.val_fraction < 1:
            raise ValueError(
                f"val_fraction must be in (0, 1): members validate on it, not {self.val_fraction}"
            )
        self.model_config()

    def model_config(self):
        """The members' model config (registry defaults with the overrides)."""
        return model_config(self.model, **dict(self.model_overrides))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, resolved: the model config in full, train settings without the device."""
        d = dataclasses.asdict(self)
        for name in ("train", "pretrain"):
            d[name].pop(DEVICE_FIELD)
        d["tiles"], d["pretrain_tiles"] = list(self.tiles), list(self.pretrain_tiles)
        d["model_overrides"] = dict(self.model_overrides)
        d["model_config"] = config_to_dict(self.model_config())
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EnsembleConfig:
        """Inverse of :meth:`to_dict`."""
        fields = {k: v for k, v in d.items() if k != "model_config"}
        for name in ("train", "pretrain"):
            fields[name] = TrainConfig(**fields[name])
        fields["tiles"], fields["pretrain_tiles"] = tuple(d["tiles"]), tuple(d["pretrain_tiles"])
        return cls(**fields)

    def result_fields(self) -> dict[str, Any]:
        """What must match for a rerun to reuse finished members: the resolved config minus
        ``out``, and minus the pre-training settings when there is no pre-training store."""
        unused = {"out"} if self.pretrain_store else {"out", "pretrain", "pretrain_tiles"}
        return {k: v for k, v in self.to_dict().items() if k not in unused}


@dataclass(frozen=True)
class ClusterConfig:
    """Where the members train.

    Parameters
    ----------
    address
        ``None`` starts a local Ray (quiet settings); ``"auto"`` or ``"ray://host:port"`` joins a cluster.
    num_workers
        Ray Train workers; ``None`` fills the cluster (capped at the members left to train).
    cpus_per_worker
        CPUs per worker (also its torch threads).
    gpus_per_worker
        GPUs per worker, a fraction packs several workers on one GPU; ``None`` = 1 when the
        cluster has GPUs, else 0.
    max_failures
        Worker-group restarts Ray Train allows; members resume from their last epoch checkpoint.
    """

    address: str | None = None
    num_workers: int | None = None
    cpus_per_worker: int = 1
    gpus_per_worker: float | None = None
    max_failures: int = 3
