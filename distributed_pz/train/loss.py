"""Training losses: the head's redshift loss, plus class cross-entropy and the model's own extra loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from distributed_pz.models.base import PhotoZModel
from distributed_pz.models.heads import mixture_log_prob
from distributed_pz.models.inputs import IGNORE_CLASS


def member_loss(
    model: PhotoZModel,
    inputs: dict[str, torch.Tensor],
    outputs: dict[str, torch.Tensor],
    batch: dict[str, torch.Tensor],
    usable: torch.Tensor,
    reconstruction_weight: float = 0.0,
    class_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss of a batch and its parts.

    Parameters
    ----------
    model, inputs, outputs
        The model, what it read and what it returned.
    batch
        Targets: ``z`` ``(B,)`` and, optionally, ``class`` ``(B,)`` (:data:`IGNORE_CLASS` = unknown).
    usable
        ``(B,)`` booleans: rows whose inputs are usable (flags 0); the others add nothing.
    reconstruction_weight
        Weight of the model's own extra loss (:meth:`PhotoZModel.extra_loss`; DEEPZ: the
        autoencoder's reconstruction error while pre-training).
    class_weight
        Weight of the class cross-entropy (when the model has a class head and labels exist).

    Returns
    -------
    total, parts
        Scalar loss, and its detached parts: ``z``, and ``class`` / ``reconstruction`` when used.
    """
    keep = usable.float()
    n = keep.sum().clamp_min(1.0)
    z = batch["z"]
    if model.has_pdf:
        per_row = -mixture_log_prob(outputs["logits"], outputs["means"], outputs["sigmas"], z)
    else:
        # Huber over delta: the paper's minimiser and, with Adam, the same steps, but in redshift
        # units (~|dz|) so that a class head's cross-entropy does not drown it (delta = 0.001).
        delta = model.config.huber_delta
        per_row = F.huber_loss(outputs["z"], z, delta=delta, reduction="none") / delta
    z_loss = (per_row * keep).sum() / n
    total, parts = z_loss, {"z": z_loss.detach()}
    if "class_logits" in outputs and "class" in batch:
        labels = torch.where(usable, batch["class"], torch.full_like(batch["class"], IGNORE_CLASS))
        if (labels != IGNORE_CLASS).any():
            ce = F.cross_entropy(outputs["class_logits"], labels, ignore_index=IGNORE_CLASS)
            total = total + class_weight * ce
            parts["class"] = ce.detach()
    rec = model.extra_loss(inputs, outputs) if reconstruction_weight > 0 else None
    if rec is not None:
        total = total + reconstruction_weight * rec
        parts["reconstruction"] = rec.detach()
    return total, parts
