"""Shared fixtures: tiny synthetic tiles, deterministic, no simulator needed."""

from __future__ import annotations

import numpy as np
import pytest

from distributed_pz.bands import KIDS_VIKING


def make_tile_arrays(n: int = 300, n_exp: int = 3, seed: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """Random but schema-valid arrays and attributes for a KiDS+VIKING tile of ``n`` rows."""
    rng = np.random.default_rng(seed)
    bands, image_bands = KIDS_VIKING.bands, KIDS_VIKING.image_bands
    nb = len(bands)
    mag = rng.uniform(18, 24, (n, nb)).astype(np.float32)
    arrays = {
        "object_id": np.arange(1000, 1000 + n, dtype=np.int64),
        "ra": rng.uniform(10, 11, n),
        "dec": rng.uniform(-1, 0, n),
        "mag": mag,
        "mag_err": rng.uniform(0.01, 0.2, (n, nb)).astype(np.float32),
        "mag_flag": np.zeros((n, nb), np.uint8),
        "cutout": rng.normal(size=(n, len(image_bands), 40, 40)).astype(np.float32),
        "flux_exp": rng.normal(100, 5, (n, nb, n_exp)).astype(np.float32),
        "flux_exp_err": np.full((n, nb, n_exp), 5, np.float32),
        "z_spec": rng.uniform(0, 3, n).astype(np.float32),
        "class": rng.integers(0, 3, n).astype(np.uint8),
    }
    attrs = {
        "band_set": KIDS_VIKING.name,
        "bands": list(bands),
        "image_bands": list(image_bands),
        "pixel_scale_arcsec": 0.2,
        "psf_fwhm_arcsec": {b: (0.7 if b == "r" else 1.0) for b in image_bands},
        "zeropoint": {b: 30.0 for b in bands},
    }
    return arrays, attrs


@pytest.fixture
def tile_arrays():
    return make_tile_arrays()
