"""The seeing of a simulated tile: different on every tile, varying smoothly across it.

Each tile's PSF FWHM per band is the survey's nominal value times a log-normal factor
(σ = ``tile_scatter``; KiDS r ranges over ≈ 0.6–0.9″ between tiles); across the tile it varies
as ``1 + a (c₁ x + c₂ y + c₃ (x² + y² − 2/3) + c₄ x y) / 2``, x, y ∈ [−1, 1] the position in the
tile and c ~ N(0, 1) per band (focal-plane and stacking variations of ≈ ``a`` = 5 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PsfField:
    """A tile's seeing.

    Attributes
    ----------
    tile_fwhm
        The tile's FWHM at its centre per band [arcsec], shape ``(B,)``.
    coefficients
        Spatial-pattern coefficients per band, shape ``(B, 4)``.
    amplitude
        Relative amplitude of the across-tile variation.
    """

    tile_fwhm: np.ndarray
    coefficients: np.ndarray
    amplitude: float

    @classmethod
    def draw(
        cls, rng: np.random.Generator, nominal: np.ndarray, tile_scatter: float, amplitude: float
    ) -> PsfField:
        """A tile's seeing around the ``nominal`` FWHM per band [arcsec]."""
        nominal = np.asarray(nominal, dtype=np.float64)
        factor = np.exp(rng.normal(0.0, tile_scatter, len(nominal)))
        return cls(nominal * factor, rng.normal(0.0, 1.0, (len(nominal), 4)), amplitude)

    def fwhm(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """FWHM [arcsec] per source and band at tile positions ``x, y`` ∈ [−1, 1], shape ``(N, B)``."""
        basis = np.stack([x, y, x**2 + y**2 - 2.0 / 3.0, x * y], axis=1)  # (N, 4)
        pattern = 1.0 + 0.5 * self.amplitude * (basis @ self.coefficients.T)
        return self.tile_fwhm[None, :] * np.clip(pattern, 0.7, 1.3)
