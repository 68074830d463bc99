"""Train one ensemble member in plain PyTorch (CPU or GPU): the loop Ray Train wraps.

``train_member(config, data, seed)`` fits the feature statistics on the training rows, trains
with Adam (torch's fused kernel: one pass over the weights, a third of the default's time) under
a pure learning-rate schedule, keeps the weights of the best validation epoch, stops early after
``patience`` epochs without improvement and stops on a non-finite loss (raising
:class:`TrainingDiverged`, or returning the best weights so far with ``stop_reason="nan"``). It
returns the best model as an in-memory :class:`~distributed_pz.bundle.Bundle` plus the per-epoch
history.

Hooks for an orchestration layer: ``callback(report)`` runs after every epoch (report metrics,
save ``report.state()`` as a checkpoint; returning True stops training), and ``resume=state``
continues from such a checkpoint exactly (model, optimizer, epoch, best weights, random state).
Transfer learning (DEEPZ §3): pre-train on simulations, then pass ``init_bundle=`` the
pre-trained bundle to fine-tune on the target data (the pre-training feature statistics are kept).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from distributed_pz._files import atomic_path
from distributed_pz.models.base import PhotoZModel
from distributed_pz.models.bundle import Bundle, make_bundle
from distributed_pz.models.features import FeatureStats, InputSpec
from distributed_pz.models.inputs import (
    batch_tensors,
    fit_feature_stats,
    model_inputs,
    raw_features,
    zeropoint_scatter,
)
from distributed_pz.models.registry import ModelConfig, build_model, config_to_dict, model_config
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.loss import member_loss
from distributed_pz.train.schedule import first_drop, learning_rate

STATE_VERSION = 1


class TrainingDiverged(RuntimeError):
    """The training loss or the validation loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train one member.

    Parameters
    ----------
    epochs
        Epochs to run at most (paper values: GaZNet 60, DEEPZ 300).
    batch_size
        Rows per optimisation step (DEEPZ: 100).
    lr, schedule
        Peak learning rate and schedule name (:mod:`distributed_pz.train.schedule`);
        ``"auto"`` picks the model family's (``"gaznet"`` or ``"deepz"``).
    weight_decay
        Adam weight decay.
    patience, min_delta
        Stop after ``patience`` epochs whose validation loss did not beat the best by
        ``min_delta`` (``None`` = never stop early). Only epochs from the schedule's first
        learning-rate drop on count (:func:`~distributed_pz.train.schedule.first_drop`): a
        member never stops before its rate has dropped once.
    val_fraction
        Share of ``data`` held out for validation when no ``val_data`` is given.
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    augment_cutouts, max_shift
        Random quarter turns, flips and whole-pixel circular shifts up to ``max_shift`` pixels.
    random_coadds, coadd_alpha
        DEEPZ randomized coadds, keeping each exposure with probability ``coadd_alpha``.
    zeropoint_jitter
        Random zero-point offsets per source and band (and exposure) at this many times the
        training tiles' calibration scatter (their band set's ``zeropoint_scatter_mag``), so
        the model does not learn its training tiles' zero points; 0 = off.
    reconstruction_weight
        Weight of the autoencoder loss; ``None`` = 1 when training from scratch (pre-training)
        and 0 when fine-tuning from ``init_bundle`` / ``init_weights`` (DEEPZ §4.2).
    class_weight
        Weight of the class cross-entropy (models with a class head).
    grad_clip
        Clip the gradient norm to this value (``None`` = no clipping).
    on_nan
        ``"raise"`` :class:`TrainingDiverged`, or ``"stop"`` and return the best weights so far.
    """

    epochs: int = 60
    batch_size: int = 128
    lr: float = 1e-3
    schedule: str = "auto"
    weight_decay: float = 0.0
    patience: int | None = 10
    min_delta: float = 0.0
    val_fraction: float = 0.2
    device: str = "cpu"
    augment_cutouts: bool = True
    max_shift: int = 2
    random_coadds: bool = True
    coadd_alpha: float = 0.8
    zeropoint_jitter: float = 1.0
    reconstruction_weight: float | None = None
    class_weight: float = 1.0
    grad_clip: float | None = None
    on_nan: Literal["raise", "stop"] = "raise"

    def schedule_for(self, config: ModelConfig) -> str:
        return config.family if self.schedule == "auto" else self.schedule


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch did: learning rate, mean losses, whether it is the best so far, seconds."""

    epoch: int
    lr: float
    train_loss: float
    val_loss: float
    best_val_loss: float
    is_best: bool
    seconds: float
    parts: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class EpochReport:
    """Passed to the per-epoch callback.

    ``state()`` gives the resume state (save it with :func:`save_train_state`); ``best_bundle()``
    gives the best model so far as a bundle.
    """

    record: EpochRecord
    seed: int
    state: Callable[[], dict[str, Any]]
    best_bundle: Callable[[], Bundle]


@dataclass(frozen=True, eq=False)
class TrainResult:
    """The trained member: best model as a bundle, history, best epoch and why it stopped.

    ``stop_reason`` is ``"completed"``, ``"early_stopping"``, ``"callback"`` or ``"nan"``.
    """

    bundle: Bundle
    history: tuple[EpochRecord, ...]
    best_epoch: int
    stop_reason: str


def train_member(
    config: ModelConfig | str | None,
    data: TileArrays,
    seed: int,
    *,
    train_config: TrainConfig | None = None,
    val_data: TileArrays | None = None,
    init_bundle: Bundle | None = None,
    init_weights: Mapping[str, torch.Tensor] | None = None,
    resume: Mapping[str, Any] | None = None,
    callback: Callable[[EpochReport], bool | None] | None = None,
) -> TrainResult:
    """Train one member and return its best weights as a bundle.

    Parameters
    ----------
    config
        Model config, registered model name, or ``None`` to take ``init_bundle``'s config.
    data
        Training rows (rows without a finite ``z_spec`` are dropped).
    seed
        Seeds the initial weights, the validation split, batch order, augmentation and dropout.
    train_config
        Training settings (defaults: :class:`TrainConfig`).
    val_data
        Validation rows; default: ``val_fraction`` of ``data`` chosen with ``seed``.
    init_bundle
        Pre-trained bundle to fine-tune (its weights and feature statistics are used).
    init_weights
        Pre-trained state dict to start from (feature statistics fitted on ``data``).
    resume
        A state from :meth:`EpochReport.state` to continue from.
    callback
        Called after every epoch with an :class:`EpochReport`; returning True stops training.
    """
    tc = train_config or TrainConfig()
    config = _resolve_config(config, init_bundle)
    device = torch.device(tc.device)
    stats = FeatureStats.from_dict(resume["feature_stats"]) if resume is not None else None
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        loop = MemberLoop.setup(
            config,
            data,
            seed,
            tc,
            val_data=val_data,
            init_bundle=init_bundle,
            init_weights=init_weights,
            stats=stats,
        )
        if resume is not None:
            loop.load_state(resume)
        return loop.run(callback)


def save_train_state(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Write a resume state (tensors, numbers, strings, lists, dicts) atomically with ``torch.save``."""
    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def load_train_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a resume state with ``torch.load(weights_only=True)`` (no arbitrary unpickling)."""
    return torch.load(path, map_location="cpu", weights_only=True)


class MemberLoop:
    """One member's training state (model, Adam, random stream, best weights, history) and its epoch loop.

    :meth:`run` trains the member on its own. An epoch has parts that every way of stepping shares:
    :meth:`start_epoch` (the schedule's learning rate, the batch order), then per step
    :meth:`augment` (the batch, augmented with the member's generator), :meth:`loss`, a backward
    pass, :meth:`optimizer_step` (gradient clipping, the member's ``torch.optim.Adam``) and
    :meth:`note_step`, and last :meth:`finish_epoch` (validation, best weights, early stopping,
    callback). :func:`~distributed_pz.train.vmapped.train_stacked` drives several loops through the
    same parts with their forward and backward passes batched: stacked training is this loop with
    another way of computing the gradients.
    """

    def __init__(
        self,
        model: PhotoZModel,
        spec: InputSpec,
        stats: FeatureStats,
        tc: TrainConfig,
        seed: int,
        device: torch.device,
        recon_weight: float,
        train: TileArrays,
        train_t: dict[str, torch.Tensor],
        val_t: dict[str, torch.Tensor],
    ) -> None:
        self.model, self.spec, self.stats, self.tc, self.seed = model, spec, stats, tc, seed
        self.device, self.recon_weight = device, recon_weight
        self.train, self.train_t, self.val_t = train, train_t, val_t
        self.zeropoint_jitter = zeropoint_scatter(spec.bands, train.band_set, tc.zeropoint_jitter)
        self.n_train = len(train_t["z"])
        self.optimizer = torch.optim.Adam(
            model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, fused=True
        )
        self.generator = torch.Generator(device=device).manual_seed(seed)
        # stacked training's own dropout stream (None: torch's global one)
        self.dropout: torch.Generator | None = None
        self.schedule = tc.schedule_for(model.config)
        self.patience_from = first_drop(self.schedule, tc.epochs, tc.lr)
        self.epoch = 0
        self.best_val = math.inf
        self.best_epoch = -1
        self.best_state = _copy_state(model)
        self.bad_epochs = 0
        self.history: list[EpochRecord] = []
        # the epoch in progress (start_epoch resets them)
        self.lr = tc.lr
        self.steps = 0
        self.sums: dict[str, float] = {}
        self.started = 0.0

    @classmethod
    def setup(
        cls,
        config: ModelConfig,
        data: TileArrays,
        seed: int,
        tc: TrainConfig,
        *,
        val_data: TileArrays | None = None,
        init_bundle: Bundle | None = None,
        init_weights: Mapping[str, torch.Tensor] | None = None,
        stats: FeatureStats | None = None,
    ) -> MemberLoop:
        """A fresh member: validation split, tensors on ``tc.device``, feature statistics (``stats``,
        else ``init_bundle``'s, else fitted on the training rows), initial weights (``init_bundle``'s
        or ``init_weights`` when given).

        The model is built with torch's global generator: seed it with ``seed`` first (in a
        ``torch.random.fork_rng``), as :func:`train_member` does.
        """
        spec = config.input_spec()
        device = torch.device(tc.device)
        train, val = split_rows(data, val_data, seed, tc.val_fraction)
        train_t = batch_tensors(train, spec, device=device)
        val_t = batch_tensors(val, spec, device=device)
        if stats is None:
            stats = init_bundle.feature_stats if init_bundle is not None else fit_feature_stats(spec, train_t)
        fine_tuning = init_bundle is not None or init_weights is not None
        recon = tc.reconstruction_weight if tc.reconstruction_weight is not None else float(not fine_tuning)
        model = build_model(config).to(device)
        if init_bundle is not None:
            model.load_state_dict(init_bundle.model.state_dict())
        elif init_weights is not None:
            model.load_state_dict(dict(init_weights))
        return cls(model, spec, stats, tc, seed, device, recon, train, train_t, val_t)

    def run(self, callback: Callable[[EpochReport], bool | None] | None) -> TrainResult:
        """Train epoch after epoch until done, stopped early, stopped by ``callback`` or diverged."""
        while self.epoch < self.tc.epochs:
            order = self.start_epoch()
            reason = self._steps(order) or self.finish_epoch(callback)
            if reason is not None:
                return self.result(reason)
        return self.result("completed")

    def _steps(self, order: torch.Tensor) -> str | None:
        """This epoch's optimisation steps, one batch after another; ``"nan"`` if the loss diverged."""
        for rows in self.batches(order):
            batch, raw, inputs = self.augment(rows)
            loss, parts = self.loss(batch, raw, inputs, self.model(inputs))
            if not torch.isfinite(loss):
                return self.diverged(
                    f"training loss is {loss.item()} at epoch {self.epoch}, step {self.steps}"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer_step()
            self.note_step(loss, parts)
        return None

    def start_epoch(self) -> torch.Tensor:
        """Set the schedule's learning rate for this epoch and return the epoch's row order."""
        self.started = time.perf_counter()
        self.lr = learning_rate(self.schedule, self.epoch, self.tc.epochs, self.tc.lr)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        self.sums, self.steps = {}, 0
        self.model.train()
        return torch.randperm(self.n_train, generator=self.generator, device=self.device)

    def batches(self, order: torch.Tensor) -> list[torch.Tensor]:
        """The epoch's batches of rows, in step order (a last batch of one row is skipped: batch norm
        needs two)."""
        size = self.tc.batch_size
        return [order[s : s + size] for s in range(0, self.n_train, size) if len(order[s : s + size]) >= 2]

    def augment(
        self, rows: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The batch of ``rows``, its raw features (randomized coadds and cutout shifts drawn from the
        member's generator) and the model inputs."""
        tc = self.tc
        batch = {k: v[rows] for k, v in self.train_t.items()}
        raw = raw_features(
            self.spec,
            batch,
            coadd_alpha=tc.coadd_alpha if tc.random_coadds else None,
            max_shift=tc.max_shift if tc.augment_cutouts else None,
            zeropoint_jitter=self.zeropoint_jitter,
            generator=self.generator,
        )
        return batch, raw, model_inputs(self.spec, raw, self.stats)

    def loss(
        self,
        batch: dict[str, torch.Tensor],
        raw: dict[str, torch.Tensor],
        inputs: dict[str, torch.Tensor],
        outputs: dict[str, torch.Tensor],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training loss of ``outputs`` and its parts (:func:`~distributed_pz.train.loss.member_loss`)."""
        usable = raw["flags"] == 0
        return member_loss(
            self.model, inputs, outputs, batch, usable, self.recon_weight, self.tc.class_weight
        )

    def optimizer_step(self) -> None:
        """Clip the member's gradient norm (when asked) and take one Adam step."""
        if self.tc.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
        self.optimizer.step()

    def note_step(self, loss: torch.Tensor, parts: Mapping[str, torch.Tensor]) -> None:
        """Add one step's losses to the epoch's sums."""
        self.steps += 1
        self.sums["loss"] = self.sums.get("loss", 0.0) + loss.item()
        for name, value in parts.items():
            self.sums[name] = self.sums.get(name, 0.0) + value.item()

    def finish_epoch(self, callback: Callable[[EpochReport], bool | None] | None) -> str | None:
        """Validate, record the epoch and decide whether to stop: the stop reason (``"nan"``,
        ``"callback"``, ``"early_stopping"``) or ``None`` to go on."""
        if self.steps == 0:
            raise ValueError(
                f"no training step: {self.n_train} training rows, batch size {self.tc.batch_size}"
            )
        val_loss = evaluate_loss(self.model, self.spec, self.stats, self.val_t, self.tc.batch_size)
        if not math.isfinite(val_loss):
            return self.diverged(f"validation loss is {val_loss} at epoch {self.epoch}")
        record = self.epoch_record(val_loss)
        self.history.append(record)
        self.epoch += 1
        if callback is not None and callback(EpochReport(record, self.seed, self.state, self.bundle)):
            return "callback"
        if self.tc.patience is not None and self.bad_epochs >= self.tc.patience:
            return "early_stopping"
        return None

    def epoch_record(self, val_loss: float) -> EpochRecord:
        """Keep the best weights, count epochs without improvement (from the first LR drop on), and
        describe the epoch."""
        epoch = self.epoch
        is_best = val_loss < self.best_val - self.tc.min_delta
        if is_best:
            self.best_val, self.best_epoch, self.best_state = val_loss, epoch, _copy_state(self.model)
            self.bad_epochs = 0
        elif epoch >= self.patience_from:
            self.bad_epochs += 1
        return EpochRecord(
            epoch=epoch,
            lr=self.lr,
            train_loss=self.sums["loss"] / self.steps,
            val_loss=val_loss,
            best_val_loss=self.best_val,
            is_best=is_best,
            seconds=time.perf_counter() - self.started,
            parts={k: v / self.steps for k, v in self.sums.items() if k != "loss"},
        )

    def diverged(self, message: str) -> str:
        """Raise :class:`TrainingDiverged`, or (``on_nan="stop"``) return the stop reason ``"nan"``."""
        if self.tc.on_nan == "raise":
            raise TrainingDiverged(f"member seed {self.seed}: {message}")
        return "nan"

    def result(self, stop_reason: str) -> TrainResult:
        """The best weights, the history, the best epoch and why training stopped."""
        return TrainResult(
            self.bundle(stop_reason=stop_reason), tuple(self.history), self.best_epoch, stop_reason
        )

    def bundle(self, stop_reason: str | None = None) -> Bundle:
        """The best weights so far as a bundle (on a copy of the model)."""
        model = build_model(self.model.config).to(self.device)
        model.load_state_dict(self.best_state)
        metadata = {
            "seed": self.seed,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val if math.isfinite(self.best_val) else None,
            "epochs_run": len(self.history),
            "n_train": self.n_train,
            "n_val": len(self.val_t["z"]),
            "train_config": dataclasses.asdict(self.tc),
        }
        if stop_reason is not None:
            metadata["stop_reason"] = stop_reason
        return make_bundle(model, self.stats, self.train.bands, self.train.image_bands, metadata)

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly where this epoch ended."""
        state = {
            "version": STATE_VERSION,
            "config": config_to_dict(self.model.config),
            "feature_stats": self.stats.to_dict(),
            "epoch": self.epoch,
            "model": _copy_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "best_state": {k: v.clone() for k, v in self.best_state.items()},
            "best_val": self.best_val,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": [dataclasses.asdict(r) for r in self.history],
            "generator": self.generator.get_state(),
            "rng_cpu": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        if self.dropout is not None:
            state[self._dropout_key()] = self.dropout.get_state()
        return state

    def load_state(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"resume state version {state.get('version')}, expected {STATE_VERSION}")
        if state["config"] != config_to_dict(self.model.config):
            raise ValueError("resume state was saved for a different model config")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = int(state["epoch"])
        self.best_state = {k: v.to("cpu") for k, v in state["best_state"].items()}
        self.best_val, self.best_epoch = float(state["best_val"]), int(state["best_epoch"])
        self.bad_epochs = int(state["bad_epochs"])
        self.history = [EpochRecord(**r) for r in state["history"]]
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        if self.dropout is not None:
            self.dropout.set_state(state[self._dropout_key()])

    def _dropout_key(self) -> str:
        """The resume state's entry for the random stream dropout draws from."""
        return "rng_cuda" if self.device.type == "cuda" else "rng_cpu"


@torch.no_grad()
def evaluate_loss(
    model: PhotoZModel,
    spec: InputSpec,
    stats: FeatureStats,
    tensors: dict[str, torch.Tensor],
    batch_size: int = 1024,
) -> float:
    """Mean redshift loss (no augmentation, no auxiliary terms) over usable rows, in eval mode."""
    model.eval()
    total, count = 0.0, 0.0
    n = len(tensors["z"])
    for start in range(0, n, batch_size):
        batch = {k: v[start : start + batch_size] for k, v in tensors.items()}
        raw = raw_features(spec, batch)
        usable = raw["flags"] == 0
        inputs = model_inputs(spec, raw, stats)
        loss, _ = member_loss(model, inputs, model(inputs), batch, usable, 0.0, 0.0)
        k = usable.sum().item()
        total += loss.item() * k
        count += k
    return total / count if count else math.nan


def _resolve_config(config: ModelConfig | str | None, init_bundle: Bundle | None) -> ModelConfig:
    if config is None:
        if init_bundle is None:
            raise ValueError("give a model config (or name), or an init_bundle to take it from")
        return init_bundle.config
    return model_config(config) if isinstance(config, str) else config


def split_rows(
    data: TileArrays, val_data: TileArrays | None, seed: int, val_fraction: float
) -> tuple[TileArrays, TileArrays]:
    """The labelled training and validation rows: ``val_data``'s labelled rows when given, else
    ``val_fraction`` of ``data``'s labelled rows drawn with ``seed``."""
    if "z_spec" not in data.arrays:
        raise ValueError("training data has no 'z_spec' array")
    labelled = np.flatnonzero(np.isfinite(data.arrays["z_spec"]))
    if val_data is not None:
        return data.take(labelled), val_data.take(np.flatnonzero(np.isfinite(val_data.arrays["z_spec"])))
    order = np.random.default_rng(seed).permutation(labelled)
    n_val = max(1, int(round(val_fraction * len(order))))
    if len(order) - n_val < 2:
        raise ValueError(f"{len(labelled)} labelled rows are too few to split for training and validation")
    return data.take(np.sort(order[n_val:])), data.take(np.sort(order[:n_val]))


def _copy_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
