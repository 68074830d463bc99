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
more stars, the better (a simulated 10k-source tile has ~150 usable stars; a KiDS tile thousands). Colours fix the offsets up to one grey term common to every band; it is set so the
offsets average zero (a grey zero point does not change a colour, and moves a magnitude by as
much as it moves every other). Subtracting the offsets from the tile's magnitudes (and scaling
its fluxes) makes its photometry homogeneous with the training tiles'
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
    """

    bands: tuple[str, ...]
    nodes: tuple[tuple[float, ...], ...]
    width: tuple[float, ...]
    n_stars: int

    @classmethod
    def fit(cls, mag: np.ndarray, mag_err: np.ndarray, bands: Sequence[str]) -> StellarLocus:
        """The locus of stars with magnitudes ``mag`` ``(N, B)`` (errors ``mag_err``) in ``bands``."""
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
        return cls(tuple(bands), _rows(nodes), tuple(map(float, np.maximum(width, 1e-3))), len(colours))

    def offsets(self, mag: np.ndarray, mag_err: np.ndarray) -> np.ndarray:
        """Per-band zero-point offsets ``(B,)`` [mag] of the tile whose stars have ``mag``, ``mag_err``.

        Raises
        ------
        TooFewStars
            Fewer than :data:`MIN_STARS` stars measured in every band to :data:`MAX_MAG_ERR`.
        """
        colours = _usable_colours(mag, mag_err)
        if len(colours) < MIN_STARS:
            raise TooFewStars(f"{len(colours)} well-measured stars; at least {MIN_STARS} are needed")
        width = np.asarray(self.width)
        curve, scaled = self._dense() / width, colours / width
        shift = np.zeros(colours.shape[1])
        for _ in range(MAX_ITERATIONS):
            moved = scaled - shift
            step = np.median(moved - curve[_nearest(moved, curve)], axis=0)
            shift += step
            if np.abs(step * width).max() < TOLERANCE_MAG:
                break
        shift = shift * width
        return colour_to_band_offsets(shift)

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
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StellarLocus:
        return cls(tuple(d["bands"]), _rows(d["nodes"]), tuple(map(float, d["width"])), int(d["n_stars"]))


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
