"""DEEPZ members trained as one batched model: weights stacked ``(M, ...)``, ``torch.bmm`` over the member axis.

The training counterpart of :class:`~distributed_pz.models.folded.StackedDeepZ`. Each parameter
and batch-norm buffer of ``M`` members of one DEEPZ configuration is stacked along a leading
member axis, and the members' own modules are made views of the stacks (``Tensor.set_``): what a
member's module reads (validation, best weights, resume states) and what its ``torch.optim.Adam``
writes are the stacked weights, with nothing copied back and forth. A step of a block of
members runs every linear layer of every member as one batched product (``torch.baddbmm``,
``(m, out, in) x (m, in, B)``: features first, the weights as they lie), batch norm in training
mode per member over its own batch (its running statistics updated per member), dropout per
member from the member's own generator (``MemberLoop.dropout``), then each member's own loss
(:meth:`~distributed_pz.train.member.MemberLoop.loss`: redshift NLL and the autoencoder's
reconstruction error) on its slice of the outputs; one backward pass gives every member's
gradients, which become its parameters' ``.grad``. Each member then clips and steps its own
fused Adam (:meth:`~distributed_pz.train.member.MemberLoop.optimizer_step`), so a member without
a batch in this step, or stopped, does not move: its step count, moments and weights stay.

On a CPU the members run in blocks of at most :data:`CPU_BLOCK_ELEMENTS` activations per layer
(cache-sized); on a GPU all at once. Members never share a first-layer product: each member
draws its own batch order and augmentation, so no two members read the same inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from distributed_pz.models.deepz import DeepZ, DeepZConfig
from distributed_pz.models.registry import ModelConfig
from distributed_pz.train.member import MemberLoop

CPU_BLOCK_ELEMENTS = 1 << 18
"""On a CPU, members step in blocks of at most this many activations per layer (1 MB in float32)."""

Losses = dict[int, tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class _Layer:
    """One linear layer of a stacked sequence, with the batch norm, ReLU and dropout after it."""

    linear: str  # the module's name in the member (its parameters' prefix)
    bias: bool
    batch_norm: str | None = None  # the batch norm's name (parameter and buffer prefix)
    momentum: float = 0.1
    eps: float = 1e-5
    relu: bool = False
    dropout: float = 0.0


def batchable(config: ModelConfig) -> bool:
    """Whether :class:`BatchedSteps` trains members of ``config``: DEEPZ without a class head."""
    return isinstance(config, DeepZConfig) and not config.classify


class BatchedDeepZ:
    """Members of one DEEPZ configuration with their parameters and buffers stacked ``(M, ...)``.

    Parameters
    ----------
    models
        The members (no class head); their parameters and buffers become views of the stacks.
    """

    def __init__(self, models: Sequence[DeepZ]) -> None:
        if any(m.class_head is not None for m in models):
            raise TypeError("BatchedDeepZ does not stack class heads")
        named = [dict([*m.named_parameters(), *m.named_buffers()]) for m in models]
        with torch.no_grad():
            self.stacks = {k: torch.stack([n[k] for n in named]) for k in named[0]}
            for i, n in enumerate(named):
                for k, tensor in n.items():
                    tensor.set_(self.stacks[k][i])
        self.params = [k for k, _ in models[0].named_parameters()]
        base = models[0]
        self.parts = {part: _layers(getattr(base, part), part) for part in ("encoder", "decoder", "photoz")}
        self.head = _layers(base.head.linear, "head.linear")
        self.sigma_min = base.head.sigma_min

    def __call__(
        self, members: slice, x: torch.Tensor, dropout: Sequence[torch.Generator]
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The outputs of DEEPZ's ``forward`` for the ``members`` (a slice of the stack) on their inputs
        ``x`` ``(m, B, 2F)``, each ``(m, B, ...)``, and the parameters they read: ``(m, ...)`` leaves
        whose ``.grad`` a backward pass fills. Batch-norm running statistics are updated; each
        member's dropout is drawn from its own generator in ``dropout``."""
        leaves = {k: self.stacks[k][members].detach().requires_grad_() for k in self.params}
        state = {**{k: v[members] for k, v in self.stacks.items()}, **leaves}
        x = x.transpose(1, 2)  # (m, 2F, B): features first, so that W (m, out, in) multiplies as it lies
        latent = _run(self.parts["encoder"], x, state, dropout)  # (m, L, B)
        features = _run(self.parts["photoz"], torch.cat([x, latent], dim=1), state, dropout)  # (m, H, B)
        logits, means, raw = _run(self.head, features, state, dropout).transpose(1, 2).chunk(3, dim=2)
        outputs = {
            "logits": logits,
            "means": means,
            "sigmas": F.softplus(raw) + self.sigma_min,
            "latent": latent.transpose(1, 2),
            "reconstruction": _run(self.parts["decoder"], latent, state, dropout).transpose(
                1, 2
            ),  # (m, B, F)
        }
        return outputs, leaves


class BatchedSteps:
    """How :func:`~distributed_pz.train.vmapped.train_stacked` steps DEEPZ members: batched products
    (:meth:`losses` of a block, then :meth:`update` of that block's members whose loss is finite)."""

    def __init__(self, loops: Sequence[MemberLoop]) -> None:
        self.loops = loops
        self.model = BatchedDeepZ([loop.model for loop in loops])
        self.named = [list(loop.model.named_parameters()) for loop in loops]  # walked once, not every step
        self.leaves: dict[str, torch.Tensor] = {}
        self.block: slice = slice(0)

    def blocks(self, members: list[int], batch_size: int) -> list[list[int]]:
        """``members`` (ascending) in runs of consecutive indices, at most a block each."""
        most = len(self.loops)
        if self.loops[0].device.type == "cpu":
            most = max(1, CPU_BLOCK_ELEMENTS // (batch_size * self.loops[0].model.config.hidden))
        out: list[list[int]] = []
        for i in members:
            if out and out[-1][-1] == i - 1 and len(out[-1]) < most:
                out[-1].append(i)
            else:
                out.append([i])
        return out

    def losses(self, block: list[int], batches: dict[int, torch.Tensor]) -> Losses:
        """Every member's loss in ``block`` (consecutive members with equal batch sizes)."""
        parts = [self.loops[i].augment(batches[i]) for i in block]  # (batch, raw features, inputs)
        x = torch.stack([inputs["catalog"] for _, _, inputs in parts])  # (m, B, 2F)
        self.block = slice(block[0], block[-1] + 1)
        outputs, self.leaves = self.model(self.block, x, [self.loops[i].dropout for i in block])
        split = {k: v.unbind(0) for k, v in outputs.items()}
        return {
            i: self.loops[i].loss(*parts[j], {k: v[j] for k, v in split.items()}) for j, i in enumerate(block)
        }

    def update(self, stepping: list[int], losses: Losses) -> None:
        """Backward pass of the ``stepping`` members' losses, then each one's own optimizer step."""
        torch.stack([losses[i][0] for i in stepping]).sum().backward()
        grads = {k: None if v.grad is None else v.grad.unbind(0) for k, v in self.leaves.items()}
        for i in stepping:
            j = i - self.block.start
            for name, param in self.named[i]:
                param.grad = None if grads[name] is None else grads[name][j]
            self.loops[i].optimizer_step()
            self.loops[i].optimizer.zero_grad(set_to_none=True)
        self.leaves = {}

    def unstack(self, i: int) -> None:
        """Nothing to copy: member ``i``'s module is a view of the stacks."""


def _layers(module: nn.Module, prefix: str) -> list[_Layer]:
    """The layers of a (nested) sequence of Linear, BatchNorm1d (affine, with a momentum), ReLU and
    Dropout modules, each linear layer with what follows it.

    Raises
    ------
    TypeError
        On any other module, or one out of that order.
    """
    layers: list[_Layer] = []
    for name, m in module.named_modules(prefix=prefix):
        if list(m.children()):
            continue
        last = layers[-1] if layers else None
        if isinstance(m, nn.Linear):
            layers.append(_Layer(name, bias=m.bias is not None))
        elif isinstance(m, nn.BatchNorm1d) and last and last.batch_norm is None and not last.relu:
            if not m.affine or m.momentum is None:
                raise TypeError(f"cannot stack {name} for training: affine batch norms with a momentum only")
            layers[-1] = replace(last, batch_norm=name, momentum=m.momentum, eps=m.eps)
        elif isinstance(m, nn.ReLU) and last and not last.relu:
            layers[-1] = replace(last, relu=True)
        elif isinstance(m, nn.Dropout) and last and last.relu:
            layers[-1] = replace(last, dropout=m.p)
        else:
            raise TypeError(f"cannot stack {type(m).__name__} at {name} for training")
    if any(layer.batch_norm is not None and not layer.relu for layer in layers):
        raise TypeError(f"{prefix}: only a batch norm with a ReLU after it is stacked for training")
    return layers


def _run(
    layers: list[_Layer],
    x: torch.Tensor,
    state: dict[str, torch.Tensor],
    dropout: Sequence[torch.Generator],
) -> torch.Tensor:
    """``(m, in, B) -> (m, out, B)`` through ``layers`` with the stacked ``state`` (training mode) and
    the members' dropout generators.

    Features first: ``W x`` with the weights ``(m, out, in)`` as they lie, whose gradients
    (``g x^T``) then come out in the weights' own layout (no transposed copy per layer).
    """
    for layer in layers:
        w = state[f"{layer.linear}.weight"]  # (m, out, in)
        x = torch.baddbmm(state[f"{layer.linear}.bias"].unsqueeze(2), w, x) if layer.bias else torch.bmm(w, x)
        if layer.batch_norm is not None:
            bn = layer.batch_norm
            x = _BatchNormReLU.apply(x, state[f"{bn}.weight"], state[f"{bn}.bias"], layer, state, dropout)
        elif layer.relu and layer.dropout > 0:
            x = _drop(x.relu() * (1.0 / (1.0 - layer.dropout)), layer.dropout, dropout)
        elif layer.relu:
            x = x.relu_()
    return x


class _BatchNormReLU(torch.autograd.Function):
    """``BatchNorm1d`` in training mode per member over its own batch, ReLU, dropout: ``(m, H, B)``.

    One function rather than torch's own operations (each a pass over the activations, and
    ``var_mean`` over the batch axis a slow one): five passes forward, five backward. Dropout
    scales the batch norm's affine part by ``1 / (1 - p)`` (ReLU commutes with it) and, on a CPU,
    draws only the positions it drops (:func:`_drop`).
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        layer: _Layer,
        state: dict[str, torch.Tensor],
        dropout: Sequence[torch.Generator],
    ) -> torch.Tensor:
        """``x`` ``(m, H, B)``, ``weight`` and ``bias`` ``(m, H)``; ``state`` holds the running statistics."""
        name, n = layer.batch_norm, x.shape[2]
        mean = x.mean(2, keepdim=True)  # (m, H, 1)
        centred = x - mean
        var = (centred * centred).mean(2, keepdim=True)
        state[f"{name}.running_mean"].lerp_(mean.squeeze(2), layer.momentum)
        state[f"{name}.running_var"].lerp_(var.squeeze(2) * (n / (n - 1)), layer.momentum)
        state[f"{name}.num_batches_tracked"].add_(1)
        keep = 1.0 / (1.0 - layer.dropout)
        rstd = torch.rsqrt(var + layer.eps)
        scale = weight.unsqueeze(2) * rstd * keep
        out = torch.addcmul(bias.unsqueeze(2) * keep, centred, scale).relu_()
        if layer.dropout > 0:
            _drop(out, layer.dropout, dropout)
        ctx.save_for_backward(centred, rstd, scale, out)
        ctx.keep = keep
        return out

    @staticmethod
    def backward(
        ctx: Any, grad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None, None, None]:
        centred, rstd, scale, out = ctx.saved_tensors
        n = grad.shape[2]
        grad = torch.ops.aten.threshold_backward(grad, out, 0.0)  # ReLU and dropout
        sum_g = grad.sum(2, keepdim=True)  # (m, H, 1)
        sum_gc = (grad * centred).sum(2, keepdim=True)
        # scale * (grad - sum_g / n - centred * sum_gc * rstd^2 / n), in two passes
        grad_x = torch.addcmul(scale * sum_g / -n, centred, scale * sum_gc * rstd * rstd / -n).addcmul_(
            grad, scale
        )
        return grad_x, (sum_gc * rstd * ctx.keep).squeeze(2), (sum_g * ctx.keep).squeeze(2), None, None, None


def _drop(out: torch.Tensor, p: float, dropout: Sequence[torch.Generator]) -> torch.Tensor:
    """Zero dropped activations of ``out`` ``(m, ...)`` in place, member ``j``'s drawn from ``dropout[j]``
    (on a CPU only the positions dropped, :func:`_dropped`; on a GPU a mask, as the positions would
    make it wait for the device)."""
    if out.device.type == "cpu":
        out.view(-1)[_dropped(out[0].numel(), p, dropout)] = 0.0
    else:
        for j, generator in enumerate(dropout):
            out[j].mul_(torch.empty_like(out[j]).bernoulli_(1.0 - p, generator=generator))
    return out


def _dropped(n: int, p: float, dropout: Sequence[torch.Generator]) -> torch.Tensor:
    """Flat positions among ``len(dropout)`` members' ``n`` activations (member ``j``'s from ``j * n``)
    that dropout drops, each independently with probability ``p``: the gaps between them drawn from
    the geometric distribution (a few hundred draws where a mask would take ``n``), from each
    member's own generator only as far as that member needs."""
    expected = n * p
    k = int(expected + 6 * math.sqrt(expected) + 16)

    def gaps(generator: torch.Generator | None) -> torch.Tensor:
        if generator is None:  # this member's positions already pass n
            return torch.full((k,), math.inf, dtype=torch.float64)
        return torch.empty(k, dtype=torch.float64).geometric_(p, generator=generator)

    positions = torch.stack([gaps(g) for g in dropout]).cumsum(1) - 1  # (m, k)
    while (last := positions[:, -1]).min() < n:  # more than 6 sigma above the mean: draw on
        short = [g if last[j] < n else None for j, g in enumerate(dropout)]
        positions = torch.cat([positions, torch.stack([gaps(g) for g in short]).cumsum(1) + last[:, None]], 1)
    offsets = torch.arange(len(dropout), dtype=torch.float64)[:, None] * n
    return (positions + offsets)[positions < n].long()


def dropout_seed(seed: int) -> int:
    """The seed of the dropout stream of the member of seed ``seed`` (apart from its batch stream)."""
    return int(np.random.SeedSequence([seed, 1]).generate_state(1)[0])
