"""The interface every photo-z model shares (timm style)."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from distributed_pz.models.features import InputSpec


class ModelConfig(Protocol):
    """What every family's (frozen dataclass) config provides."""

    family: ClassVar[str]
    name: str

    @property
    def head(self) -> str: ...

    def input_spec(self) -> InputSpec: ...

    def tiny_overrides(self) -> dict[str, Any]:
        """Field overrides that keep the layer structure but make the model cheap (tests, smoke runs)."""
        ...


class PhotoZModel(nn.Module):
    """Base of every model: ``forward = forward_head ∘ forward_features``.

    Inputs are a dict of tensors built by :mod:`distributed_pz.models.inputs`: ``"catalog"``
    ``(B, 2F)`` (values then missing mask) and/or ``"image"`` ``(B, C, P, P)``. Outputs are a dict:
    ``"z"`` ``(B,)`` for a point head, or ``"logits"``, ``"means"``, ``"sigmas"`` ``(B, K)`` for a
    mixture density head, plus ``"class_logits"`` ``(B, 3)`` when the class head is on.
    """

    config: Any

    @property
    def input_spec(self) -> InputSpec:
        """What the model reads from a tile."""
        return self.config.input_spec()

    @property
    def has_pdf(self) -> bool:
        """True when the model returns a mixture p(z) rather than a point estimate."""
        return self.config.head == "mdn"

    def forward_features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Embedding ``(B, D)`` in front of the heads."""
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Head outputs from the embedding."""
        raise NotImplementedError

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.forward_head(self.forward_features(inputs))

    def extra_loss(
        self, inputs: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]
    ) -> torch.Tensor | None:
        """The model's own auxiliary loss (scalar), added with ``TrainConfig.reconstruction_weight``.

        ``None`` (the default) when the model has none; DEEPZ returns its autoencoder's
        reconstruction error.
        """
        return None
