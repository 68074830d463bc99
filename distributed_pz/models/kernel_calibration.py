"""Recalibration of a one-Gaussian p(z) by the kernel of its out-of-fold residuals.

A point-estimate ensemble's p(z) is one Gaussian per source: the members' mean ``m`` and
spread ``σ`` (:func:`~distributed_pz.metrics.mixture.spread_mixture`). Photo-z errors are not
Gaussian: they are skewed where a colour degeneracy pulls one way, and their tails are heavier.
A width temperature (:class:`~distributed_pz.models.calibration.Calibration`) can fix the 68 %
coverage of such a p(z) but not the shape of its PIT, so :class:`KernelCalibration` replaces it
by the distribution of the errors themselves. In each bin of ``m`` (quantile bins of the
fitting rows) it keeps the standardised residuals of the fitting rows::

    u = (z_spec - m) / w,   w = hypot(σ, f (1 + m))

and gives each source ``K`` equal Gaussians at the residuals' quantiles ``q_k`` (the
``(k + ½) / K`` ones, weighted when the rows are) with a common bandwidth ``h``::

    means_k = max(m + w q_k, 0),   sigmas_k = h w,   weights_k = 1 / K

``h`` is 1.5 times Silverman's rule for the residuals (``1.6 min(sd, IQR / 1.34) n^(-1/5)``, ``n``
the effective rows), smooth enough that a p(z)'s mode (``z_phot``) is the kernel's and not one
node's; the nodes are drawn towards their median until the kernel's 68 % interval is the
residuals' own. The floor ``f`` sets how much the members' spread counts: it is
chosen per bin, among multiples of the bin's median ``σ / (1 + m)``, as the one under which the
fitting rows' redshifts have the highest mean log density (a proper score), so a source the
members disagree on gets a wider p(z) as far as the errors say it should. The
bias of the bin is in the quantiles (their median is the median residual), the z >= 0 guard
in the ``max``: every Gaussian of a row has one width, so no mode falls below 0.

:func:`fit_kernel_calibration` is what :func:`~distributed_pz.models.calibration.fit_calibration`
fits for one-Gaussian mixtures; the catalogue's mixture then has ``K`` components
(:meth:`KernelCalibration.output_components`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from distributed_pz.metrics import mixture
from distributed_pz.models.calibration import (
    COVERAGE_68,
    RecordedCalibration,
    bin_edges,
    effective_rows,
    mixture_pit,
    pit_scores,
    scored,
    weighted_quantile,
)

KERNEL_METHOD = "residual_kernel"
NODES = 20
"""Gaussians of each calibrated p(z)."""
FLOOR_FACTORS = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Floors ``f`` tried, in units of the bin's median ``σ / (1 + m)``."""
BANDWIDTH = 1.6
"""``h = BANDWIDTH min(sd, IQR / 1.34) n^(-1/5)``: 1.5 times Silverman's rule, smooth enough
that the mode of a p(z) is not one node's."""
MIN_FLOOR = 1e-4
"""Smallest floor (in units of ``1 + z``): the width ``w`` is never 0."""
_LO, _HI = (1 - COVERAGE_68) / 2, (1 + COVERAGE_68) / 2
"""The probabilities of the central 68 % interval's ends."""


@dataclass(frozen=True)
class KernelCalibration(RecordedCalibration):
    """A fitted residual-kernel recalibration of one-Gaussian p(z).

    Parameters
    ----------
    edges
        Inner edges of the bins of ``m`` (``B - 1`` values for ``B`` bins).
    floor
        ``f`` of each bin.
    nodes
        The ``K`` quantiles ``q_k`` of each bin's standardised residuals.
    bandwidth
        ``h`` of each bin.
    fitted_on, n_rows, before, after
        As :class:`~distributed_pz.models.calibration.Calibration`'s.
    """

    edges: tuple[float, ...]
    floor: tuple[float, ...]
    nodes: tuple[tuple[float, ...], ...]
    bandwidth: tuple[float, ...]
    fitted_on: str
    n_rows: int
    before: Mapping[str, float] = field(default_factory=dict)
    after: Mapping[str, float] = field(default_factory=dict)
    method: str = KERNEL_METHOD

    def __post_init__(self) -> None:
        if self.method != KERNEL_METHOD:
            raise ValueError(f"unknown calibration method {self.method!r}; known: {KERNEL_METHOD!r}")
        bins = len(self.edges) + 1
        if not len(self.floor) == len(self.nodes) == len(self.bandwidth) == bins:
            raise ValueError(
                "a kernel calibration needs one floor, one set of nodes and one bandwidth per bin"
            )
        if len({len(n) for n in self.nodes}) != 1 or not self.nodes[0]:
            raise ValueError("every bin of a kernel calibration needs the same number of nodes")

    @property
    def n_bins(self) -> int:
        return len(self.floor)

    def output_components(self, components: int) -> int:
        """Gaussians of a calibrated p(z): :data:`NODES` whatever the input's one."""
        return len(self.nodes[0])

    def apply(
        self, weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The calibrated ``(N, K)`` mixtures of ``(N, 1)`` ones; rows with zero weight keep zero weights."""
        if weights.shape[1] != 1:
            raise ValueError(
                f"a kernel calibration applies to one-Gaussian p(z), not {weights.shape[1]} components"
            )
        live = weights[:, 0] > 0
        m, sd = means[:, 0], sigmas[:, 0]
        b = np.searchsorted(np.asarray(self.edges), np.where(live, m, 0.0))
        w = _width(m, sd, np.asarray(self.floor)[b])
        q, h = np.asarray(self.nodes)[b], np.asarray(self.bandwidth)[b]
        k = q.shape[1]
        new_means = np.where(live[:, None], np.maximum(m[:, None] + w[:, None] * q, 0.0), m[:, None])
        new_sigmas = np.where(live[:, None], (h * w)[:, None], sd[:, None]) * np.ones((1, k))
        return np.where(live[:, None], 1.0 / k, 0.0) * np.ones((1, k)), new_means, new_sigmas

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> KernelCalibration:
        fields = dict(d)
        for name in ("edges", "floor", "bandwidth"):
            fields[name] = tuple(float(x) for x in fields[name])
        fields["nodes"] = tuple(tuple(float(x) for x in row) for row in fields["nodes"])
        return cls(**fields)


def _width(m: np.ndarray, sigma: np.ndarray, floor: np.ndarray | float) -> np.ndarray:
    """``w = hypot(σ, f (1 + m))``, at least :data:`MIN_FLOOR` ``(1 + m)``."""
    scale = 1.0 + np.abs(m)
    return np.hypot(sigma, np.maximum(floor, MIN_FLOOR) * scale)


def _kernel(u: np.ndarray, row_weights: np.ndarray | None) -> tuple[np.ndarray, float]:
    """The kernel of residuals ``u``: :data:`NODES` nodes and a bandwidth ``h`` (see the module)."""
    probabilities = np.concatenate([(np.arange(NODES) + 0.5) / NODES, [_LO, 0.25, 0.5, 0.75, _HI]])
    *quantiles, lo, q25, median, q75, hi = weighted_quantile(u, probabilities, row_weights)
    nodes = np.asarray(quantiles)
    w = np.ones_like(u) if row_weights is None else row_weights
    mean = np.average(u, weights=w)
    sd = np.sqrt(np.average((u - mean) ** 2, weights=w))
    n_eff = effective_rows(w)
    spread = min(sd, (q75 - q25) / 1.34) or sd
    h = float(max(BANDWIDTH * spread * n_eff**-0.2, 1e-6))
    # the nodes drawn towards the median until the kernel's 68 % interval is the residuals'
    one = np.ones((1, NODES)) / NODES
    shrink = 1.0
    for _ in range(4):
        q = mixture.quantiles(
            one, median + shrink * (nodes - median)[None], np.full((1, NODES), h), (_LO, _HI)
        )[0]
        shrink *= (hi - lo) / max(q[1] - q[0], 1e-12)
    return median + min(shrink, 1.0) * (nodes - median), h


def _kernel_log_density(u: np.ndarray, nodes: np.ndarray, bandwidth: float) -> np.ndarray:
    """log of the kernel's density at ``u`` (per unit of ``u``)."""
    t = (u[:, None] - nodes[None, :]) / bandwidth
    peak = np.min(t * t, axis=1)
    return (
        np.log(np.exp(-0.5 * (t * t - peak[:, None])).mean(axis=1))
        - 0.5 * peak
        - np.log(bandwidth * np.sqrt(2 * np.pi))
    )


def _fit_bin(
    m: np.ndarray, sigma: np.ndarray, z: np.ndarray, row_weights: np.ndarray | None
) -> tuple[float, np.ndarray, float]:
    """``(f, nodes, h)`` of one bin: the floor whose kernel gives the rows' redshifts the highest
    mean log density (a proper score: it rewards a width that follows the members' spread)."""
    typical = float(np.median(sigma / (1.0 + np.abs(m))))
    best, score = None, -np.inf
    for factor in FLOOR_FACTORS:
        floor = max(factor * typical, MIN_FLOOR)
        width = _width(m, sigma, floor)
        u = (z - m) / width
        nodes, h = _kernel(u, row_weights)
        log_density = np.average(_kernel_log_density(u, nodes, h) - np.log(width), weights=row_weights)
        if log_density > score:
            best, score = (floor, nodes, h), log_density
    return best


def fit_kernel_calibration(
    m: np.ndarray,
    sigma: np.ndarray,
    z: np.ndarray,
    fitted_on: str,
    n_bins: int,
    row_weights: np.ndarray | None,
) -> KernelCalibration:
    """Fit a :class:`KernelCalibration` on usable rows: modes ``m``, widths ``sigma``, redshifts ``z``.

    Called by :func:`~distributed_pz.models.calibration.fit_calibration`, which checks the rows
    and sets ``n_bins``; raises :class:`~distributed_pz.models.calibration.CalibrationRefused`
    as it does (:func:`~distributed_pz.models.calibration.scored`).
    """
    edges = bin_edges(m, n_bins, row_weights)
    b = np.searchsorted(edges, m)
    floors, nodes, bandwidths = [], [], []
    for k in range(n_bins):
        rows = b == k
        f, q, h = _fit_bin(m[rows], sigma[rows], z[rows], None if row_weights is None else row_weights[rows])
        floors.append(float(f))
        nodes.append(tuple(float(x) for x in q))
        bandwidths.append(h)
    one = np.ones((m.size, 1))
    before = pit_scores(mixture_pit(one, m[:, None], sigma[:, None], z), row_weights)
    calibration = KernelCalibration(
        tuple(float(e) for e in edges),
        tuple(floors),
        tuple(nodes),
        tuple(bandwidths),
        fitted_on,
        int(m.size),
        before,
    )
    return scored(calibration, (one, m[:, None], sigma[:, None]), z, row_weights)
