"""The interface every photo-z model shares (timm style)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from distributed_pz.models.features import InputSpec


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
