"""THE Gaussian-mixture maths of the package: pooling, density, CDF, moments, mode, quantiles, ODDS.

A batch of mixtures is three arrays ``weights, means, sigmas`` of shape (N, K), one mixture per
row. Rows whose weights are all zero are "no PDF" rows: every summary of them is NaN.
Computation is in float64; the mixture is the exact PDF the catalogue stores, untruncated at
z = 0. Catalogues and out-of-fold predictions (:mod:`distributed_pz.models.predictor`,
:mod:`distributed_pz.train.oof`), the evaluation (:class:`distributed_pz.metrics.pdf.GaussianMixturePDF`
delegates here) and the benchmarks all call these functions, so they all measure one estimator.

The mode climbs from a few candidates and the quantiles use safeguarded Newton steps, so a
50-member x 10-component ensemble stays affordable on CPU. ODDS is DEEPZ's eq. 7: the
probability within ``z_phot ± interval / 2``, a fixed full width
(:data:`DEFAULT_ODDS_INTERVAL`), recorded in every catalogue's metadata as ``odds_interval``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import ndtr, ndtri

DEFAULT_ODDS_INTERVAL = 0.06
"""Full width Δz of the ODDS interval around z_phot (DEEPZ eq. 7 uses 0.003 for 40 narrow bands;
0.06 suits broad-band photometry, whose scatter is ~20 times larger)."""

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
_BLOCK_ELEMENTS = 1 << 21
"""Largest (rows x points x components) temporary built at once (keeps temporaries in cache)."""
_MAX_T2 = 1400.0
"""exp(-t^2 / 2) is evaluated at t^2 <= 1400 (exp(-700) ~ 1e-304): no slow subnormal arithmetic."""
_MAX_T = 37.0
"""ndtr(t) is evaluated at |t| <= 37 (ndtr(-37) ~ 6e-300), for the same reason."""


def _gauss(t: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * np.minimum(t * t, _MAX_T2))


def _ndtr(t: np.ndarray) -> np.ndarray:
    return ndtr(np.clip(t, -_MAX_T, _MAX_T))


def pool_members(
    weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pool the members' mixtures into one mixture per row with equal member weights.

    Parameters
    ----------
    weights, means, sigmas
        (M, N, K): member ``m``'s mixture for row ``n``; each member's weights sum to one.
    valid
        (M, N) bool: member ``m`` gave a usable mixture for row ``n``.

    Returns
    -------
    weights, means, sigmas
        (N, M*K), member-major (components ``m*K : (m+1)*K`` are member ``m``'s). Component
        weights are ``w / n_valid``; an invalid member's components get weight 0, mean 0,
        sigma 1 (placeholders that keep every reader's arithmetic finite).
    """
    n_members, n_rows, k = weights.shape
    scale = 1.0 / np.maximum(valid.sum(axis=0), 1)  # (N,)
    keep = valid[..., None]  # (M, N, 1)
    w = np.where(keep, weights, 0.0) * scale[None, :, None]
    mu = np.where(keep, means, 0.0)
    sd = np.where(keep, sigmas, 1.0)

    def flat(a: np.ndarray) -> np.ndarray:
        return a.transpose(1, 0, 2).reshape(n_rows, n_members * k)  # (N, M*K)

    return flat(w), flat(mu), flat(sd)


def spread_mixture(
    z: np.ndarray, valid: np.ndarray, sigma_floor: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Gaussian per row from point estimates: the valid members' mean and spread.

    Parameters
    ----------
    z
        (M, N) point estimates of ``M`` members.
    valid
        (M, N) bool: member ``m`` gave a usable estimate for row ``n``.
    sigma_floor
        Smallest width given (the spread of fewer than two members is undefined).

    Returns
    -------
    weights, means, sigmas
        (N, 1) each; rows with no valid member get weight 0, mean 0, sigma 1.
    """
    n_valid = valid.sum(axis=0)
    safe = np.where(valid, z, 0.0)
    mean = safe.sum(axis=0) / np.maximum(n_valid, 1)
    var = np.where(valid, (safe - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n_valid - 1, 1)
    sigma = np.where(n_valid >= 2, np.maximum(np.sqrt(var), sigma_floor), sigma_floor)
    has = n_valid > 0
    return (
        has.astype(np.float64)[:, None],
        np.where(has, mean, 0.0)[:, None],
        np.where(has, sigma, 1.0)[:, None],
    )


def pdf(z: np.ndarray, weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Mixture density at points ``z`` (N, Q) -> (N, Q)."""
    t = (z[:, :, None] - means[:, None, :]) / sigmas[:, None, :]  # (N, Q, K)
    return np.einsum("nqk,nk->nq", _gauss(t), weights / sigmas) * _INV_SQRT_2PI


def cdf(z: np.ndarray, weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Mixture cumulative distribution at points ``z`` (N, Q) -> (N, Q)."""
    t = (z[:, :, None] - means[:, None, :]) / sigmas[:, None, :]  # (N, Q, K)
    return np.einsum("nqk,nk->nq", _ndtr(t), weights)


def moments(weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each row's mixture, (N,) each."""
    total = weights.sum(axis=1)
    mean = (weights * means).sum(axis=1) / total
    second = (weights * (sigmas**2 + means**2)).sum(axis=1) / total
    return mean, np.sqrt(np.maximum(second - mean**2, 0.0))


def mode(
    weights: np.ndarray,
    means: np.ndarray,
    sigmas: np.ndarray,
    n_starts: int = 16,
    n_climbs: int = 3,
    tol: float = 1e-6,
    max_iter: int = 100,
) -> np.ndarray:
    """Highest mode of each row's mixture, (N,).

    Candidate starts are the mixture mean and the means of the ``n_starts`` components with
    the highest peaks ``w / sigma`` (all of them for small mixtures). From the ``n_climbs``
    candidates of highest density the density climbs to a mode: a Newton step where the
    density is concave (capped at three mean-shift steps), else a mean-shift step
    ``sum(r mu / s^2) / sum(r / s^2) - z``, ``r = w N(z; mu, s)``, until the step is below
    ``tol`` (a flat-topped mixture may stop after ``max_iter`` steps short of its mode, where
    the density differs little). The point of highest density among starts and ends is returned.
    """
    n, k = weights.shape
    top = np.argsort(-weights / sigmas, axis=1)[:, : min(n_starts, k)]
    mean, _ = moments(weights, means, sigmas)
    starts = np.concatenate([mean[:, None], np.take_along_axis(means, top, axis=1)], axis=1)  # (N, S)
    density = pdf(starts, weights, means, sigmas)
    order = np.argsort(-density, axis=1)[:, : min(n_climbs, starts.shape[1])]
    z = np.take_along_axis(starts, order, axis=1).ravel()  # (N * C,) row-major
    row = np.repeat(np.arange(n), order.shape[1])
    scaled = weights / sigmas  # (N, K): peak heights up to 1 / sqrt(2 pi)
    inv_var = 1.0 / sigmas**2
    active = np.arange(z.size)
    for _ in range(max_iter):
        r = row[active]
        d = (means[r] - z[active, None]) * inv_var[r]  # (A, K)
        e = _gauss(d * sigmas[r]) * scaled[r]
        slope = (e * d).sum(axis=1)  # p' (up to 1 / sqrt(2 pi))
        curvature = (e * (d * d - inv_var[r])).sum(axis=1)  # p''
        shift = slope / np.maximum((e * inv_var[r]).sum(axis=1), 1e-300)  # mean-shift step
        newton = -slope / np.where(curvature < 0, curvature, -np.inf)
        step = np.where(curvature < 0, np.clip(newton, -3 * np.abs(shift), 3 * np.abs(shift)), shift)
        z[active] += step
        active = active[np.abs(step) > tol]
        if active.size == 0:
            break
    ends = z.reshape(n, -1)
    points = np.concatenate([starts, ends], axis=1)
    best = np.argmax(np.concatenate([density, pdf(ends, weights, means, sigmas)], axis=1), axis=1)
    return points[np.arange(n), best]


def quantiles(
    weights: np.ndarray,
    means: np.ndarray,
    sigmas: np.ndarray,
    probs: Sequence[float],
    tol: float = 1e-8,
    max_iter: int = 200,
) -> np.ndarray:
    """Quantiles of each row's mixture, (N, len(probs)).

    Safeguarded Newton on the CDF, one (row, quantile) pair at a time: a Newton step that
    leaves the bracket known to hold the root is replaced by bisection; a pair stops once its
    step or bracket is below ``tol``.
    """
    n, n_probs = weights.shape[0], len(probs)
    row = np.repeat(np.arange(n), n_probs)  # (P,) pairs, row-major
    q = np.tile(np.asarray(probs, dtype=np.float64), n)
    live = weights > 0
    lo = np.where(live, means - 40 * sigmas, np.inf).min(axis=1)[row]
    hi = np.where(live, means + 40 * sigmas, -np.inf).max(axis=1)[row]
    mean, std = moments(weights, means, sigmas)
    z = np.clip(mean[row] + std[row] * ndtri(q), lo, hi)
    active = np.arange(z.size)
    for _ in range(max_iter):
        r = row[active]
        t = (z[active, None] - means[r]) / sigmas[r]  # (A, K)
        f = (_ndtr(t) * weights[r]).sum(axis=1) - q[active]
        density = (_gauss(t) * (weights[r] / sigmas[r])).sum(axis=1) * _INV_SQRT_2PI
        lo[active] = np.where(f < 0, z[active], lo[active])
        hi[active] = np.where(f >= 0, z[active], hi[active])
        step = z[active] - f / np.maximum(density, 1e-300)
        inside = (step > lo[active]) & (step < hi[active])
        new = np.where(inside, step, 0.5 * (lo[active] + hi[active]))
        moving = (np.abs(new - z[active]) > tol) & (hi[active] - lo[active] > tol)
        z[active] = new
        active = active[moving]
        if active.size == 0:
            break
    return z.reshape(n, n_probs)


def odds(
    z0: np.ndarray, interval: float, weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """ODDS (Eriksen et al. 2020, eq. 7): probability within ``z0 +- interval / 2``, (N,).

    ``interval`` is the full width (:data:`DEFAULT_ODDS_INTERVAL` in the catalogues).
    """
    edges = np.stack([z0 - interval / 2, z0 + interval / 2], axis=1)
    c = cdf(edges, weights, means, sigmas)
    return np.clip(c[:, 1] - c[:, 0], 0.0, 1.0)


def summarise(
    weights: np.ndarray,
    means: np.ndarray,
    sigmas: np.ndarray,
    odds_interval: float = DEFAULT_ODDS_INTERVAL,
) -> dict[str, np.ndarray]:
    """Point summaries of each row's mixture.

    Returns
    -------
    dict
        ``z_phot`` (mode), ``z_mean``, ``z_std``, ``z_lo68``, ``z_hi68`` (16th and 84th
        percentiles) and ``odds``, each (N,) float64; NaN on rows whose weights are all zero.
    """
    n, k = weights.shape
    out = {name: np.full(n, np.nan) for name in ("z_phot", "z_mean", "z_std", "z_lo68", "z_hi68", "odds")}
    rows = np.flatnonzero(weights.sum(axis=1) > 0)
    step = max(1, _BLOCK_ELEMENTS // (8 * k))
    for start in range(0, rows.size, step):
        block = rows[start : start + step]
        w, mu, sd = weights[block], means[block], sigmas[block]
        z_mode = mode(w, mu, sd)
        out["z_phot"][block] = z_mode
        out["z_mean"][block], out["z_std"][block] = moments(w, mu, sd)
        bounds = quantiles(w, mu, sd, (ndtr(-1.0), ndtr(1.0)))
        out["z_lo68"][block], out["z_hi68"][block] = bounds[:, 0], bounds[:, 1]
        out["odds"][block] = odds(z_mode, odds_interval, w, mu, sd)
    return out


def on_grid(grid: np.ndarray, weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Mixture density on a fixed redshift grid (G,) -> (N, G), in row blocks of bounded memory."""
    n, k = weights.shape
    step = max(1, _BLOCK_ELEMENTS // (grid.size * k))
    out = np.empty((n, grid.size))
    for start in range(0, n, step):
        rows = slice(start, start + step)
        z = np.broadcast_to(grid, (len(weights[rows]), grid.size))
        out[rows] = pdf(z, weights[rows], means[rows], sigmas[rows])
    return out
