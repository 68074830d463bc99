"""Output heads (point, mixture density, class) and their training losses.

A mixture density network (Bishop 1994; DEEPZ §2.3) describes p(z) as
``sum_k w_k N(z; mu_k, sigma_k)``. The head returns unnormalised log-weights (``logits``), means
and widths; the functions below give a mixture's log-density and negative log-likelihood (the
loss). Summaries of a mixture (mode, quantiles, ODDS) and the pooling of an ensemble's members
are :mod:`distributed_pz.metrics.mixture`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class PointHead(nn.Module):
    """One linear unit: ``(B, D) -> {"z": (B,)}``; ``nonnegative`` passes it through a softplus (z >= 0)."""

    def __init__(self, in_features: int, nonnegative: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1)
        self.nonnegative = nonnegative

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.linear(features).squeeze(1)
        return {"z": F.softplus(z) if self.nonnegative else z}


class MDNHead(nn.Module):
    """Mixture of ``K`` Gaussians: ``(B, D) -> {"logits", "means", "sigmas"}``, each ``(B, K)``.

    Widths are ``softplus(.) + sigma_min``. The means' biases start spread over ``z_init`` and the
    widths near 0.1, so every component starts where redshifts are.
    """

    def __init__(
        self,
        in_features: int,
        n_components: int = 10,
        sigma_min: float = 1e-3,
        z_init: tuple[float, float] = (0.0, 3.0),
    ) -> None:
        super().__init__()
        self.n_components, self.sigma_min = n_components, sigma_min
        self.linear = nn.Linear(in_features, 3 * n_components)
        with torch.no_grad():
            self.linear.bias.zero_()
            self.linear.bias[n_components : 2 * n_components] = torch.linspace(*z_init, n_components)
            self.linear.bias[2 * n_components :] = math.log(math.expm1(0.1))

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, means, raw_sigmas = self.linear(features).chunk(3, dim=1)  # 3 × (B, K)
        return {"logits": logits, "means": means, "sigmas": F.softplus(raw_sigmas) + self.sigma_min}


class ClassHead(nn.Module):
    """Class logits (galaxy, star, QSO): ``(B, D) -> {"class_logits": (B, n_classes)}``."""

    def __init__(self, in_features: int, n_classes: int = 3) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, n_classes)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"class_logits": self.linear(features)}


def huber_loss(z_pred: torch.Tensor, z_true: torch.Tensor, delta: float = 1e-3) -> torch.Tensor:
    """Mean Huber loss (GaZNet eq. 1): ``a²/2`` for ``|a| <= delta``, else ``delta (|a| - delta/2)``."""
    return F.huber_loss(z_pred, z_true, delta=delta)


def mixture_log_prob(
    logits: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor, z: torch.Tensor
) -> torch.Tensor:
    """``log p(z)`` of each row's mixture: ``(B, K) × 3, (B,) -> (B,)``."""
    log_w = torch.log_softmax(logits, dim=1)
    u = (z.unsqueeze(1) - means) / sigmas
    return torch.logsumexp(log_w - 0.5 * u * u - torch.log(sigmas) - LOG_SQRT_2PI, dim=1)


def mixture_nll(
    logits: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor, z: torch.Tensor
) -> torch.Tensor:
    """DEEPZ loss (eq. 2), averaged over the batch: ``-mean log p(z_spec)``."""
    return -mixture_log_prob(logits, means, sigmas, z).mean()
