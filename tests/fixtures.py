"""Builders of test data, in one place: tiny schema-valid tiles, learnable tiles, tiny models,
bundles, ensembles and stores. ``conftest.py`` turns the ones tests share into fixtures.

The learnable tile: a 4000 Å break moves through the nine KiDS+VIKING bands with redshift, so
colours carry z; the optical bands alone lose it once the break passes i (z ≳ 1), which makes 9
bands better than 4. Cutouts are round Gaussians whose size shrinks with z; exposures scatter
around the true flux.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from distributed_pz.bands import KIDS_VIKING
from distributed_pz.models.bundle import Bundle, make_bundle, save_bundle
from distributed_pz.models.calibration import Calibration
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.inputs import batch_tensors, fit_feature_stats
from distributed_pz.models.locus import StellarLocus
from distributed_pz.models.registry import build_model, model_config
from distributed_pz.survey.store.store import open_store
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train.member import TrainConfig, train_member
from distributed_pz.train.plan import make_plan


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


def trained_members(name: str, seeds: tuple[int, ...], rows: int = 200) -> list[Bundle]:
    """Tiny members trained for one epoch with the model zoo's ``train_member``."""
    tile = learnable_tile(rows, seed=0)
    config = tiny_config(name)
    train = TrainConfig(epochs=1, batch_size=64)
    return [train_member(config, tile, seed, train_config=train).bundle for seed in seeds]


def fresh_members(name: str, seeds: tuple[int, ...], rows: int = 200, **overrides) -> list[Bundle]:
    """Tiny freshly initialised members (real weights, feature statistics fitted on a tile);
    ``overrides`` replace config fields (e.g. ``head="mdn"``)."""
    tile = learnable_tile(rows, seed=0)
    members = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = build_model(tiny_config(name, **overrides))
        stats = fit_feature_stats(model.input_spec, batch_tensors(tile, model.input_spec))
        members.append(make_bundle(model, stats, tile.bands, tile.image_bands))
    return members


def save_ensemble(
    root: Path,
    bundles: list[Bundle],
    calibration: Calibration | None = None,
    locus: StellarLocus | None = None,
) -> str:
    """Write ``bundles`` (and ``calibration``, ``locus``) as an ensemble directory (one split,
    ``len(bundles)`` folds); returns its hash."""
    plan = make_plan(np.arange(10 * len(bundles)), n_splits=1, n_folds=len(bundles), seed=3)
    plan.save(root)
    ensemble = EnsembleDir(root)
    for spec, bundle in zip(plan.members, bundles, strict=True):
        save_bundle(ensemble.member(spec.member_id), bundle)
    entry = ensemble.save_calibration(calibration) if calibration else None
    locus_entry = ensemble.save_locus(locus) if locus else None
    store = {"url": "test", "hash": "test"}
    return ensemble.write_manifest(
        plan, {"model": bundles[0].model_name}, store, calibration=entry, locus=locus_entry
    )


def star_magnitudes(n: int, seed: int, offsets: np.ndarray | None = None) -> np.ndarray:
    """``(n, 9)`` KiDS+VIKING magnitudes of stars on a bent one-parameter locus, with zero-point ``offsets``."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, (n, 1))
    k = np.arange(8)[None, :]
    colours = (
        0.2 + 0.6 * np.sin(2.0 * t + 0.4 * k) * (1 + 0.3 * k / 8) + 0.3 * t**2
    )  # (n, 8) adjacent colours
    ref = rng.uniform(16.0, 19.0, (n, 1))
    mag = ref + np.concatenate([np.zeros((n, 1)), -np.cumsum(colours, axis=1)], axis=1)
    return mag + (0.0 if offsets is None else offsets) + rng.normal(0, 0.01, mag.shape)


def write_store(
    url: str, n_tiles: int, n_rows: int, chunk_rows: int = 64, shard_rows: int = 128
) -> list[str]:
    """A store of ``n_tiles`` schema-valid tiles ``T0, T1, ...`` with distinct object ids."""
    store = open_store(url, "a")
    names = []
    for i in range(n_tiles):
        arrays, attrs = make_tile_arrays(n_rows, seed=i)
        arrays["object_id"] = arrays["object_id"] + 100_000 * i
        store.write_tile(f"T{i}", arrays, attrs, chunk_rows=chunk_rows, shard_rows=shard_rows)
        names.append(f"T{i}")
    return names


def with_ids(tile: TileArrays) -> TileArrays:
    """A :func:`learnable_tile` with the passthrough columns a catalogue needs."""
    n = tile.n_rows
    arrays = {**tile.arrays, "object_id": np.arange(n, dtype=np.int64), "ra": np.zeros(n), "dec": np.zeros(n)}
    return TileArrays(arrays, tile.bands, tile.image_bands, tile.zeropoints)
