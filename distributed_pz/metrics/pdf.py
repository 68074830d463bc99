"""Redshift PDFs and their calibration metrics.

Two representations share one small interface, :class:`RedshiftPDF`:

- :class:`GaussianMixturePDF` — ``weights, means, sigmas`` of shape [N, K] (the MDN output of
  DEEPZ and of our GaZNet MDN heads). Density, CDF, moments, mode and quantiles are those of
  :mod:`distributed_pz.metrics.mixture` (the one mixture library, which the catalogues'
  summaries come from); closed-form CRPS (Grimit et al. 2006). The mixture lives on the whole
  real line, so a component may put some mass below z = 0.
- :class:`GridPDF` — densities [N, G] on a fixed, increasing redshift grid [G], taken as
  piecewise linear between grid points and zero outside; CDF, moments, quantiles and CRPS are
  exact for that density.

The metrics are pure functions of a PDF and the spectroscopic redshifts: PIT (DEEPZ eq. 6) with
its histogram and KS / Cramér–von Mises / Anderson–Darling distances from uniform, CRPS,
coverage of central credible intervals, and ODDS (DEEPZ eq. 7, the probability within
``z_mode ± interval / 2``, as in the catalogues). :func:`to_qp` exports to the optional ``qp`` package.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from distributed_pz.metrics import mixture
from distributed_pz.metrics.mixture import DEFAULT_ODDS_INTERVAL

ROW_BLOCK = 4096
"""Sources processed at once by the memory-hungry methods (``mode``, ``crps``)."""
PIT_CLIP = 1e-10
"""PIT values are clipped to [PIT_CLIP, 1 − PIT_CLIP] in the Anderson–Darling statistic."""

_SQRT_2PI = np.sqrt(2.0 * np.pi)


def _normal_pdf(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.exp(-0.5 * x * x) / _SQRT_2PI


class RedshiftPDF(ABC):
    """N one-dimensional redshift PDFs, one per source.

    Methods taking redshifts ``z`` accept shape [N] (one value per source, returns [N]) or
    [N, M] / [1, M] (M values per source, returns [N, M]).
    """

    @abstractmethod
    def __len__(self) -> int:
        """Number of sources N."""

    @abstractmethod
    def subset(self, index: ArrayLike) -> RedshiftPDF:
        """The PDFs of the sources selected by a boolean mask or integer index."""

    @abstractmethod
    def pdf(self, z: ArrayLike) -> NDArray[np.float64]:
        """Probability density at ``z``."""

    @abstractmethod
    def cdf(self, z: ArrayLike) -> NDArray[np.float64]:
        """Cumulative probability P(Z ≤ z)."""

    @abstractmethod
    def quantile(self, q: float) -> NDArray[np.float64]:
        """The redshift below which each PDF holds probability ``q`` in [0, 1], shape [N]."""

    @abstractmethod
    def mean(self) -> NDArray[np.float64]:
        """Mean redshift, shape [N]."""

    @abstractmethod
    def std(self) -> NDArray[np.float64]:
        """Standard deviation, shape [N]."""

    @abstractmethod
    def _mode(self) -> NDArray[np.float64]:
        """``mode`` of all the sources at once."""

    @abstractmethod
    def _crps(self, y: NDArray[np.float64]) -> NDArray[np.float64]:
        """``crps`` of all the sources at once."""

    def mode(self) -> NDArray[np.float64]:
        """Most probable redshift, shape [N] (computed :data:`ROW_BLOCK` sources at a time)."""
        return self._by_rows(lambda block, _: block._mode())

    def crps(self, z_true: ArrayLike) -> NDArray[np.float64]:
        """Continuous ranked probability score ∫ (F(z) − 1[z ≥ z_true])² dz, shape [N].

        Computed :data:`ROW_BLOCK` sources at a time.
        """
        y = np.asarray(z_true, dtype=np.float64)
        if y.shape != (len(self),):
            raise ValueError(f"z_true must have shape ({len(self)},), not {y.shape}")
        return self._by_rows(lambda block, rows: block._crps(y[rows]))

    def _by_rows(self, fn: Callable[[RedshiftPDF, slice], NDArray[np.float64]]) -> NDArray[np.float64]:
        """``fn(block, rows)`` over blocks of at most :data:`ROW_BLOCK` sources, concatenated."""
        if len(self) <= ROW_BLOCK:
            return fn(self, slice(None))
        rows = [slice(i, i + ROW_BLOCK) for i in range(0, len(self), ROW_BLOCK)]
        return np.concatenate([fn(self.subset(r), r) for r in rows])

    def _as_2d(self, z: ArrayLike) -> tuple[NDArray[np.float64], bool]:
        z = np.asarray(z, dtype=np.float64)
        if z.ndim == 1 and z.shape[0] == len(self):
            return z[:, None], True
        if z.ndim == 2 and z.shape[0] in (1, len(self)):
            return z, False
        raise ValueError(f"z must have shape [N], [N, M] or [1, M] with N = {len(self)}, not {z.shape}")


class GaussianMixturePDF(RedshiftPDF):
    """Gaussian mixtures, one per source.

    Parameters
    ----------
    weights, means, sigmas
        Shape [N, K]. Weights are normalised to sum to one per source; components of zero
        weight are ignored (their mean and sigma may be anything, NaN included). A source with
        a non-finite weight, or a non-finite mean or sigma in a weighted component, gets NaN
        results.
    """

    def __init__(self, weights: ArrayLike, means: ArrayLike, sigmas: ArrayLike) -> None:
        w, mu, sig = (np.asarray(a, dtype=np.float64) for a in (weights, means, sigmas))
        if w.ndim != 2 or mu.shape != w.shape or sig.shape != w.shape:
            raise ValueError(
                f"weights, means and sigmas must share a shape [N, K]: {w.shape}, {mu.shape}, {sig.shape}"
            )
        if np.any(w < 0) or np.any(sig[w > 0] <= 0):
            raise ValueError("mixture weights must be >= 0 and weighted sigmas > 0")
        unused = w == 0
        with np.errstate(invalid="ignore", divide="ignore"):  # all-zero weights: NaN source
            self.weights = w / w.sum(axis=1, keepdims=True)  # (N, K)
        self.means = np.where(unused, 0.0, mu)  # (N, K)
        self.sigmas = np.where(unused, 1.0, sig)  # (N, K)
        self._finite = np.isfinite(self.weights).all(axis=1) & (
            np.isfinite(self.means) & np.isfinite(self.sigmas)
        ).all(axis=1)  # (N,): sources with a usable mixture

    def __len__(self) -> int:
        return self.weights.shape[0]

    def subset(self, index: ArrayLike) -> GaussianMixturePDF:
        return GaussianMixturePDF(self.weights[index], self.means[index], self.sigmas[index])

    @property
    def mixture(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """``(weights, means, sigmas)`` [N, K], as :mod:`distributed_pz.metrics.mixture` takes them."""
        return self.weights, self.means, self.sigmas

    def _points(self, z: ArrayLike) -> tuple[NDArray[np.float64], bool]:
        z2, squeeze = self._as_2d(z)
        return np.broadcast_to(z2, (len(self), z2.shape[1])), squeeze

    def _on_finite(self, fn: Callable[..., NDArray[np.float64]], *args: Any) -> NDArray[np.float64]:
        """``fn(weights, means, sigmas, *args)`` [N] on the usable sources, NaN on the others."""
        out = np.full(len(self), np.nan)
        rows = self._finite
        if rows.any():
            out[rows] = fn(self.weights[rows], self.means[rows], self.sigmas[rows], *args)
        return out

    def pdf(self, z: ArrayLike) -> NDArray[np.float64]:
        z2, squeeze = self._points(z)
        out = mixture.pdf(z2, *self.mixture)
        return out[:, 0] if squeeze else out

    def cdf(self, z: ArrayLike) -> NDArray[np.float64]:
        z2, squeeze = self._points(z)
        out = mixture.cdf(z2, *self.mixture)
        return out[:, 0] if squeeze else out

    def quantile(self, q: float) -> NDArray[np.float64]:
        """Quantile (:func:`distributed_pz.metrics.mixture.quantiles`: safeguarded Newton)."""
        if not 0 <= q <= 1:
            raise ValueError(f"q must lie in [0, 1], not {q}")
        return self._on_finite(lambda w, mu, sd: mixture.quantiles(w, mu, sd, (q,))[:, 0])

    def mean(self) -> NDArray[np.float64]:
        return mixture.moments(*self.mixture)[0]

    def std(self) -> NDArray[np.float64]:
        return mixture.moments(*self.mixture)[1]

    def _mode(self) -> NDArray[np.float64]:
        """Highest mode (:func:`distributed_pz.metrics.mixture.mode`, as the catalogues' ``z_phot``)."""
        return self._on_finite(mixture.mode)

    def _crps(self, y: NDArray[np.float64]) -> NDArray[np.float64]:
        """Closed-form CRPS of a Gaussian mixture (Grimit et al. 2006, eq. 5).

        CRPS = Σ_k w_k A(y − μ_k, σ_k²) − ½ Σ_kl w_k w_l A(μ_k − μ_l, σ_k² + σ_l²), with
        A(μ, σ²) = 2σ φ(μ/σ) + μ (2Φ(μ/σ) − 1).
        """

        from scipy.special import ndtr  # imported when first needed: 0.15 s of dpz predict's start (issue 25)

        def a(mu: NDArray[np.float64], var: NDArray[np.float64]) -> NDArray[np.float64]:
            s = np.sqrt(var)
            return 2.0 * s * _normal_pdf(mu / s) + mu * (2.0 * ndtr(mu / s) - 1.0)

        w, mu, var = self.weights, self.means, self.sigmas**2
        first = np.sum(w * a(y[:, None] - mu, var), axis=1)
        pair_w = w[:, :, None] * w[:, None, :]  # (N, K, K)
        pair = a(mu[:, :, None] - mu[:, None, :], var[:, :, None] + var[:, None, :])
        return first - 0.5 * np.sum(pair_w * pair, axis=(1, 2))


class GridPDF(RedshiftPDF):
    """Densities tabulated on a fixed redshift grid, linear between grid points.

    Parameters
    ----------
    z_grid
        Strictly increasing redshifts, shape [G], G ≥ 2.
    density
        Non-negative densities, shape [N, G]; each row is normalised to unit integral
        (trapezoid rule, exact for a piecewise-linear density). Rows with a non-finite value or
        zero integral give NaN results.
    """

    def __init__(self, z_grid: ArrayLike, density: ArrayLike) -> None:
        z = np.asarray(z_grid, dtype=np.float64)
        f = np.asarray(density, dtype=np.float64)
        if z.ndim != 1 or z.size < 2 or np.any(np.diff(z) <= 0):
            raise ValueError("z_grid must be a strictly increasing 1-D array of at least two values")
        if f.ndim != 2 or f.shape[1] != z.size:
            raise ValueError(f"density must have shape [N, {z.size}], not {f.shape}")
        if np.any(f < 0):
            raise ValueError("densities must be >= 0")
        self.z_grid = z
        self._h = np.diff(z)  # (G-1,)
        mass = self._h * 0.5 * (f[:, :-1] + f[:, 1:])  # (N, G-1)
        total = mass.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.density = f / np.where(total > 0, total, np.nan)  # (N, G)
            mass = mass / np.where(total > 0, total, np.nan)
        self._cdf_nodes = np.concatenate([np.zeros((f.shape[0], 1)), np.cumsum(mass, axis=1)], axis=1)

    def __len__(self) -> int:
        return self.density.shape[0]

    def subset(self, index: ArrayLike) -> GridPDF:
        return GridPDF(self.z_grid, self.density[index])

    def _cell(self, z2: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Cell index and offset inside it (clipped to the grid) of redshifts [N or 1, M]."""
        idx = np.clip(np.searchsorted(self.z_grid, z2, side="right") - 1, 0, self.z_grid.size - 2)
        t = np.clip(z2 - self.z_grid[idx], 0.0, self._h[idx])
        return np.broadcast_to(idx, (len(self), z2.shape[1])), np.broadcast_to(t, (len(self), z2.shape[1]))

    def _coefficients(self, idx: NDArray[np.intp]) -> tuple[NDArray[np.float64], ...]:
        """Per cell: F(z_i + t) = c + b t + a t², with the cell width h."""
        f0 = np.take_along_axis(self.density, idx, axis=1)
        f1 = np.take_along_axis(self.density, idx + 1, axis=1)
        h = self._h[idx]
        c = np.take_along_axis(self._cdf_nodes, idx, axis=1)
        return c, f0, (f1 - f0) / (2.0 * h), h

    def pdf(self, z: ArrayLike) -> NDArray[np.float64]:
        z2, squeeze = self._as_2d(z)
        idx, t = self._cell(z2)
        _, b, a, _ = self._coefficients(idx)
        inside = (z2 >= self.z_grid[0]) & (z2 <= self.z_grid[-1])
        out = np.where(inside, b + 2.0 * a * t, 0.0)
        return out[:, 0] if squeeze else out

    def cdf(self, z: ArrayLike) -> NDArray[np.float64]:
        z2, squeeze = self._as_2d(z)
        idx, t = self._cell(z2)
        c, b, a, _ = self._coefficients(idx)
        out = c + b * t + a * t * t
        out = np.where(z2 < self.z_grid[0], 0.0, np.where(z2 >= self.z_grid[-1], 1.0, out))
        out = np.where(np.isnan(self._cdf_nodes[:, -1:]), np.nan, out)
        return out[:, 0] if squeeze else out

    def quantile(self, q: float) -> NDArray[np.float64]:
        """Exact inverse of the piecewise-quadratic CDF."""
        if not 0 <= q <= 1:
            raise ValueError(f"q must lie in [0, 1], not {q}")
        idx = np.clip(np.sum(self._cdf_nodes < q, axis=1) - 1, 0, self.z_grid.size - 2)[:, None]
        c, b, a, h = self._coefficients(idx)
        rest = q - c
        root = np.sqrt(np.maximum(b * b + 4.0 * a * rest, 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(b + root > 0, 2.0 * rest / (b + root), 0.0)
        out = self.z_grid[idx] + np.clip(t, 0.0, h)
        return np.where(np.isnan(c), np.nan, out)[:, 0]

    def _moment(self, power: int) -> NDArray[np.float64]:
        """∫ z^power f(z) dz, exact for a piecewise-linear f (power 1 or 2)."""
        z0, z1 = self.z_grid[:-1], self.z_grid[1:]
        f0, f1 = self.density[:, :-1], self.density[:, 1:]
        if power == 1:
            cell = self._h / 6.0 * (f0 * (2 * z0 + z1) + f1 * (z0 + 2 * z1))
        else:
            cell = (
                self._h
                / 12.0
                * (f0 * (3 * z0**2 + 2 * z0 * z1 + z1**2) + f1 * (z0**2 + 2 * z0 * z1 + 3 * z1**2))
            )
        return cell.sum(axis=1)

    def mean(self) -> NDArray[np.float64]:
        return self._moment(1)

    def std(self) -> NDArray[np.float64]:
        return np.sqrt(np.maximum(self._moment(2) - self._moment(1) ** 2, 0.0))

    def _mode(self) -> NDArray[np.float64]:
        """The grid point of highest density (exact for a piecewise-linear density)."""
        out = self.z_grid[np.argmax(np.nan_to_num(self.density, nan=-1.0), axis=1)]
        return np.where(np.isnan(self._cdf_nodes[:, -1]), np.nan, out)

    def _crps(self, y: NDArray[np.float64]) -> NDArray[np.float64]:
        """Exact CRPS of the piecewise-linear density.

        With ỹ the truth clipped to the grid [z_0, z_G]:
        CRPS = ∫ F² − 2 ∫_ỹ^{z_G} F + (z_G − ỹ) + |y − ỹ|, each integral summed in closed form
        over the cells where F(z_i + t) = c + b t + a t².
        """
        all_cells = np.broadcast_to(np.arange(self.z_grid.size - 1), (len(self), self.z_grid.size - 1))
        c, b, a, h = self._coefficients(all_cells)
        f_squared = np.sum(
            c * c * h + c * b * h**2 + (b * b + 2 * a * c) * h**3 / 3 + a * b * h**4 / 2 + a * a * h**5 / 5,
            axis=1,
        )
        f_total = np.sum(c * h + b * h**2 / 2 + a * h**3 / 3, axis=1)
        y_in = np.clip(y, self.z_grid[0], self.z_grid[-1])
        idx, t = self._cell(y_in[:, None])
        cy, by, ay, _ = self._coefficients(idx)
        cum_cells = np.concatenate(
            [np.zeros((len(self), 1)), np.cumsum(c * h + b * h**2 / 2 + a * h**3 / 3, axis=1)], axis=1
        )
        f_below = np.take_along_axis(cum_cells, idx, axis=1) + cy * t + by * t**2 / 2 + ay * t**3 / 3
        return f_squared - 2.0 * (f_total - f_below[:, 0]) + (self.z_grid[-1] - y_in) + np.abs(y - y_in)


def pit(pdf: RedshiftPDF, z_spec: ArrayLike) -> NDArray[np.float64]:
    """Probability integral transform, F(z_spec) per source (DEEPZ eq. 6)."""
    return pdf.cdf(z_spec)


def pit_histogram(pit_values: ArrayLike, n_bins: int = 20) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Histogram of PIT values on [0, 1], normalised as a density (1 everywhere if uniform).

    Returns
    -------
    density, edges
        Shapes [n_bins] and [n_bins + 1].
    """
    pit_values = np.asarray(pit_values, dtype=np.float64)
    counts, edges = np.histogram(pit_values, bins=n_bins, range=(0.0, 1.0))
    return counts * n_bins / max(pit_values.size, 1), edges


def ks_statistic(pit_values: ArrayLike, weights: ArrayLike | None = None) -> float:
    """Kolmogorov–Smirnov distance of the PIT values from U(0, 1); ``weights`` make the ECDF a
    weighted one (a calibration sample reweighted to the sample it is applied to)."""
    pit_values = np.asarray(pit_values, dtype=np.float64)
    if weights is None:
        u = np.sort(pit_values)
        n = u.size
        i = np.arange(1, n + 1)
        return float(max(np.max(i / n - u), np.max(u - (i - 1) / n)))
    order = np.argsort(pit_values)
    u, w = pit_values[order], np.asarray(weights, dtype=np.float64)[order]
    upper = np.cumsum(w) / w.sum()
    return float(max(np.max(upper - u), np.max(u - (upper - w / w.sum()))))


def cvm_statistic(pit_values: ArrayLike) -> float:
    """Cramér–von Mises W² of the PIT values against U(0, 1)."""
    u = np.sort(np.asarray(pit_values, dtype=np.float64))
    n = u.size
    return float(1.0 / (12 * n) + np.sum(((2 * np.arange(1, n + 1) - 1) / (2 * n) - u) ** 2))


def ad_statistic(pit_values: ArrayLike) -> float:
    """Anderson–Darling A² of the PIT values against U(0, 1).

    A² = −n − (1/n) Σ (2i − 1) [ln u_(i) + ln(1 − u_(n+1−i))], with the values clipped to
    [:data:`PIT_CLIP`, 1 − :data:`PIT_CLIP`] so that a PIT of exactly 0 or 1 stays finite.
    """
    u = np.clip(np.sort(np.asarray(pit_values, dtype=np.float64)), PIT_CLIP, 1 - PIT_CLIP)
    n = u.size
    i = np.arange(1, n + 1)
    return float(-n - np.sum((2 * i - 1) * (np.log(u) + np.log1p(-u[::-1]))) / n)


def pit_uniformity(pit_values: ArrayLike) -> dict[str, float]:
    """KS, CvM and AD statistics of the PIT values against U(0, 1), and the KS p-value.

    For large samples the p-value of any real PDF is ~0; the statistics are the comparable numbers.
    """
    pit_values = np.asarray(pit_values, dtype=np.float64)
    ks = ks_statistic(pit_values)
    return {
        "ks": ks,
        "ks_pvalue": float(_kstwo().sf(ks, pit_values.size)),
        "cvm": cvm_statistic(pit_values),
        "ad": ad_statistic(pit_values),
    }


def pit_coverage(pit_values: ArrayLike, level: float, weights: ArrayLike | None = None) -> float:
    """Fraction of sources whose z_spec lies in the central ``level`` credible interval of its PDF
    (a ``weights``-weighted fraction where given).

    Equivalent to ``quantile((1 − level)/2) ≤ z_spec ≤ quantile((1 + level)/2)``, read from the
    PIT: |PIT − ½| ≤ level/2. A calibrated PDF gives ``level``.
    """
    pit_values = np.asarray(pit_values, dtype=np.float64)
    return float(np.average(np.abs(pit_values - 0.5) <= 0.5 * level, weights=weights))


def odds(
    pdf: RedshiftPDF, interval: float = DEFAULT_ODDS_INTERVAL, mode: ArrayLike | None = None
) -> NDArray[np.float64]:
    """ODDS (DEEPZ eq. 7): probability within ``z_mode ± interval / 2``, as in the catalogues.

    Parameters
    ----------
    pdf
        The PDFs.
    interval
        Full width Δz of the window (:data:`~distributed_pz.metrics.mixture.DEFAULT_ODDS_INTERVAL`
        = 0.06 by default, the catalogues' default; DEEPZ uses 0.003 for narrow bands).
    mode
        The window centres, shape [N] (a catalogue's ``z_phot``); the PDFs' modes otherwise.

    Returns
    -------
    numpy.ndarray
        ODDS in [0, 1], shape [N]; for a Gaussian mixture exactly
        :func:`distributed_pz.metrics.mixture.odds`.
    """
    z0 = pdf.mode() if mode is None else np.asarray(mode, dtype=np.float64)
    if isinstance(pdf, GaussianMixturePDF):
        return mixture.odds(z0, interval, *pdf.mixture)
    half = np.full_like(z0, interval / 2)
    return np.clip(pdf.cdf(z0 + half) - pdf.cdf(z0 - half), 0.0, 1.0)


def to_qp(pdf: RedshiftPDF) -> Any:
    """The PDFs as a ``qp.Ensemble`` (``qp.mixmod`` or ``qp.interp``); needs ``qp-prob`` installed."""
    try:
        import qp
    except ImportError as exc:
        raise ImportError("to_qp needs the optional 'qp' package: pip install 'distributed_pz[qp]'") from exc
    if isinstance(pdf, GaussianMixturePDF):
        return qp.Ensemble(qp.mixmod, data={"weights": pdf.weights, "means": pdf.means, "stds": pdf.sigmas})
    if isinstance(pdf, GridPDF):
        return qp.Ensemble(qp.interp, data={"xvals": pdf.z_grid, "yvals": pdf.density})
    raise TypeError(f"no qp export for {type(pdf).__name__}")


def _kstwo():
    """scipy's KS distribution, imported when first needed (``scipy.stats`` costs 0.6 s at start-up)."""
    from scipy.stats import kstwo

    return kstwo
