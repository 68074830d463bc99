"""Moment-preserving reduction of Gaussian mixtures to ``K`` components (Runnalls' greedy merge).

A pooled ensemble mixture has ``members × components`` Gaussians (500 for 50 DEEPZ members); a
qp ``mixmod`` user expects about 10. :func:`reduce_mixture` merges pairs greedily: at each step
the pair whose merge loses least — Runnalls' (2007) upper bound on the Kullback-Leibler
discrimination, ``B(i, j) = ½[(wᵢ+wⱼ) log σ²ᵢⱼ − wᵢ log σ²ᵢ − wⱼ log σ²ⱼ]`` — is replaced by the one
Gaussian with the same weight, mean and variance, so every merge (and the whole reduction)
keeps each source's total weight, mean and variance exactly. Zero-weight components merge
first, at no cost. Rows are reduced in parallel, on the tensors' device.
"""

from __future__ import annotations

import torch

ROW_BLOCK_ELEMENTS = 2**25
"""Rows are reduced in blocks of at most this many pairwise costs (``rows × K²``): bounded memory."""


def _merge(w1, m1, v1, w2, m2, v2):
    """Weight, mean, variance of the moment-matched merge of two components (zero weights allowed)."""
    w = w1 + w2
    safe = torch.where(w > 0, w, 1.0)
    a, b = torch.where(w > 0, w1 / safe, 1.0), torch.where(w > 0, w2 / safe, 0.0)
    mean = a * m1 + b * m2
    return w, mean, a * v1 + b * v2 + a * b * (m1 - m2) ** 2


def _costs(w, m, v, i=None):
    """Runnalls' cost of merging every pair (``(N, K, K)``), or pairs with component ``i`` (``(N, K)``)."""
    if i is None:
        w1, m1, v1, w2, m2, v2 = (
            w[:, :, None],
            m[:, :, None],
            v[:, :, None],
            w[:, None],
            m[:, None],
            v[:, None],
        )
    else:
        w1, m1, v1 = (x.gather(1, i[:, None]) for x in (w, m, v))
        w2, m2, v2 = w, m, v
    wij, _, vij = _merge(w1, m1, v1, w2, m2, v2)
    return 0.5 * (wij * torch.log(vij) - w1 * torch.log(v1) - w2 * torch.log(v2))


def _reduce_block(w, m, v, k):
    n, total = w.shape
    rows = torch.arange(n, device=w.device)
    active = torch.ones_like(w, dtype=torch.bool)
    cost = _costs(w, m, v)
    eye = torch.eye(total, dtype=torch.bool, device=w.device)
    cost = cost.masked_fill(eye, torch.inf)
    for _ in range(total - k):
        flat = cost.reshape(n, -1).argmin(dim=1)
        i, j = torch.minimum(flat // total, flat % total), torch.maximum(flat // total, flat % total)
        merged = _merge(w[rows, i], m[rows, i], v[rows, i], w[rows, j], m[rows, j], v[rows, j])
        w[rows, i], m[rows, i], v[rows, i] = merged
        w[rows, j] = 0.0
        active[rows, j] = False
        fresh = _costs(w, m, v, i).masked_fill(~active, torch.inf)
        fresh[rows, i] = torch.inf
        cost[rows, i, :] = fresh
        cost[rows, :, i] = fresh
        cost[rows, j, :] = torch.inf
        cost[rows, :, j] = torch.inf
    keep = active.nonzero()[:, 1].reshape(n, k)
    return w.gather(1, keep), m.gather(1, keep), v.gather(1, keep).sqrt()


def reduce_mixture(
    weights: torch.Tensor, means: torch.Tensor, sigmas: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each row's mixture merged greedily into ``k`` components with its weight, mean and variance kept.

    Parameters
    ----------
    weights, means, sigmas
        ``(N, C)`` mixtures (float64 recommended); zero-weight components may hold anything finite.
    k
        Components to keep; ``k >= C`` returns the mixtures unchanged.

    Returns
    -------
    weights, means, sigmas
        ``(N, min(k, C))``.
    """
    n, total = weights.shape
    if k >= total:
        return weights, means, sigmas
    w = torch.nan_to_num(weights.clone(), nan=0.0)
    m = torch.where(w > 0, means, 0.0)
    v = torch.where(w > 0, sigmas**2, 1.0)
    step = max(1, ROW_BLOCK_ELEMENTS // (total * total))
    parts = [_reduce_block(w[s : s + step], m[s : s + step], v[s : s + step], k) for s in range(0, n, step)]
    return tuple(torch.cat([p[c] for p in parts]) for c in range(3))
