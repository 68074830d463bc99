"""Output heads (point, mixture density, class) and the Gaussian-mixture maths behind p(z).

A mixture density network (Bishop 1994; DEEPZ §2.3) describes p(z) as
``sum_k w_k N(z; mu_k, sigma_k)``. The head returns unnormalised log-weights (``logits``), means
and widths; the functions below turn any mixture ``(weights, means, sigmas)`` of shape
``(B, K)`` into densities, CDFs, moments, the mode, quantiles and ODDS. An ensemble's p(z) is the
mixture of its members' components with weights divided by the number of members, so the same
functions summarise it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class PointHead(nn.Module):
    """One linear unit: ``(B, D) -> {"z": (B,)}``."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"z": self.linear(features).squeeze(1)}


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


def _columns(z: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``z`` as ``(B, G, 1)`` and whether it came as one value per row (``(B,)``)."""
    per_row = z.dim() == 1
    return (z.unsqueeze(1) if per_row else z).unsqueeze(2), per_row


def mixture_pdf(
    weights: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor, z: torch.Tensor
) -> torch.Tensor:
    """Density at ``z``: one value per row ``(B,) -> (B,)``, or a grid per row ``(B, G) -> (B, G)``."""
    zg, per_row = _columns(z)  # (B, G, 1)
    u = (zg - means.unsqueeze(1)) / sigmas.unsqueeze(1)  # (B, G, K)
    dens = (weights.unsqueeze(1) * torch.exp(-0.5 * u * u - LOG_SQRT_2PI) / sigmas.unsqueeze(1)).sum(dim=2)
    return dens.squeeze(1) if per_row else dens


def mixture_cdf(
    weights: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor, z: torch.Tensor
) -> torch.Tensor:
    """``P(Z <= z)``, shapes as in :func:`mixture_pdf`."""
    zg, per_row = _columns(z)  # (B, G, 1)
    u = (zg - means.unsqueeze(1)) / sigmas.unsqueeze(1)  # (B, G, K)
    cdf = (weights.unsqueeze(1) * 0.5 * torch.erfc(-u / math.sqrt(2))).sum(dim=2)
    return cdf.squeeze(1) if per_row else cdf


def mixture_mean(weights: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """``E[z]``: ``(B,)``."""
    return (weights * means).sum(dim=1)


def mixture_std(weights: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Standard deviation of the mixture: ``(B,)``."""
    mean = mixture_mean(weights, means).unsqueeze(1)
    var = (weights * (sigmas**2 + (means - mean) ** 2)).sum(dim=1)
    return var.clamp_min(0).sqrt()


def mixture_mode(
    weights: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor, n_iter: int = 50
) -> torch.Tensor:
    """Highest peak of each mixture: ``(B,)``.

    Fixed-point (mean-shift) iterations ``z <- sum r_k mu_k / s_k^2 / sum r_k / s_k^2`` with
    ``r_k ∝ w_k N(z; mu_k, s_k)`` climb monotonically to a local maximum (Carreira-Perpiñán
    2000); they start from every component mean and the highest end point wins.
    """
    w, mu, s = weights.double(), means.double(), sigmas.double()
    log_w = torch.log(w.clamp_min(1e-300)).unsqueeze(1)  # (B, 1, K)
    mu_k, inv_var = mu.unsqueeze(1), s.pow(-2).unsqueeze(1)  # (B, 1, K)
    log_norm = log_w - torch.log(s).unsqueeze(1)
    z = mu.clone()  # (B, S): one start per component
    for _ in range(n_iter):
        r = torch.softmax(log_norm - 0.5 * (z.unsqueeze(2) - mu_k) ** 2 * inv_var, dim=2)  # (B, S, K)
        z = (r * mu_k * inv_var).sum(dim=2) / (r * inv_var).sum(dim=2)
    log_p = torch.logsumexp(log_norm - 0.5 * (z.unsqueeze(2) - mu_k) ** 2 * inv_var, dim=2)  # (B, S)
    best = log_p.argmax(dim=1, keepdim=True)
    return z.gather(1, best).squeeze(1).to(means.dtype)


def mixture_quantile(
    weights: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor, q: float, n_iter: int = 60
) -> torch.Tensor:
    """``z`` with ``P(Z <= z) = q`` by bisection: ``(B,)``."""
    lo = (means - 10 * sigmas).min(dim=1).values.double()
    hi = (means + 10 * sigmas).max(dim=1).values.double()
    w, mu, s = weights.double(), means.double(), sigmas.double()
    for _ in range(n_iter):
        mid = 0.5 * (lo + hi)
        below = mixture_cdf(w, mu, s, mid) < q
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (0.5 * (lo + hi)).to(means.dtype)


def mixture_odds(
    weights: torch.Tensor,
    means: torch.Tensor,
    sigmas: torch.Tensor,
    z0: torch.Tensor,
    halfwidth: float = 0.06,
) -> torch.Tensor:
    """ODDS (Benítez 2000): probability within ``z0 ± halfwidth (1 + z0)``: ``(B,)``."""
    dz = halfwidth * (1 + z0)
    return mixture_cdf(weights, means, sigmas, z0 + dz) - mixture_cdf(weights, means, sigmas, z0 - dz)


def summarize_mixture(
    weights: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor, odds_halfwidth: float = 0.06
) -> dict[str, torch.Tensor]:
    """Catalogue columns of p(z): ``z_phot`` (mode), ``z_mean``, ``z_std``, ``z_lo68``, ``z_hi68``, ``odds``."""
    mode = mixture_mode(weights, means, sigmas)
    return {
        "z_phot": mode,
        "z_mean": mixture_mean(weights, means),
        "z_std": mixture_std(weights, means, sigmas),
        "z_lo68": mixture_quantile(weights, means, sigmas, 0.15865),
        "z_hi68": mixture_quantile(weights, means, sigmas, 0.84135),
        "odds": mixture_odds(weights, means, sigmas, mode, odds_halfwidth),
    }
