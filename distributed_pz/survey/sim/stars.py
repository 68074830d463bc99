"""Stellar spectra for the simulator: blackbodies with analytic M-dwarf molecular bands.

A blackbody has the right continuum slope for F–K stars but misses the TiO/VO bands that make
M dwarfs much redder in r − i and i − z than any blackbody (a 3200 K blackbody has r − i = 0.75;
an M4 dwarf has ≈ 1.5). Below 4200 K the blackbody is multiplied by a band depression
``10^(−0.4 A(T) s(λ))``:

- ``A(T) = 2.15 (4200 K − T) / 1000 K`` mag, zero above 4200 K;
- ``s(λ)`` is 1 over 4500–6800 Å (TiO γ, γ′, α and ε systems), falls through the 7050–7700 Å TiO
  and 7400–7900 Å VO bands (0.8 at 7300 Å, 0.6 at 7700 Å), stays near 0.5 over the 8430–8860 Å
  TiO δ bands and the 9000–9400 Å region, 0.15 at 1.05 µm and 0 redward of 1.2 µm (near-infrared
  continuum nearly intact); 0.8 at 3000 Å.

Tuned (through the SDSS ugriz curves) to the SDSS stellar locus of Covey et al. (2007) and
West et al. (2011): it gives g − r, r − i, i − z = 1.14, 0.74, 0.48 at 3850 K (M0: 1.35, 0.80,
0.45), 1.29, 1.03, 0.70 at 3550 K (M2: 1.45, 1.10, 0.60), 1.51, 1.40, 0.96 at 3200 K
(M4: 1.50, 1.55, 0.85) and 1.78, 1.81, 1.25 at 2850 K (M6: 1.55, 2.10, 1.15). Documented analytic
colours, not real stellar spectra.
"""

from __future__ import annotations

import numpy as np

_BAND_DEPTH_T0 = 4200.0  # K, below which molecular bands appear
_BAND_DEPTH_PER_KK = 2.15  # mag per 1000 K below T0
_PROFILE_WAVE = np.array([3000.0, 4500.0, 6800.0, 7300.0, 7700.0, 8600.0, 9400.0, 10500.0, 12000.0])
_PROFILE_DEPTH = np.array([0.8, 1.0, 1.0, 0.8, 0.6, 0.55, 0.45, 0.15, 0.0])


def blackbody(wave: np.ndarray, temperature: np.ndarray | float) -> np.ndarray:
    """Planck f_λ (arbitrary units) at wavelength [Å] and temperature [K]; arrays broadcast."""
    x = 1.438777e8 / (np.asarray(wave, dtype=np.float64) * np.asarray(temperature, dtype=np.float64))
    return (wave / 5000.0) ** -5 / np.expm1(np.clip(x, None, 700.0))


def molecular_depth(temperature: np.ndarray | float) -> np.ndarray:
    """Depth A(T) [mag] of the M-dwarf molecular-band depression (0 above 4200 K)."""
    return (
        _BAND_DEPTH_PER_KK
        * np.clip(_BAND_DEPTH_T0 - np.asarray(temperature, dtype=np.float64), 0, None)
        / 1000
    )


def stellar_sed(wave: np.ndarray, temperature: float) -> np.ndarray:
    """f_λ of a star of effective ``temperature`` [K] at wavelength ``wave`` [Å] (arbitrary units)."""
    profile = np.interp(wave, _PROFILE_WAVE, _PROFILE_DEPTH, left=_PROFILE_DEPTH[0], right=0.0)
    return blackbody(wave, temperature) * 10.0 ** (-0.4 * molecular_depth(temperature) * profile)
