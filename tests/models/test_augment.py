"""Augmentations: cutout moves are exact pixel permutations; randomized coadds keep every band;
zero-point jitter moves each source's bands at the asked scatter."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from distributed_pz.models.augment import (
    jitter_zeropoints,
    move_cutouts,
    random_coadd,
    random_cutout_moves,
    random_keep_mask,
)
from distributed_pz.models.features import coadd_exposures

torch.set_num_threads(1)


def reference_move(x: torch.Tensor, rot: int, flip: bool, shift: tuple[int, int]) -> torch.Tensor:
    y = torch.flip(x, dims=(-1,)) if flip else x
    return torch.roll(torch.rot90(y, rot, dims=(-2, -1)), shifts=shift, dims=(-2, -1))


def test_moves_match_rot90_flip_roll():
    x = torch.randn(16, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    combos = list(itertools.product(range(4), (False, True), ((0, 0), (1, -2))))
    rot = torch.tensor([c[0] for c in combos])
    flip = torch.tensor([c[1] for c in combos])
    shift = torch.tensor([c[2] for c in combos])
    out = move_cutouts(x, rot, flip, shift)
    for k, (r, f, s) in enumerate(combos):
        assert torch.equal(out[k], reference_move(x[k], r, f, s)), (r, f, s)


def test_moves_are_exact_pixel_permutations():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, 40, 40, generator=gen)
    moves = random_cutout_moves(32, max_shift=3, generator=gen)
    out = move_cutouts(x, moves["rot"], moves["flip"], moves["shift"])
    assert torch.equal(out.flatten(2).sort(dim=2).values, x.flatten(2).sort(dim=2).values)
    # channels move together: the same permutation of pixel positions in every channel
    ids = torch.arange(40 * 40, dtype=torch.float32).view(1, 1, 40, 40).expand(32, 4, 40, 40)
    moved = move_cutouts(ids.contiguous(), moves["rot"], moves["flip"], moves["shift"])
    assert (moved == moved[:, :1]).all()
    assert torch.equal(out, x.flatten(2).gather(2, moved.long().flatten(2)).view_as(x))


def test_identity_move_and_shift_range():
    x = torch.randn(3, 1, 8, 8)
    zero = torch.zeros(3, dtype=torch.long)
    assert torch.equal(move_cutouts(x, zero, zero.bool(), torch.zeros(3, 2, dtype=torch.long)), x)
    moves = random_cutout_moves(500, max_shift=2, generator=torch.Generator().manual_seed(0))
    assert moves["shift"].abs().max() == 2 and set(moves["rot"].tolist()) == {0, 1, 2, 3}


def exposures(n=200, b=9, e=5, seed=0):
    rng = np.random.default_rng(seed)
    f = rng.normal(100, 10, (n, b, e))
    err = rng.uniform(1, 5, (n, b, e))
    n_present = rng.integers(0, e + 1, (n, b))
    absent = np.arange(e)[None, None, :] >= n_present[:, :, None]
    f[absent], err[absent] = np.nan, np.nan
    return torch.tensor(f, dtype=torch.float32), torch.tensor(err, dtype=torch.float32)


@pytest.mark.parametrize("alpha", [0.05, 0.5, 0.8])
def test_keep_mask_keeps_at_least_one_present_exposure_per_band(alpha):
    f, _ = exposures()
    present = torch.isfinite(f)
    keep = random_keep_mask(present, alpha, torch.Generator().manual_seed(3))
    assert not (keep & ~present).any()
    assert torch.equal(keep.any(dim=2), present.any(dim=2))


def test_keep_fraction_is_alpha_for_many_exposures():
    present = torch.ones(2000, 9, 10, dtype=torch.bool)
    keep = random_keep_mask(present, 0.8, torch.Generator().manual_seed(4))
    assert keep.float().mean().item() == pytest.approx(0.8, abs=0.01)


def test_random_coadd_with_alpha_one_is_the_inverse_variance_coadd():
    f, err = exposures()
    flux, flux_err = random_coadd(f, err, alpha=1.0, generator=torch.Generator().manual_seed(5))
    ref_flux, ref_err = coadd_exposures(f, err)
    torch.testing.assert_close(flux, ref_flux, equal_nan=True)
    torch.testing.assert_close(flux_err, ref_err, equal_nan=True)
    w = np.where(np.isfinite(f.numpy()), err.numpy() ** -2.0, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = (w * np.nan_to_num(f.numpy())).sum(axis=2) / w.sum(axis=2)
    np.testing.assert_allclose(flux.numpy(), expected, rtol=1e-5)


def test_random_coadd_has_a_flux_wherever_an_exposure_exists():
    f, err = exposures(seed=1)
    flux, _ = random_coadd(f, err, alpha=0.3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(torch.isfinite(flux), torch.isfinite(f).any(dim=2))


def test_random_coadd_is_reproducible_and_varies():
    f, err = exposures(seed=2)
    a, _ = random_coadd(f, err, 0.5, torch.Generator().manual_seed(7))
    b, _ = random_coadd(f, err, 0.5, torch.Generator().manual_seed(7))
    c, _ = random_coadd(f, err, 0.5, torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b, equal_nan=True)
    assert not torch.allclose(a.nan_to_num(), c.nan_to_num())


def test_alpha_out_of_range_is_refused():
    with pytest.raises(ValueError, match="alpha"):
        random_keep_mask(torch.ones(1, 1, 1, dtype=torch.bool), 0.0)


def test_zeropoint_jitter_moves_each_source_band_at_the_asked_scatter():
    n, sigma = 20_000, (0.01, 0.05)
    mag = torch.full((n, 2), 20.0)
    mag[0, 1] = float("nan")
    flux = 10.0 ** (-0.4 * (mag - 30.0))
    batch = {"mag": mag, "flux": flux, "z": torch.zeros(n)}
    out = jitter_zeropoints(batch, sigma, generator=torch.Generator().manual_seed(1))
    offset = out["mag"] - mag
    assert torch.isnan(out["mag"][0, 1]) and torch.equal(out["z"], batch["z"])
    np.testing.assert_allclose(offset[1:].std(dim=0).numpy(), sigma, rtol=0.03)
    assert abs(np.corrcoef(offset[1:].numpy().T)[0, 1]) < 0.03  # bands independent
    again = jitter_zeropoints(batch, sigma, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(again["mag"], out["mag"], equal_nan=True, rtol=0, atol=0)  # seeded


def test_zeropoint_jitter_scales_exposures_and_errors_together():
    flux_exp = torch.ones(4000, 3, 5)
    flux_exp[:, :, 4] = float("nan")  # padding
    err = torch.full_like(flux_exp, 0.1)
    out = jitter_zeropoints(
        {"flux_exp": flux_exp, "flux_exp_err": err}, (0.02, 0.02, 0.0), (0.03, 0.0, 0.0), torch.Generator()
    )
    torch.testing.assert_close(out["flux_exp"] / out["flux_exp_err"], flux_exp / err, equal_nan=True)
    mag = -2.5 * torch.log10(out["flux_exp"][:, :, :4])
    assert torch.isnan(out["flux_exp"][:, :, 4]).all()
    per_exposure = mag - mag.mean(dim=2, keepdim=True)
    assert (
        per_exposure[:, 0].std() > 0.02 and per_exposure[:, 1].abs().max() < 1e-5
    )  # band 1: tile offset only
    np.testing.assert_allclose(mag[:, 1, 0].std().item(), 0.02, rtol=0.05)
    assert mag[:, 2].abs().max() < 1e-5  # no scatter asked for band 2
