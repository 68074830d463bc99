"""Images (catalogue vs cutout errors, RF gain from moments) and speed."""

from __future__ import annotations

import time
from pathlib import Path
from unittest import mock

import numpy as np

from benchmarks.harness import load_average, time_runs
from benchmarks.simulator_realism.common import Sample, features, forest, nmad, outliers
from distributed_pz.survey.sim import images
from distributed_pz.survey.sim.simulate import (
    SimulationConfig,
    _TileSimulator,
)
from distributed_pz.survey.sim.simulate_cli import write_simulated_tile
from distributed_pz.survey.store.schema import FLAG_NOT_DETECTED
from distributed_pz.survey.store.store import open_store


def image_moments(cutout: np.ndarray) -> np.ndarray:
    """r-band light moments ``(N, 5)``: r50, r20/r80 ratio, concentration, ellipticity, central 2″ fraction."""
    size = cutout.shape[-1]
    yy, xx = np.mgrid[:size, :size] - size // 2
    rr = np.hypot(xx, yy)
    img = np.clip(cutout, 0, None) * (rr < 12)
    total = img.sum(axis=(1, 2)) + 1e-9
    radii = np.arange(1, 13)
    growth = np.stack([(img * (rr < r)).sum(axis=(1, 2)) for r in radii], axis=1) / total[:, None]
    r20, r50, r80 = (np.array([np.interp(f, g, radii) for g in growth]) for f in (0.2, 0.5, 0.8))
    mxx, myy, mxy = ((img * m).sum(axis=(1, 2)) / total for m in (xx * xx, yy * yy, xx * yy))
    ellip = np.hypot(mxx - myy, 2 * mxy) / (mxx + myy + 1e-9)
    return np.stack([r50, r20 / r80, np.log10(r80 / r20), ellip, growth[:, 4]], axis=1)


def aperture_flux(cutout: np.ndarray, radius_px: float) -> np.ndarray:
    size = cutout.shape[-1]
    yy, xx = np.mgrid[:size, :size] - size // 2
    return (cutout * (np.hypot(xx, yy) < radius_px)).sum(axis=(-2, -1))


def _no_noise(rng, weights: np.ndarray, response: np.ndarray, *args) -> np.ndarray:
    """Stand-in for :func:`images.conditioned_noise` that adds nothing."""
    return np.zeros((*response.shape, *weights.shape[1:]), dtype=np.float32)


def tile_with_noiseless(config: SimulationConfig) -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """Arrays, truth, cutouts and the same cutouts without noise (the conditioned noise set to 0)."""
    sim = _TileSimulator(config)
    parts = []
    for g in range(config.n_groups):
        arrays, truth = sim.catalogue(g)
        noisy = sim.cutouts(g, arrays, truth)
        with mock.patch.object(images, "conditioned_noise", _no_noise):
            clean = sim.cutouts(g, arrays, truth)
        parts.append((arrays, truth, noisy, clean))
    merged = [{k: np.concatenate([p[i][k] for p in parts]) for k in parts[0][i]} for i in (0, 1)]
    return merged[0], merged[1], np.concatenate([p[2] for p in parts]), np.concatenate([p[3] for p in parts])


def image_checks(n: int) -> dict:
    """Catalogue vs cutout-aperture error correlation; RF gain from r-band moments (another tile for the test)."""
    out: dict = {}
    samples = []
    for seed in (401, 402):
        config = SimulationConfig(n_sources=n, seed=seed, star_fraction=0.0, qso_fraction=0.0)
        arrays, truth, noisy, clean = tile_with_noiseless(config)
        r = 2
        flux_cat = 10 ** (-0.4 * (arrays["mag"][:, r].astype(float) - 30))
        err_cat = flux_cat - truth["flux_signal"][:, r]
        err_ap = aperture_flux(noisy[:, r], 5.0) - aperture_flux(clean[:, r], 5.0)
        faint = (arrays["mag"][:, r] > 21) & (arrays["mag"][:, r] < 23) & np.isfinite(err_cat)
        if seed == 401:
            out["image_error_correlation_21_23"] = float(np.corrcoef(err_cat[faint], err_ap[faint])[0, 1])
            bright = (arrays["mag"][:, r] > 18) & (arrays["mag"][:, r] < 21) & np.isfinite(err_cat)
            out["image_error_correlation_18_21"] = float(np.corrcoef(err_cat[bright], err_ap[bright])[0, 1])
        flag = arrays["mag_flag"]
        limit = np.where(flag == FLAG_NOT_DETECTED, arrays["mag_err"], np.nan)
        s = Sample(arrays["mag"], arrays["mag_err"], arrays["z_spec"].astype(float), limit)
        samples.append((s, image_moments(noisy[:, r])))
    (train, m_train), (test, m_test) = samples
    for name, extra in (("catalogue", (None, None)), ("moments", (m_train, m_test))):
        z_p = forest(features(train, extra[0]), train.z)(features(test, extra[1]))
        low = test.z < 0.8
        out[f"image_rf_{name}_nmad_lowz"] = nmad(z_p[low], test.z[low])
        out[f"image_rf_{name}_outliers_lowz"] = outliers(z_p[low], test.z[low])
        out[f"image_rf_{name}_nmad_highz"] = nmad(z_p[~low], test.z[~low])
    out["image_rf_gain"] = 1 - out["image_rf_moments_nmad_lowz"] / out["image_rf_catalogue_nmad_lowz"]
    return out


def speed(n: int, workers: int) -> dict:
    """Wall-clock and CPU-time rate of a tile with cutouts (threads: process time counts every worker)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        url = str(Path(tmp) / "sim.zarr")

        cpu: list[float] = []

        def once() -> None:
            shutil.rmtree(url, ignore_errors=True)
            started = time.process_time()
            write_simulated_tile(open_store(url, "a"), SimulationConfig(n_sources=n), workers=workers)
            cpu.append(time.process_time() - started)

        timing = time_runs(once, warmup=1, repeats=1)
    return {
        "speed_sources_per_s": n / timing["median_s"],
        "speed_sources_per_cpu_s": n / cpu[-1],
        "speed_n": n,
        "speed_workers": workers,
        **load_average(),
    }
