"""Stellar-locus regression: a tile's photometric zero points, measured from its own stars.

Stars of the Milky Way lie on a narrow, one-dimensional locus in colour space; a tile whose
zero points are off by ``δ_b`` in band ``b`` sees its stars' colours moved by
``δ_b - δ_{b+1}``, the whole locus with them (High et al. 2009; KiDS and DES homogenise their
photometry this way). :class:`StellarLocus` keeps the reference locus of the training tiles' stars
(the median colours along the locus's first principal axis); :meth:`StellarLocus.offsets` finds the
colour shift that puts a tile's stars back on it — each star matched to its nearest locus point
(colours in units of the locus's width), the shift moved by the median residual, repeated until it
settles — and turns it into per-band offsets. A shift along a straight stretch of the locus moves
no star off it and is not seen: the regression measures what the locus's bends constrain, and the
more stars, the better (a simulated 10k-source tile has ~150 usable stars; a KiDS tile thousands).
Colours fix the offsets up to one grey term common to every band; it is set so the offsets
average zero (a grey zero point does not change a colour, and moves a magnitude by as much as it
moves every other).

A tile's few stars measure some bands poorly — a ``u`` or ``Ks`` offset from 50 stars can be off
by 0.05-0.1 mag, several times the survey's calibration scatter — and applying such an estimate
would add more error than it removes. So the measured offsets are combined with what the survey's
calibration lets them be: with ``S`` their covariance (a bootstrap over the tile's stars) and
``T`` the prior covariance of a tile's offsets from the training tiles' locus (the band set's
calibration scatter, :attr:`StellarLocus.prior_scatter`), the offsets applied are the posterior
mean ``T (T + S)⁺ δ̂``: a well-measured band keeps its estimate, a poorly measured one shrinks
towards the training tiles' zero points (on simulated 4 000-source tiles: rms error 0.026 mag
raw, 0.0055 after, 0.014 with no correction). Subtracting the offsets from the tile's magnitudes
(and scaling its fluxes) makes its photometry homogeneous with the training tiles'
(:func:`correct_photometry`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from distributed_pz.survey.store.schema import CLASS_STAR

MAX_MAG_ERR = 0.05
"""Stars used: every band measured to better than this [mag]."""
MIN_STARS = 30
"""Fewer usable stars than this and a tile's offsets are not measured."""
STARS_PER_NODE = 16
MAX_NODES = 32
"""Points of the reference locus: quantile bins of the principal colour, of 16 stars or more, 4 to 32."""
DENSITY = 24
"""Interpolated points between two nodes, for the nearest-point match."""
MAX_ITERATIONS = 100
TOLERANCE_MAG = 1e-4
BOOTSTRAP = 32
"""Resamples of a tile's stars for the covariance of its measured offsets (seeded: reproducible)."""


class TooFewStars(ValueError):
    """A tile has too few well-measured stars to measure its zero points from."""


@dataclass(frozen=True)
class StellarLocus:
    """The reference stellar locus of a band set's stars, in adjacent colours.

    Parameters
    ----------
    bands
        The bands, bluest first; colours are ``bands[k] - bands[k + 1]``.
    nodes
        ``(K, B - 1)`` median colours along the locus, in order.
    width
        ``(B - 1,)`` robust scatter of the stars about the locus in each colour: stars are matched
        to the locus in colours divided by it, so a wide, noisy colour (``u - g``) does not decide
        the match alone.
    n_stars
        Stars it was built from.
    reference_shift
        ``(B - 1,)`` the colour shift the regression finds for the training stars themselves; a
        tile's shift is measured from it (the median colours of bins along the principal axis are
        not where nearest-point residuals balance: on simulated KiDS stars they differ by up to
        0.025 mag, which would move every tile, the training tiles too, by as much).
    prior_scatter
        ``(B,)`` RMS of a tile's zero-point offset from the training tiles' [mag]: the band set's
        calibration scatter times ``sqrt(1 + 1/k)`` for ``k`` training tiles (their locus
        averages their own offsets). Empty: the measured offsets are applied as they are.
    """

    bands: tuple[str, ...]
    nodes: tuple[tuple[float, ...], ...]
    width: tuple[float, ...]
    n_stars: int
    reference_shift: tuple[float, ...] = ()
    prior_scatter: tuple[float, ...] = ()

    @classmethod
    def fit(
        cls,
        mag: np.ndarray,
        mag_err: np.ndarray,
        bands: Sequence[str],
        calibration_scatter: Sequence[float] = (),
        n_tiles: int = 1,
    ) -> StellarLocus:
        """The locus of stars with magnitudes ``mag`` ``(N, B)`` (errors ``mag_err``) in ``bands``,
        from ``n_tiles`` tiles of a survey whose zero points scatter by ``calibration_scatter``
        per band (empty: no prior, offsets applied as measured)."""
        colours = _usable_colours(mag, mag_err)
        if len(colours) < MIN_STARS:
            raise TooFewStars(f"{len(colours)} well-measured stars; a reference locus needs {MIN_STARS}")
        n_nodes = int(np.clip(len(colours) // STARS_PER_NODE, 4, MAX_NODES))
        centred = colours - colours.mean(axis=0)
        axis = np.linalg.svd(centred, full_matrices=False)[2][0]
        t = centred @ axis
        edges = np.quantile(t, np.linspace(0, 1, n_nodes + 1))
        which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, n_nodes - 1)
        nodes = np.array([np.median(colours[which == k], axis=0) for k in range(n_nodes)])
        unit = cls(tuple(bands), _rows(nodes), (1.0,) * colours.shape[1], len(colours))
        curve = unit._dense()
        residual = colours - curve[_nearest(colours, curve)]
        width = 1.4826 * np.median(np.abs(residual), axis=0)
        width = tuple(map(float, np.maximum(width, 1e-3)))
        raw = cls(tuple(bands), _rows(nodes), width, len(colours))
        reference = tuple(map(float, raw._colour_shift(colours, np.zeros(colours.shape[1]))))
        prior = tuple(float(t) * np.sqrt(1.0 + 1.0 / max(n_tiles, 1)) for t in calibration_scatter)
        return cls(tuple(bands), _rows(nodes), width, len(colours), reference, prior)

    def offsets(self, mag: np.ndarray, mag_err: np.ndarray) -> np.ndarray:
        """Per-band zero-point offsets ``(B,)`` [mag] of the tile whose stars have ``mag``, ``mag_err``:
        the posterior mean given :attr:`prior_scatter` (the measured offsets when it is empty).

        Raises
        ------
        TooFewStars
            Fewer than :data:`MIN_STARS` stars measured in every band to :data:`MAX_MAG_ERR`.
        """
        colours = _usable_colours(mag, mag_err)
        if len(colours) < MIN_STARS:
            raise TooFewStars(f"{len(colours)} well-measured stars; at least {MIN_STARS} are needed")
        reference = np.asarray(self.reference_shift or np.zeros(colours.shape[1]))
        shift = self._colour_shift(colours, reference)
        measured = colour_to_band_offsets(shift - reference)
        if not self.prior_scatter:
            return measured
        rng = np.random.default_rng(0)
        resampled = (colours[rng.integers(0, len(colours), len(colours))] for _ in range(BOOTSTRAP))
        draws = [colour_to_band_offsets(self._colour_shift(c, shift) - reference) for c in resampled]
        return posterior_offsets(measured, np.cov(np.array(draws).T), np.asarray(self.prior_scatter))

    def _colour_shift(self, colours: np.ndarray, start: np.ndarray) -> np.ndarray:
        """The colour shift that puts ``colours`` on the locus, iterated from ``start``."""
        width = np.asarray(self.width)
        curve, scaled = self._dense() / width, colours / width
        shift = start / width
        for _ in range(MAX_ITERATIONS):
            moved = scaled - shift
            step = np.median(moved - curve[_nearest(moved, curve)], axis=0)
            shift += step
            if np.abs(step * width).max() < TOLERANCE_MAG:
                break
        return shift * width

    def _dense(self) -> np.ndarray:
        nodes = np.asarray(self.nodes)
        s = np.linspace(0.0, 1.0, DENSITY, endpoint=False)
        segments = nodes[:-1, None, :] + s[None, :, None] * (nodes[1:] - nodes[:-1])[:, None, :]
        return np.concatenate([segments.reshape(-1, nodes.shape[1]), nodes[-1:]])

    @property
    def content_hash(self) -> str:
        """SHA-256 of the locus's JSON (sorted keys)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def tile_offsets(self, arrays: Mapping[str, np.ndarray], bands: Sequence[str]) -> dict[str, float]:
        """Band -> zero-point offset of a tile, from its stars (``class`` == star) in ``arrays``
        (``mag``, ``mag_err`` on the axis ``bands``); :class:`TooFewStars` if it has too few."""
        if "class" not in arrays:
            raise TooFewStars("the tile has no class array to find its stars by")
        axis = [list(bands).index(b) for b in self.bands]
        stars = np.asarray(arrays["class"]) == CLASS_STAR
        offsets = self.offsets(arrays["mag"][stars][:, axis], arrays["mag_err"][stars][:, axis])
        return dict(zip(self.bands, map(float, offsets), strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "bands": list(self.bands),
            "nodes": [list(n) for n in self.nodes],
            "width": list(self.width),
            "n_stars": self.n_stars,
            **({"reference_shift": list(self.reference_shift)} if self.reference_shift else {}),
            **({"prior_scatter": list(self.prior_scatter)} if self.prior_scatter else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StellarLocus:
        return cls(
            tuple(d["bands"]),
            _rows(d["nodes"]),
            tuple(map(float, d["width"])),
            int(d["n_stars"]),
            tuple(map(float, d.get("reference_shift", ()))),
            tuple(map(float, d.get("prior_scatter", ()))),
        )


def posterior_offsets(measured: np.ndarray, covariance: np.ndarray, prior_scatter: np.ndarray) -> np.ndarray:
    """``T (T + S)⁺ δ̂``: measured offsets ``δ̂`` (mean zero, covariance ``S``) combined with a prior of
    independent per-band offsets of RMS ``prior_scatter``, seen up to their mean (``T = P D² P``)."""
    n = len(measured)
    centre = np.eye(n) - 1.0 / n
    prior = centre @ np.diag(np.square(prior_scatter)) @ centre
    return prior @ np.linalg.pinv(prior + covariance, hermitian=True, rtol=1e-10) @ measured


def colour_to_band_offsets(colour_shift: np.ndarray) -> np.ndarray:
    """Band offsets ``δ`` (mean zero) whose adjacent differences ``δ_k - δ_{k+1}`` are ``colour_shift``."""
    delta = np.concatenate([[0.0], -np.cumsum(colour_shift)])
    return delta - delta.mean()


def correct_photometry(
    arrays: Mapping[str, np.ndarray], offsets: Mapping[str, float] | np.ndarray, bands: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """The tile's ``mag`` less the offsets, and its fluxes (``flux_exp``, ``flux_exp_err``) scaled to match.

    ``offsets`` per band on the arrays' band axis, or band -> offset for the axis ``bands`` (bands
    without an offset are left as they are).
    """
    out = dict(arrays)
    if isinstance(offsets, Mapping):
        offsets = np.array([offsets.get(b, 0.0) for b in bands])
    offsets = np.asarray(offsets, dtype=np.float64)
    if "mag" in arrays:
        out["mag"] = (arrays["mag"] - offsets).astype(arrays["mag"].dtype)
    scale = 10.0 ** (0.4 * offsets)[:, None]
    for name in ("flux_exp", "flux_exp_err"):
        if name in arrays:
            out[name] = (arrays[name] * scale).astype(arrays[name].dtype)
    return out


def _rows(array: Any) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(map(float, row)) for row in array)


def _usable_colours(mag: np.ndarray, mag_err: np.ndarray) -> np.ndarray:
    good = np.isfinite(mag).all(axis=1) & (np.nan_to_num(mag_err, nan=np.inf) < MAX_MAG_ERR).all(axis=1)
    m = np.asarray(mag[good], dtype=np.float64)
    return m[:, :-1] - m[:, 1:]


def _nearest(points: np.ndarray, curve: np.ndarray, block: int = 4096) -> np.ndarray:
    """Index of the curve point nearest to each point (Euclidean in colour space)."""
    out = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), block):
        p = points[start : start + block]
        d = ((p[:, None, :] - curve[None, :, :]) ** 2).sum(axis=2)
        out[start : start + block] = d.argmin(axis=1)
    return out
