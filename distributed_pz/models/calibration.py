"""Recalibration of an ensemble's pooled p(z): a width temperature per redshift bin, fitted out of fold.

An ensemble's raw p(z) is rarely calibrated: mixture-density members are too wide and pooling
widens them further, while a point-estimate ensemble's "p(z)" is only the spread of a few
members, far too narrow. :class:`Calibration` maps each source's pooled mixture to a calibrated
one that is still an exact Gaussian mixture (so the catalogue's ``pdf_*`` columns stay exact and
``qp.mixmod``-readable). With ``m`` the mixture's mode (``z_phot``) and, in the bin of ``m``, shift ``s``,
temperature ``T`` and floor ``f``::

    means'  = m + s (1 + m) + T (means - m)
    sigmas' = sqrt((T sigmas)^2 + (f (1 + m))^2)

``s`` removes the bin's median bias (it moves the median of the PIT to ½), ``T`` narrows (< 1)
or widens (> 1) the whole mixture about its mode — so a far, faint component cannot drag the
peak, and ``z_phot`` moves only by the shift — the members' spread and their components
alike — and ``f`` adds a width in quadrature that a point ensemble's spread of two members
cannot give. They are fitted per bin of ``m`` (quantile bins of the fitting rows): ``s`` as the
median of ``(z_spec - median of p(z)) / (1 + m)``, then ``T`` and ``f`` on a grid, to make the
probability integral transform (PIT) of the fitting rows uniform: the objective is the PIT's
KS distance plus the miss of the 68 % coverage. The shift moves ``z_phot`` with the p(z): a
bias correction learned out of fold.

A one-Gaussian p(z) — a point-estimate ensemble's — is fitted instead with the kernel of its
residuals (:mod:`distributed_pz.models.kernel_calibration`), which carries the errors' skew and
tails; both kinds share :class:`RecordedCalibration`'s record.

:func:`fit_calibration` learns it from out-of-fold predictions (``dpz train``,
:mod:`distributed_pz.train.calibrate`); the ensemble directory keeps it
(:class:`~distributed_pz.models.ensemble.EnsembleDir`), its content hash inside the ensemble's, and the one
predictor (:class:`~distributed_pz.models.predictor.EnsemblePredictor`) applies it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import numpy as np

from distributed_pz.metrics import mixture
from distributed_pz.metrics.pdf import ks_statistic, pit_coverage

METHOD = "width_temperature"
TEMPERATURES = np.geomspace(0.1, 8.0, 17)
"""Coarse grid of temperatures ``T``; a finer grid (steps of 7 %) follows around the best."""
FLOORS = np.concatenate([[0.0], np.geomspace(2e-3, 0.3, 10)])
"""Coarse grid of floors ``f`` (in units of ``1 + z``); a finer grid (steps of 14 %) follows."""
FINE_STEPS = np.geomspace(0.76, 1.31, 9)
COVERAGE_68 = math.erf(1 / math.sqrt(2))
MAX_FIT_ROWS = 2000
"""Rows per bin used in the grid search (a seeded subsample beyond it)."""
ROWS_PER_BIN = 250
"""Fitting rows per redshift bin (at most :data:`MAX_BINS` bins, at least one)."""
MAX_BINS = 4
MIN_FIT_ROWS = 50
"""Fewest usable rows a calibration is fitted on."""
COVERAGE_TOLERANCE = 0.01
"""A fit that moves its own rows' 68 % coverage further from 68.3 % than this is refused."""


class CalibrationRefused(ValueError):
    """A fit that would leave its own rows' 68 % coverage worse than no calibration at all."""


CalibrationT = TypeVar("CalibrationT", bound="RecordedCalibration")


class RecordedCalibration:
    """What every fitted calibration has: a JSON record, its hash, one line for metadata and
    the change it made to its own rows (fields ``method``, ``fitted_on``, ``n_rows``,
    ``before``, ``after`` and an ``n_bins`` property)."""

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RecordedCalibration:
        """The calibration a recorded :meth:`to_dict` describes, of whichever method it names."""
        from distributed_pz.models.kernel_calibration import KERNEL_METHOD, KernelCalibration

        return (KernelCalibration if d.get("method") == KERNEL_METHOD else Calibration).from_dict(d)

    @property
    def content_hash(self) -> str:
        """SHA-256 of the calibration's JSON (sorted keys)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def output_components(self, components: int) -> int:
        """Gaussians of a calibrated p(z) whose input has ``components``."""
        return components

    def describe(self) -> str:
        """One line for catalogue metadata and reports."""
        bins = self.n_bins
        return (
            f"{self.method} in {bins} z_phot bin{'s' * (bins > 1)}, fitted on {self.n_rows} {self.fitted_on}"
        )

    def change(self) -> str:
        """What the fit did to its own rows: PIT KS and 68 % coverage, before -> after."""
        before, after = self.before, self.after
        return (
            f"PIT KS {before['pit_ks']:.3f} -> {after['pit_ks']:.3f}, "
            f"68 % coverage {before['coverage_68']:.1%} -> {after['coverage_68']:.1%}"
        )


@dataclass(frozen=True)
class Calibration(RecordedCalibration):
    """A fitted recalibration of pooled mixtures.

    Parameters
    ----------
    edges
        Inner edges of the bins of the mixture mode (``B - 1`` values for ``B`` bins).
    shift, temperature, floor
        ``s``, ``T`` and ``f`` of each bin.
    fitted_on
        What it was fitted on, e.g. ``"out-of-fold predictions"``.
    n_rows
        Rows it was fitted on.
    before, after
        PIT KS and 68 % coverage of the fitting rows before and after.
    """

    edges: tuple[float, ...]
    shift: tuple[float, ...]
    temperature: tuple[float, ...]
    floor: tuple[float, ...]
    fitted_on: str
    n_rows: int
    before: Mapping[str, float] = field(default_factory=dict)
    after: Mapping[str, float] = field(default_factory=dict)
    method: str = METHOD

    def __post_init__(self) -> None:
        if self.method != METHOD:
            raise ValueError(f"unknown calibration method {self.method!r}; known: {METHOD!r}")
        if not len(self.shift) == len(self.temperature) == len(self.floor) == len(self.edges) + 1:
            raise ValueError("a calibration needs one shift, one temperature and one floor per bin")

    def apply(
        self, weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The calibrated mixtures ``(N, K)`` x 3; rows with all-zero weights are returned as they are."""
        live = weights.sum(axis=1) > 0
        m = np.zeros(len(weights))
        if live.any():
            m[live] = mixture.mode(weights[live], means[live], sigmas[live])
        b = np.searchsorted(np.asarray(self.edges), m)
        s = _guarded_shift(m, np.where(live, np.asarray(self.shift)[b], 0.0))
        t = np.where(live, np.asarray(self.temperature)[b], 1.0)
        f = np.where(live, np.asarray(self.floor)[b], 0.0)
        return _transform(weights, means, sigmas, m, s, t, f)

    @property
    def n_bins(self) -> int:
        return len(self.temperature)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        fields = dict(d)
        for name in ("edges", "shift", "temperature", "floor"):
            fields[name] = tuple(float(x) for x in fields[name])
        return cls(**fields)


def _guarded_shift(m: np.ndarray, s: np.ndarray | float) -> np.ndarray:
    """The shift ``s`` of modes ``m`` under the z >= 0 guard: no shift moves a mode below 0."""
    return np.maximum(s, -m / (1.0 + np.abs(m)))


def _transform(
    weights: np.ndarray,
    means: np.ndarray,
    sigmas: np.ndarray,
    m: np.ndarray,
    s: np.ndarray,
    t: np.ndarray,
    f: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``means' = m + s (1 + m) + t (means - m)``, ``sigmas' = hypot(t sigmas, f (1 + m))`` row-wise."""
    scale = 1.0 + np.abs(m[:, None])
    m, s, t, f = m[:, None], s[:, None], t[:, None], f[:, None]
    return weights, m + s * scale + t * (means - m), np.hypot(t * sigmas, f * scale)


def pit_scores(pit_values: np.ndarray, row_weights: np.ndarray | None = None) -> dict[str, float]:
    """KS distance from uniform and 68 % coverage of PIT values (finite ones), weighted if given."""
    finite = np.isfinite(pit_values)
    p = pit_values[finite]
    w = None if row_weights is None else row_weights[finite]
    if not p.size:
        return {"pit_ks": float("nan"), "coverage_68": float("nan")}
    return {"pit_ks": ks_statistic(p, w), "coverage_68": pit_coverage(p, COVERAGE_68, w)}


def weighted_quantile(x: np.ndarray, q: np.ndarray | float, row_weights: np.ndarray | None) -> np.ndarray:
    """Quantiles ``q`` of ``x``, each row counted with its weight (plain quantiles without)."""
    if row_weights is None:
        return np.quantile(x, q)
    order = np.argsort(x)
    w = row_weights[order]
    below = np.cumsum(w) - w  # weight below each sorted row: 0 .. total - last
    return np.interp(q, below / max(below[-1], np.finfo(float).tiny), x[order])


def effective_rows(row_weights: np.ndarray) -> float:
    """Kish's effective sample size of weighted rows, (Σw)² / Σw²."""
    return float(row_weights.sum() ** 2 / np.square(row_weights).sum())


def _grid_objective(
    weights: np.ndarray,
    means: np.ndarray,
    sigmas: np.ndarray,
    z: np.ndarray,
    m: np.ndarray,
    shift: float,
    temperatures: np.ndarray,
    floors: np.ndarray,
    row_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """KS and |coverage - 0.683| of the PIT for every (temperature, floor) of a grid: two ``(T, F)``.

    ``m`` is the mixtures' (unshifted) mode and ``shift`` the bin's ``s``: the PIT is that of
    :func:`_transform` as :meth:`Calibration.apply` calls it, the z >= 0 guard and the floor's
    ``1 + m`` (of the unshifted mode) included; ``row_weights`` weight the PIT's distribution.
    """
    from scipy.special import ndtr  # imported when first needed: 0.15 s of dpz predict's start (issue 25)

    scale = (1.0 + np.abs(m))[:, None]
    d = means - m[:, None]  # (N, K)
    u = (z - m)[:, None] - _guarded_shift(m, shift)[:, None] * scale  # (N, 1)
    ks, miss = np.empty((temperatures.size, floors.size)), np.empty((temperatures.size, floors.size))
    for i, t in enumerate(temperatures):
        for j, f in enumerate(floors):
            sd = np.hypot(t * sigmas, f * scale)
            p = (weights * ndtr((u - t * d) / sd)).sum(axis=1)
            coverage = pit_coverage(p, COVERAGE_68, row_weights)
            ks[i, j], miss[i, j] = ks_statistic(p, row_weights), abs(coverage - COVERAGE_68)
    return ks, miss


def _fit_bin(
    weights: np.ndarray,
    means: np.ndarray,
    sigmas: np.ndarray,
    z: np.ndarray,
    m: np.ndarray,
    row_weights: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """``(s, T, f)`` of one bin: the median shift, then the best ``(T, f)`` of the coarse grid and
    of a finer grid around it, among those that leave the bin's 68 % coverage no further from
    68.3 % than it was (give or take :data:`COVERAGE_TOLERANCE`, as the refusal: a bin covering
    68.3 % by chance may still need its bias removed); no change at all (``0, 1, 0``) where that
    scores better."""
    median = mixture.quantiles(weights, means, sigmas, (0.5,))[:, 0]
    shift = float(weighted_quantile((z - median) / (1.0 + np.abs(m)), 0.5, row_weights))
    # no calibration at all: the z >= 0 guard neither
    raw = pit_scores(mixture_pit(weights, means, sigmas, z), row_weights)
    raw_miss = abs(raw["coverage_68"] - COVERAGE_68)
    allowed, unchanged = raw_miss + COVERAGE_TOLERANCE, raw["pit_ks"] + raw_miss  # as the refusal allows
    t_grid, f_grid = TEMPERATURES, FLOORS
    best, score = (1.0, 0.0), np.inf
    for _ in range(2):
        ks, miss = _grid_objective(weights, means, sigmas, z, m, shift, t_grid, f_grid, row_weights)
        scores = np.where(miss <= allowed, ks + miss, np.inf)
        i, j = np.unravel_index(np.argmin(scores), scores.shape)
        if scores[i, j] < score:
            best, score = (float(t_grid[i]), float(f_grid[j])), float(scores[i, j])
        t_grid = best[0] * FINE_STEPS
        f_grid = np.concatenate([[0.0], (best[1] or FLOORS[1]) * FINE_STEPS])
    return (shift, *best) if score < unchanged else (0.0, 1.0, 0.0)


def fit_calibration(
    weights: np.ndarray,
    means: np.ndarray,
    sigmas: np.ndarray,
    z_spec: np.ndarray,
    fitted_on: str = "out-of-fold predictions",
    seed: int = 0,
    row_weights: np.ndarray | None = None,
) -> RecordedCalibration:
    """Fit a calibration that makes the PIT of ``z_spec`` under these mixtures uniform: a
    :class:`Calibration` of mixtures, a :class:`~distributed_pz.models.kernel_calibration.KernelCalibration`
    of one-Gaussian p(z) (a point-estimate ensemble's).

    Parameters
    ----------
    weights, means, sigmas
        ``(N, K)`` pooled mixtures of rows the ensemble did not train on.
    z_spec
        ``(N,)`` their true redshifts; rows with a non-finite one or no PDF are left out.
    fitted_on
        Recorded description of the rows.
    seed
        Seeds the subsample of a bin with more than :data:`MAX_FIT_ROWS` rows.
    row_weights
        ``(N,)`` non-negative weight of each row (:func:`distributed_pz.models.reweight.target_weights`:
        the fitting rows reweighted to the sample the calibration is for); bins, shifts, the
        grid's PIT and the refusal are all weighted, and the bins count effective rows.

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_FIT_ROWS` usable rows.
    CalibrationRefused
        The fit would move the rows' 68 % coverage further from 68.3 % (by more than
        :data:`COVERAGE_TOLERANCE`) than no calibration.
    """
    weights, means, sigmas = (np.asarray(a, np.float64) for a in (weights, means, sigmas))
    z_spec = np.asarray(z_spec, np.float64)
    usable = np.isfinite(z_spec) & (weights.sum(axis=1) > 0)
    if row_weights is not None:
        row_weights = np.asarray(row_weights, np.float64)
        usable &= row_weights > 0
    use = np.flatnonzero(usable)
    if use.size < MIN_FIT_ROWS:
        raise ValueError(f"{use.size} rows with a p(z) and a finite z_spec are too few to calibrate on")
    w, mu, sd, z = weights[use], means[use], sigmas[use], z_spec[use]
    rw = None if row_weights is None else row_weights[use]
    n_eff = use.size if rw is None else effective_rows(rw)
    n_bins = int(np.clip(n_eff // ROWS_PER_BIN, 1, MAX_BINS))
    if mu.shape[1] == 1:
        from distributed_pz.models.kernel_calibration import fit_kernel_calibration

        return fit_kernel_calibration(mu[:, 0], sd[:, 0], z, fitted_on, n_bins, rw)
    m = mixture.mode(w, mu, sd)
    edges = bin_edges(m, n_bins, rw)
    rng = np.random.default_rng(seed)
    shift, temperature, floor = [], [], []
    b = np.searchsorted(edges, m)
    for k in range(n_bins):
        rows = np.flatnonzero(b == k)
        if rows.size > MAX_FIT_ROWS:
            rows = np.sort(rng.choice(rows, MAX_FIT_ROWS, replace=False))
        s, t, f = _fit_bin(w[rows], mu[rows], sd[rows], z[rows], m[rows], None if rw is None else rw[rows])
        shift.append(s)
        temperature.append(t)
        floor.append(f)
    before = pit_scores(mixture_pit(w, mu, sd, z), rw)
    calibration = Calibration(
        tuple(float(e) for e in edges),
        tuple(shift),
        tuple(temperature),
        tuple(floor),
        fitted_on,
        int(use.size),
        before,
    )
    return scored(calibration, (w, mu, sd), z, rw)


def bin_edges(m: np.ndarray, n_bins: int, row_weights: np.ndarray | None) -> np.ndarray:
    """Inner edges of ``n_bins`` (weighted) quantile bins of the modes ``m``."""
    return weighted_quantile(m, np.arange(1, n_bins) / n_bins, row_weights) if n_bins > 1 else np.array([])


def scored(
    calibration: CalibrationT,
    mixtures: tuple[np.ndarray, np.ndarray, np.ndarray],
    z: np.ndarray,
    row_weights: np.ndarray | None,
) -> CalibrationT:
    """``calibration`` with ``after``, the PIT KS and 68 % coverage of its fitting rows (``mixtures``
    and ``z``) once calibrated; :class:`CalibrationRefused` where that moves their coverage further
    from 68.3 % than :data:`COVERAGE_TOLERANCE` beyond where it was (``before``)."""
    before = calibration.before
    after = pit_scores(mixture_pit(*calibration.apply(*mixtures), z), row_weights)
    miss_before, miss_after = (abs(x["coverage_68"] - COVERAGE_68) for x in (before, after))
    if miss_after > miss_before + COVERAGE_TOLERANCE:
        raise CalibrationRefused(
            f"the fit would move its rows' 68 % coverage from {before['coverage_68']:.1%} "
            f"to {after['coverage_68']:.1%}"
        )
    return dataclasses.replace(calibration, after=after)


def mixture_pit(weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The PIT of redshifts ``z`` under ``(N, K)`` mixtures."""
    return mixture.cdf(z[:, None], weights, means, sigmas)[:, 0]
