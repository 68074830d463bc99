"""Members of one architecture as one batched model at prediction time: batch norm folded, ``baddbmm``.

A DEEPZ ensemble is 50 copies of three 250-wide MLPs; run one after another, each member's
layers are small matrix products (and, on a GPU, 500 kernel launches a batch). Here the
members' eval-mode layers are stacked: batch norm is folded into the linear layer before it
(``W' = W g / sqrt(var + eps)``, ``b' = (b - mean) g / sqrt(var + eps) + beta``), dropout is
the identity, and every layer of every member runs as one batched product
(``torch.baddbmm`` over a leading member axis ``M``). The autoencoder's decoder is not run: a
prediction needs only the encoder's latent features, the photo-z network and the head.

:func:`stack_members` groups an ensemble's members by configuration and returns a
:class:`StackedDeepZ` for each group that :func:`stackable` allows (with :data:`MIN_STACK`
members or more); other members run one by one (``forward_features`` + ``forward_head``). The
outputs equal the member-by-member ones up to float rounding (``tests/train/test_stacked.py``).

:func:`stackable` is the one rule on which members run stacked, here and in training
(:mod:`distributed_pz.train.batched` for DEEPZ, the same batched products with autograd through
them; :mod:`distributed_pz.train.vmapped`'s ``vmap`` over ``functional_call`` for other models).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from distributed_pz.models.base import PhotoZModel
from distributed_pz.models.deepz import DeepZ, DeepZConfig
from distributed_pz.models.heads import MDNHead
from distributed_pz.models.registry import ModelConfig, build_model

MIN_STACK = 2
"""Fewest members of one configuration that are stacked."""
CPU_BLOCK_ELEMENTS = 1 << 20
"""On a CPU, members run in blocks of at most this many activations per layer (4 MB in float32):
all 50 DEEPZ members at once stream 200 MB per layer through memory and ran 1.45 times slower
than one member after another."""


def stackable(config: ModelConfig, device: torch.device | str, *, training: bool) -> bool:
    """Whether members of ``config`` on ``device`` run as one stacked model: the one rule, for
    prediction and for training.

    - Prediction (:func:`stack_members`, this module) stacks DEEPZ members without a class head,
      on every device (on a CPU in cache-sized blocks, :data:`CPU_BLOCK_ELEMENTS`): the layers
      :func:`fold_layers` folds, and the mixture head.
    - Training (:func:`~distributed_pz.train.vmapped.train_stacked`, chosen by the Ray workers)
      stacks DEEPZ members without a class head on every device (batched products,
      :mod:`distributed_pz.train.batched`: on a CPU 1.1-1.2 times the member loop's samples/s,
      ``benchmarks/results/survey_scale.md``, ``train_rate``), and other models without
      convolutions on GPUs only (``vmap``: on a CPU the member loop measured faster, and a ``vmap``
      over convolutions slower still, ``cnn``).
    """
    if not training:
        return isinstance(config, DeepZConfig) and not config.classify
    if isinstance(config, DeepZConfig) and not config.classify:
        return True
    if torch.device(device).type != "cuda":
        return False
    with torch.device("meta"):
        model = build_model(config)
    return not any(isinstance(m, nn.Conv2d) for m in model.modules())


@dataclass(frozen=True)
class Affine:
    """One folded eval-mode layer: ``y = x @ weight + bias``, then ReLU when ``relu``."""

    weight: torch.Tensor  # (in, out)
    bias: torch.Tensor  # (out,)
    relu: bool


def fold_layers(module: nn.Module) -> list[Affine]:
    """The eval-mode layers of a (nested) stack of Linear, BatchNorm1d, ReLU and Dropout modules.

    Raises
    ------
    TypeError
        On any other module, or a batch norm or ReLU without a linear layer before it.
    """
    layers: list[Affine] = []
    for part in _leaves(module):
        if isinstance(part, nn.Linear):
            bias = (
                part.bias
                if part.bias is not None
                else torch.zeros(part.out_features, device=part.weight.device)
            )
            layers.append(Affine(part.weight.detach().t(), bias.detach(), False))
        elif isinstance(part, nn.BatchNorm1d) and layers and not layers[-1].relu:
            scale = part.weight.detach() / torch.sqrt(part.running_var + part.eps)
            last = layers[-1]
            bias = (last.bias - part.running_mean) * scale + part.bias.detach()
            layers[-1] = Affine(last.weight * scale, bias, False)
        elif isinstance(part, nn.ReLU) and layers:
            layers[-1] = Affine(layers[-1].weight, layers[-1].bias, True)
        elif not isinstance(part, nn.Dropout):
            raise TypeError(f"cannot fold {type(part).__name__} into a stacked layer")
    return layers


def _leaves(module: nn.Module) -> list[nn.Module]:
    children = list(module.children())
    if not children:
        return [module]
    return [leaf for child in children for leaf in _leaves(child)]


class StackedLayers:
    """The same folded layer sequence of ``M`` members: weights ``(M, in, out)``, biases ``(M, 1, out)``."""

    def __init__(self, members: Sequence[list[Affine]]) -> None:
        depths = {len(layers) for layers in members}
        if len(depths) != 1:
            raise ValueError("stacked members must have the same layers")
        self.weights = [torch.stack([m[i].weight for m in members]).contiguous() for i in range(depths.pop())]
        self.biases = [
            torch.stack([m[i].bias for m in members])[:, None, :].contiguous()
            for i in range(len(self.weights))
        ]
        self.relu = [members[0][i].relu for i in range(len(self.weights))]

    def __call__(
        self, x: torch.Tensor, first: torch.Tensor | None = None, members: slice = slice(None)
    ) -> torch.Tensor:
        """``(m, B, in) -> (m, B, out)`` for the ``members`` of the stack; ``first`` (``(m, B, out_0)``)
        is added to the first layer's output."""
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            w, b = w[members], b[members]
            x = torch.baddbmm(b if i or first is None else b + first, x, w)
            if self.relu[i]:
                x = x.relu_()
        return x


class StackedDeepZ:
    """DEEPZ members as one batched model (eval mode): ``inputs (M, B, 2F) -> outputs (M, B, K)``.

    Parameters
    ----------
    models
        DEEPZ members of one configuration, in eval mode; their weights are copied.
    """

    def __init__(self, models: Sequence[DeepZ]) -> None:
        heads = [m.head for m in models]
        if not all(isinstance(h, MDNHead) for h in heads):
            raise TypeError("StackedDeepZ needs mixture density heads")
        if any(m.class_head is not None for m in models):
            raise TypeError("StackedDeepZ does not stack class heads")
        with torch.no_grad():
            self.encoder = StackedLayers([fold_layers(m.encoder) for m in models])
            photoz = [fold_layers(m.photoz) for m in models]
            n_direct = models[0].encoder[0][0].in_features  # ratios and mask, before the latent features
            self.direct = torch.stack([p[0].weight[:n_direct] for p in photoz]).contiguous()  # (M, 2F, H)
            first = [Affine(p[0].weight[n_direct:], p[0].bias, p[0].relu) for p in photoz]
            self.photoz = StackedLayers([[f, *p[1:]] for f, p in zip(first, photoz, strict=True)])
            self.head = StackedLayers([fold_layers(m.head.linear) for m in models])
        self.n_components = heads[0].n_components
        self.sigma_min = heads[0].sigma_min

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mixture outputs ``logits``, ``means``, ``sigmas`` ``(M, B, K)`` of every member on its inputs ``x``.

        On a CPU the members run in blocks whose activations stay in cache
        (:data:`CPU_BLOCK_ELEMENTS`); on a GPU all at once.
        """
        n_members, n_rows = x.shape[:2]
        width = self.encoder.weights[0].shape[2]
        step = n_members if x.device.type != "cpu" else max(1, CPU_BLOCK_ELEMENTS // (n_rows * width))
        parts = [self._block(x[s : s + step], slice(s, s + step)) for s in range(0, n_members, step)]
        logits, means, raw = (torch.cat(p, dim=0) for p in zip(*parts, strict=True))
        return {"logits": logits, "means": means, "sigmas": F.softplus(raw) + self.sigma_min}

    def _block(self, x: torch.Tensor, members: slice) -> tuple[torch.Tensor, ...]:
        latent = self.encoder(x, members=members)  # (m, B, L)
        features = self.photoz(latent, first=torch.bmm(x, self.direct[members]), members=members)  # (m, B, H)
        return self.head(features, members=members).chunk(3, dim=2)


def stack_members(models: Sequence[nn.Module]) -> list[tuple[list[int], StackedDeepZ | None]]:
    """Groups of member indices, each with its stacked model (``None``: run those members one by one).

    Members of one configuration that :func:`stackable` allows for prediction form one stacked
    group; every other member is a group of its own.
    """
    groups: dict[object, list[int]] = {}
    for i, model in enumerate(models):
        fold = isinstance(model, PhotoZModel) and stackable(model.config, _device(model), training=False)
        groups.setdefault(("stacked", model.config) if fold else i, []).append(i)
    out: list[tuple[list[int], StackedDeepZ | None]] = []
    for key, members in groups.items():
        if isinstance(key, tuple) and len(members) >= MIN_STACK:
            out.append((members, StackedDeepZ([models[i] for i in members])))
        else:
            out += [([i], None) for i in members]
    return out


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
