"""Train several members of one architecture as one batched model: one optimizer step updates all.

:func:`train_stacked` does for ``M`` members what ``M`` calls of
:func:`~distributed_pz.train.member.train_member` do, each member on its own training and
validation rows, with its own seed (initial weights, batch order, augmentation), feature
statistics, best epoch and early stopping, and returns the same :class:`TrainResult` per
member. The members' parameters are stacked along a leading member axis
(``torch.func.stack_module_state``) and every step runs all members' forward and backward passes
at once (``torch.func.vmap`` over ``functional_call``): on a CPU, 50 DEEPZ members at batch 100
are one set of 50-deep batched products instead of 50 small ones; on a GPU one launch instead
of fifty. Adam runs on the stacked tensors with a step count per member (a member without a
batch in a step, or one that has stopped, is left unchanged), and gradient clipping is per
member.

What differs from the member-by-member loop: the dropout masks (drawn by ``vmap`` from the
global generator, seeded from the members' seeds, rather than from each member's own stream,
with the same distribution), so the results are equal up to float rounding when dropout is off
(``tests/train/test_stacked.py``) and statistically equivalent when it is on; a rerun of the
same members repeats them, a member retrained alone (the Ray worker's retry of a lost member)
gets other masks. On a CPU the member loop measured faster (10 DEEPZ members at batch 100: 650 vs 1 400
samples/s, ``benchmarks/results/survey_scale.md``), so the Ray workers stack their members on
GPUs only. The per-epoch callback gets an ordinary
:class:`EpochReport`, whose ``state()`` is a ``train_member`` resume state: a restarted member
continues with :func:`train_member`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from distributed_pz.models.bundle import Bundle
from distributed_pz.models.inputs import batch_tensors, fit_feature_stats, model_inputs, raw_features
from distributed_pz.models.registry import ModelConfig, build_model
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.loss import member_loss
from distributed_pz.train.member import (
    EpochReport,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    _Loop,
    _split,
    evaluate_loss,
)
from distributed_pz.train.schedule import learning_rate

BETAS = (0.9, 0.999)
EPS = 1e-8
"""Adam's constants (torch's defaults, as :func:`train_member` uses them)."""


@dataclass(frozen=True)
class MemberJob:
    """One member to train: its rows, validation rows (``None``: split from ``data``), seed, callback."""

    data: TileArrays
    seed: int
    val_data: TileArrays | None = None
    callback: Callable[[EpochReport], bool | None] | None = None


def stackable(config: ModelConfig) -> bool:
    """Whether members of ``config`` train stacked: models without convolutions (a ``vmap`` over
    convolutions ran slower than the member loop on the CPU, ``benchmarks/results/survey_scale.md``)."""
    with torch.device("meta"):
        model = build_model(config)
    return not any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def train_stacked(
    config: ModelConfig,
    jobs: Sequence[MemberJob],
    *,
    train_config: TrainConfig | None = None,
    init_bundle: Bundle | None = None,
) -> list[TrainResult]:
    """Train every member of ``jobs`` at once; the results in the order of ``jobs``.

    Parameters
    ----------
    config
        The members' model config (one architecture).
    jobs
        Each member's rows, seed and per-epoch callback (returning True stops that member).
    train_config
        Training settings shared by the members (defaults: :class:`TrainConfig`).
    init_bundle
        Pre-trained bundle every member fine-tunes from.
    """
    tc = train_config or TrainConfig()
    device = torch.device(tc.device)
    loops = [_member_loop(config, job, tc, device, init_bundle) for job in jobs]
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(
            int(np.random.SeedSequence([job.seed for job in jobs]).generate_state(1)[0])
        )  # the dropout masks: a rerun repeats them
        return _Stack(loops, [job.callback for job in jobs], tc, device).run()


def _member_loop(
    config: ModelConfig, job: MemberJob, tc: TrainConfig, device: torch.device, init_bundle: Bundle | None
) -> _Loop:
    """One member's state, set up exactly as :func:`train_member` sets it up."""
    spec = config.input_spec()
    train, val = _split(job.data, job.val_data, job.seed, tc.val_fraction)
    train_t = batch_tensors(train, spec, device=device)
    val_t = batch_tensors(val, spec, device=device)
    stats = init_bundle.feature_stats if init_bundle is not None else fit_feature_stats(spec, train_t)
    recon = tc.reconstruction_weight if tc.reconstruction_weight is not None else float(init_bundle is None)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(job.seed)
        model = build_model(config).to(device)
    if init_bundle is not None:
        model.load_state_dict(init_bundle.model.state_dict())
    return _Loop(model, spec, stats, tc, job.seed, device, recon, train, train_t, val_t)


class _Stack:
    """The members' stacked parameters, Adam moments and per-member bookkeeping."""

    def __init__(
        self,
        loops: list[_Loop],
        callbacks: list[Callable[[EpochReport], bool | None] | None],
        tc: TrainConfig,
        device: torch.device,
    ) -> None:
        self.loops, self.callbacks, self.tc, self.device = loops, callbacks, tc, device
        models = [loop.model for loop in loops]
        self.params, self.buffers = stack_module_state(models)
        self.base = copy.deepcopy(models[0]).to("meta")
        self.exp_avg = {k: torch.zeros_like(p) for k, p in self.params.items()}
        self.exp_avg_sq = {k: torch.zeros_like(p) for k, p in self.params.items()}
        self.steps = torch.zeros(len(loops), dtype=torch.float64, device=device)
        self.active = [True] * len(loops)
        self.reasons = ["completed"] * len(loops)

    def run(self) -> list[TrainResult]:
        for epoch in range(self.tc.epochs):
            if not any(self.active):
                break
            self._epoch(epoch)
        return [
            TrainResult(loop.bundle(stop_reason=reason), tuple(loop.history), loop.best_epoch, reason)
            for loop, reason in zip(self.loops, self.reasons, strict=True)
        ]

    def _epoch(self, epoch: int) -> None:
        started = time.perf_counter()
        tc = self.tc
        lr = learning_rate(self.loops[0].schedule, epoch, tc.epochs, tc.lr)
        live = [i for i, on in enumerate(self.active) if on]
        orders = {
            i: torch.randperm(self.loops[i].n_train, generator=self.loops[i].generator, device=self.device)
            for i in live
        }
        sums = {i: {} for i in live}
        steps = dict.fromkeys(live, 0)
        longest = max(self.loops[i].n_train for i in live)
        self.base.train()
        for start in range(0, longest, tc.batch_size):
            batches = {i: orders[i][start : start + tc.batch_size] for i in live}
            stepping = [
                i for i in live if self.active[i] and len(batches[i]) >= 2
            ]  # batch norm needs two rows
            if stepping:
                self._step(stepping, batches, lr, sums, steps)
        for i in live:
            if self.active[i]:
                self._finish_epoch(i, epoch, lr, sums[i], steps[i], started)

    def _step(
        self,
        members: list[int],
        batches: dict[int, torch.Tensor],
        lr: float,
        sums: dict[int, dict[str, float]],
        steps: dict[int, int],
    ) -> None:
        groups: dict[int, list[int]] = {}
        for i in members:
            groups.setdefault(len(batches[i]), []).append(i)
        total = torch.zeros((), device=self.device)
        losses: dict[int, tuple[torch.Tensor, dict[str, torch.Tensor]]] = {}
        for group in groups.values():
            losses.update(self._group_losses(group, batches))
        for i, (loss, _) in losses.items():
            if not torch.isfinite(loss):
                self._diverged(
                    i, f"training loss is {loss.item()} at epoch {self.loops[i].epoch}, step {steps[i]}"
                )
        stepping = [i for i in members if self.active[i]]
        if not stepping:
            return
        for i in stepping:
            total = total + losses[i][0]
        for p in self.params.values():
            p.grad = None
        total.backward()
        self._adam(stepping, lr)
        for i in stepping:
            loss, parts = losses[i]
            steps[i] += 1
            sums[i]["loss"] = sums[i].get("loss", 0.0) + loss.item()
            for name, value in parts.items():
                sums[i][name] = sums[i].get(name, 0.0) + value.item()

    def _group_losses(
        self, group: list[int], batches: dict[int, torch.Tensor]
    ) -> dict[int, tuple[torch.Tensor, dict[str, torch.Tensor]]]:
        """Every member's loss in ``group`` (members with equal batch sizes), forward passes stacked."""
        tc = self.tc
        every = group == list(range(len(self.loops)))
        index = torch.tensor(group, device=self.device)
        params = self.params if every else {k: p.index_select(0, index) for k, p in self.params.items()}
        buffers = self.buffers if every else {k: b.index_select(0, index) for k, b in self.buffers.items()}
        batch, raw, inputs = {}, {}, {}
        for i in group:
            loop = self.loops[i]
            batch[i] = {k: v[batches[i]] for k, v in loop.train_t.items()}
            raw[i] = raw_features(
                loop.spec,
                batch[i],
                coadd_alpha=tc.coadd_alpha if tc.random_coadds else None,
                max_shift=tc.max_shift if tc.augment_cutouts else None,
                generator=loop.generator,
            )
            inputs[i] = model_inputs(loop.spec, raw[i], loop.stats)
        stacked = {k: torch.stack([inputs[i][k] for i in group]) for k in inputs[group[0]]}

        def forward(p: dict, b: dict, x: dict) -> dict[str, torch.Tensor]:
            return functional_call(self.base, (p, b), (x,))

        outputs = vmap(forward, randomness="different")(params, buffers, stacked)
        if not every:
            for k, b in buffers.items():
                self.buffers[k][index] = b
        model = self.loops[group[0]].model
        out = {}
        for j, i in enumerate(group):
            member_out = {k: v[j] for k, v in outputs.items()}
            usable = raw[i]["flags"] == 0
            out[i] = member_loss(
                model, inputs[i], member_out, batch[i], usable, self.loops[i].recon_weight, tc.class_weight
            )
        return out

    def _adam(self, members: list[int], lr: float) -> None:
        """One Adam step (with weight decay and per-member gradient clipping) of ``members``."""
        tc = self.tc
        mask = torch.zeros(len(self.loops), dtype=torch.bool, device=self.device)
        mask[members] = True
        self.steps += mask
        grads = {k: p.grad if p.grad is not None else torch.zeros_like(p) for k, p in self.params.items()}
        if tc.grad_clip is not None:
            norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(dim=1) for g in grads.values()))
            coef = torch.clamp(tc.grad_clip / (norms + 1e-6), max=1.0)
            grads = {k: g * coef.view(-1, *[1] * (g.dim() - 1)) for k, g in grads.items()}
        t = self.steps.clamp_min(1.0)
        bias1 = (1 - BETAS[0] ** t).float()
        bias2_sqrt = (1 - BETAS[1] ** t).sqrt().float()
        with torch.no_grad():
            for k, p in self.params.items():
                shape = (-1, *[1] * (p.dim() - 1))
                keep = mask.view(shape)
                g = grads[k] + tc.weight_decay * p if tc.weight_decay else grads[k]
                m = torch.where(keep, self.exp_avg[k] * BETAS[0] + (1 - BETAS[0]) * g, self.exp_avg[k])
                v = torch.where(
                    keep, self.exp_avg_sq[k] * BETAS[1] + (1 - BETAS[1]) * g * g, self.exp_avg_sq[k]
                )
                self.exp_avg[k], self.exp_avg_sq[k] = m, v
                denom = v.sqrt() / bias2_sqrt.view(shape) + EPS
                update = (lr / bias1).view(shape) * m / denom
                p.sub_(torch.where(keep, update, 0.0))

    def _member_state(self, i: int) -> None:
        """Copy member ``i``'s stacked parameters and buffers into its own module."""
        state = {k: v[i] for k, v in {**self.params, **self.buffers}.items()}
        with torch.no_grad():
            self.loops[i].model.load_state_dict(state)

    def _finish_epoch(
        self, i: int, epoch: int, lr: float, sums: dict[str, float], steps: int, started: float
    ) -> None:
        loop, tc = self.loops[i], self.tc
        if steps == 0:
            raise ValueError(f"no training step: {loop.n_train} training rows, batch size {tc.batch_size}")
        self._member_state(i)
        loop.optimizer.load_state_dict(self._optimizer_state(i, lr))
        val_loss = evaluate_loss(loop.model, loop.spec, loop.stats, loop.val_t, tc.batch_size)
        if not math.isfinite(val_loss):
            self._diverged(i, f"validation loss is {val_loss} at epoch {epoch}")
            return
        record = loop.epoch_record(epoch, lr, sums, steps, val_loss, started)
        loop.history.append(record)
        loop.epoch = epoch + 1
        callback = self.callbacks[i]
        if callback is not None and callback(EpochReport(record, loop.seed, loop.state, loop.bundle)):
            self._stop(i, "callback")
        elif tc.patience is not None and loop.bad_epochs >= tc.patience:
            self._stop(i, "early_stopping")

    def _optimizer_state(self, i: int, lr: float) -> dict[str, Any]:
        """Member ``i``'s Adam state in ``torch.optim.Adam``'s own format (a resume state of :func:`train_member`)."""
        state = self.loops[i].optimizer.state_dict()
        names = [name for name, _ in self.loops[i].model.named_parameters()]
        step = torch.tensor(float(self.steps[i]))
        state["state"] = {
            j: {
                "step": step.clone(),
                "exp_avg": self.exp_avg[k][i].detach().clone(),
                "exp_avg_sq": self.exp_avg_sq[k][i].detach().clone(),
            }
            for j, k in enumerate(names)
        }
        for group in state["param_groups"]:
            group["lr"] = lr
        return state

    def _stop(self, i: int, reason: str) -> None:
        self.active[i] = False
        self.reasons[i] = reason

    def _diverged(self, i: int, message: str) -> None:
        if self.tc.on_nan == "raise":
            raise TrainingDiverged(f"member seed {self.loops[i].seed}: {message}")
        self._stop(i, "nan")
