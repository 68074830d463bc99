"""Tiny learnable tiles for model and training tests (no simulator needed).

A 4000 Å break moves through the nine KiDS+VIKING bands with redshift, so colours carry z; the
optical bands alone lose it once the break passes i (z ≳ 1), which makes 9 bands better than 4.
Cutouts are round Gaussians whose size shrinks with z; exposures scatter around the true flux.
"""

from __future__ import annotations

import numpy as np

from distributed_pz.bands import KIDS_VIKING
from distributed_pz.models.registry import model_config
from distributed_pz.survey.tiles import TileArrays

WAVELENGTH_UM = np.array([0.355, 0.475, 0.63, 0.77, 0.88, 1.02, 1.25, 1.65, 2.15])


def tiny_config(name: str, **overrides):
    """Registered model ``name`` with tiny widths (layer counts as in the paper; each family's
    ``tiny_overrides``)."""
    return model_config(name, **{**model_config(name).tiny_overrides(), **overrides})


def learnable_tile(n: int = 300, seed: int = 0, n_exp: int = 3, z_max: float = 2.0) -> TileArrays:
    """A KiDS+VIKING tile of ``n`` rows whose photometry and cutouts depend on ``z_spec``."""
    rng = np.random.default_rng(seed)
    bands, image_bands = KIDS_VIKING.bands, KIDS_VIKING.image_bands
    z = rng.uniform(0.05, z_max, n)
    red = rng.uniform(0.5, 1.5, n)  # break strength
    m_ref = rng.uniform(19.0, 22.0, n)
    break_um = 0.4 * (1 + z)
    step = 1.0 / (1.0 + np.exp(-(break_um[:, None] - WAVELENGTH_UM[None, :]) / 0.05))
    true_mag = m_ref[:, None] + 1.5 * red[:, None] * step  # (n, 9)
    true_flux = 10 ** (-0.4 * (true_mag - 30.0))
    err = 0.02 * true_flux
    flux_exp = true_flux[:, :, None] + err[:, :, None] * np.sqrt(n_exp) * rng.normal(
        size=(n, len(bands), n_exp)
    )
    flux_exp_err = np.broadcast_to(err[:, :, None] * np.sqrt(n_exp), flux_exp.shape).copy()
    drop = rng.random((n, len(bands), n_exp)) < 0.2
    drop[:, :, 0] = False
    flux_exp[drop], flux_exp_err[drop] = np.nan, np.nan
    mag = true_mag + rng.normal(0, 0.02, true_mag.shape)
    size = 6.0 / (1 + z)
    yy, xx = np.mgrid[:40, :40] - 19.5
    profile = np.exp(-0.5 * (xx**2 + yy**2)[None] / size[:, None, None] ** 2) / (
        2 * np.pi * size[:, None, None] ** 2
    )
    optical = true_flux[:, :4]
    cutout = optical[:, :, None, None] * profile[:, None] + rng.normal(0, 1.0, (n, 4, 40, 40))
    arrays = {
        "object_id": np.arange(n, dtype=np.int64),
        "mag": mag.astype(np.float32),
        "mag_err": np.full(mag.shape, 0.02, np.float32),
        "mag_flag": np.zeros(mag.shape, np.uint8),
        "cutout": cutout.astype(np.float32),
        "flux_exp": flux_exp.astype(np.float32),
        "flux_exp_err": flux_exp_err.astype(np.float32),
        "z_spec": z.astype(np.float32),
        "class": rng.choice([0, 0, 0, 1, 2, 255], n).astype(np.uint8),
    }
    return TileArrays(arrays, bands, image_bands, (30.0,) * len(bands))
