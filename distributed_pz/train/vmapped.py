"""Stacked training: the member loop with the members' forward and backward passes batched.

:func:`train_stacked` does for ``M`` members what ``M`` calls of
:func:`~distributed_pz.train.member.train_member` do, each member on its own training and
validation rows, with its own seed (initial weights, batch order, augmentation), feature
statistics, best epoch and early stopping, and returns the same :class:`TrainResult` per
member. It is a mode of :class:`~distributed_pz.train.member.MemberLoop`: every member keeps its
own loop (model, fused ``torch.optim.Adam``, generator, schedule, best weights, history), and
the loops go through their epochs in lockstep; only the gradients are computed another way, by
one of two techniques:

- DEEPZ without a class head: batched products over stacked ``(M, ...)`` weights, of which the
  members' modules are views (:class:`~distributed_pz.train.batched.BatchedSteps`); on a CPU in
  cache-sized blocks of members.
- Other models: at each step the members' parameters are stacked along a leading member axis
  (``torch.stack``, so each member's gradient lands in its own ``.grad``) and all forward and
  backward passes run at once (``torch.func.vmap`` over ``functional_call``,
  :class:`VmappedSteps`); batch-norm running statistics stay stacked through an epoch and are
  copied into the members' modules before they validate.

Either way each member then takes its own gradient clipping and Adam step
(:meth:`MemberLoop.optimizer_step`); a member without a batch in a step, or one that has
stopped, takes none, so its step count, Adam moments and weights stay as they are. (One
optimizer over stacked ``(M, ...)`` tensors could not say that: torch's Adam keeps one step
count per tensor, and moves the moments of a member whose gradient is zero.)

What differs from the member-by-member loop: the dropout masks (with the same distribution), so
the results are equal up to float rounding when dropout is off (``tests/train/test_stacked.py``)
and statistically equivalent when it is on. DEEPZ members draw theirs from a stream of their own
(seeded from the member's seed, saved in its resume state): a member resumed by
:func:`train_stacked`, in whatever company, ends bit-identical to one never interrupted. Other
models draw from the global generator seeded from all the members' seeds: a rerun of the same
members repeats them, a member resumed in other company gets other masks.

Which members the Ray workers stack, and on which devices, is
:func:`~distributed_pz.models.folded.stackable`'s rule (``training=True``: DEEPZ everywhere,
other models without convolutions on GPUs). The per-epoch callback gets an ordinary
:class:`EpochReport`, whose ``state()`` is a resume state for :func:`train_stacked` (``resume=``)
or :func:`train_member` (equivalent, not bit-identical).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.func import functional_call, stack_module_state, vmap

from distributed_pz.models.bundle import Bundle
from distributed_pz.models.features import FeatureStats
from distributed_pz.models.registry import ModelConfig
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.batched import BatchedSteps, Losses, batchable, dropout_seed
from distributed_pz.train.member import EpochReport, MemberLoop, TrainConfig, TrainResult


@dataclass(frozen=True)
class MemberJob:
    """One member to train: its rows, validation rows (``None``: split from ``data``), seed, callback,
    and the resume state to continue from (:meth:`EpochReport.state`; ``None``: from the start)."""

    data: TileArrays
    seed: int
    val_data: TileArrays | None = None
    callback: Callable[[EpochReport], bool | None] | None = None
    resume: Mapping[str, Any] | None = None


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
        Each member's rows, seed, per-epoch callback (returning True stops that member) and resume
        state (members may be at different epochs; each runs until its own last epoch).
    train_config
        Training settings shared by the members (defaults: :class:`TrainConfig`).
    init_bundle
        Pre-trained bundle every member fine-tunes from.
    """
    tc = train_config or TrainConfig()
    device = torch.device(tc.device)
    devices = [device.index or 0] if device.type == "cuda" else []
    loops = []
    for job in jobs:  # each member set up exactly as train_member sets it up
        stats = FeatureStats.from_dict(job.resume["feature_stats"]) if job.resume is not None else None
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(job.seed)
            loop = MemberLoop.setup(
                config, job.data, job.seed, tc, val_data=job.val_data, init_bundle=init_bundle, stats=stats
            )
            if batchable(config):
                loop.dropout = torch.Generator(device=device).manual_seed(dropout_seed(job.seed))
            if job.resume is not None:
                loop.load_state(job.resume)
        loops.append(loop)
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(
            int(np.random.SeedSequence([job.seed for job in jobs]).generate_state(1)[0])
        )  # the dropout masks: a rerun repeats them
        return _Lockstep(loops, [job.callback for job in jobs]).run()


class _Lockstep:
    """The members' loops in lockstep, each step's gradients computed by ``steps``: batched products
    (:class:`~distributed_pz.train.batched.BatchedSteps`) for DEEPZ, else :class:`VmappedSteps`."""

    def __init__(
        self, loops: list[MemberLoop], callbacks: list[Callable[[EpochReport], bool | None] | None]
    ) -> None:
        self.loops, self.callbacks = loops, callbacks
        batched = batchable(loops[0].model.config)
        self.steps: BatchedSteps | VmappedSteps = BatchedSteps(loops) if batched else VmappedSteps(loops)
        self.reasons: list[str | None] = [None] * len(loops)  # why each member stopped

    def run(self) -> list[TrainResult]:
        while live := [
            i for i, loop in enumerate(self.loops) if self.reasons[i] is None and loop.epoch < loop.tc.epochs
        ]:
            self._epoch(live)
        return [
            loop.result(reason or "completed") for loop, reason in zip(self.loops, self.reasons, strict=True)
        ]

    def _epoch(self, live: list[int]) -> None:
        batches = {i: self.loops[i].batches(self.loops[i].start_epoch()) for i in live}
        for step in range(max(len(b) for b in batches.values())):
            stepping = {i: b[step] for i, b in batches.items() if self.reasons[i] is None and step < len(b)}
            if stepping:
                self._step(stepping)
        for i in live:
            if self.reasons[i] is None:
                self.steps.unstack(i)
                self.reasons[i] = self.loops[i].finish_epoch(self.callbacks[i])

    def _step(self, batches: dict[int, torch.Tensor]) -> None:
        """One optimisation step of the members in ``batches`` (member index -> rows)."""
        groups: dict[int, list[int]] = {}
        for i, rows in sorted(batches.items()):
            groups.setdefault(len(rows), []).append(i)
        for size, group in groups.items():
            for block in self.steps.blocks(group, size):
                losses = self.steps.losses(block, batches)
                stepping = [i for i in block if self._finite(i, losses[i][0])]
                if stepping:
                    self.steps.update(stepping, losses)
                    for i in stepping:
                        self.loops[i].note_step(*losses[i])

    def _finite(self, i: int, loss: torch.Tensor) -> bool:
        """Whether member ``i``'s training loss is finite; if not, the member has diverged."""
        if torch.isfinite(loss):
            return True
        loop = self.loops[i]
        self.reasons[i] = loop.diverged(
            f"training loss is {loss.item()} at epoch {loop.epoch}, step {loop.steps}"
        )
        return False


class VmappedSteps:
    """How :func:`train_stacked` steps other members: ``vmap`` over ``functional_call``, batch-norm
    buffers stacked through an epoch, each member's own optimizer."""

    def __init__(self, loops: list[MemberLoop]) -> None:
        self.loops = loops
        models = [loop.model for loop in loops]
        _, self.buffers = stack_module_state(models)
        self.params = [dict(model.named_parameters()) for model in models]
        self.base = copy.deepcopy(models[0]).to("meta").train()

    def blocks(self, members: list[int], batch_size: int) -> list[list[int]]:
        """All ``members`` at once."""
        return [members]

    def losses(self, group: list[int], batches: dict[int, torch.Tensor]) -> Losses:
        """Every member's loss in ``group`` (members with equal batch sizes), forward passes vmapped."""
        every = group == list(range(len(self.loops)))
        index = torch.tensor(group, device=self.loops[0].device)
        params = {k: torch.stack([self.params[i][k] for i in group]) for k in self.params[0]}
        buffers = self.buffers if every else {k: b.index_select(0, index) for k, b in self.buffers.items()}
        parts = [self.loops[i].augment(batches[i]) for i in group]  # (batch, raw features, inputs)
        stacked = {k: torch.stack([inputs[k] for _, _, inputs in parts]) for k in parts[0][2]}

        def forward(p: dict, b: dict, x: dict) -> dict[str, torch.Tensor]:
            return functional_call(self.base, (p, b), (x,))

        outputs = vmap(forward, randomness="different")(params, buffers, stacked)
        if not every:
            for k, b in buffers.items():
                self.buffers[k][index] = b
        return {
            i: self.loops[i].loss(*parts[j], {k: v[j] for k, v in outputs.items()})
            for j, i in enumerate(group)
        }

    def update(self, stepping: list[int], losses: Losses) -> None:
        """Backward pass of the ``stepping`` members' losses, then each one's own optimizer step."""
        for i in stepping:
            self.loops[i].optimizer.zero_grad(set_to_none=True)
        torch.stack([losses[i][0] for i in stepping]).sum().backward()
        for i in stepping:
            self.loops[i].optimizer_step()

    def unstack(self, i: int) -> None:
        """Copy member ``i``'s batch-norm statistics into its own module."""
        with torch.no_grad():
            for name, buffer in self.loops[i].model.named_buffers():
                buffer.copy_(self.buffers[name][i])
