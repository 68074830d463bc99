"""Training augmentations that never resample: whole-pixel cutout moves, randomized coadds, zero-point jitter.

GaZNet (Li et al. 2022 §3.1) rotates cutouts by multiples of 90°, flips and shifts them, and
avoids anything that interpolates (it would change pixel fluxes, hence magnitudes and colours).
Here every move is an exact permutation of each cutout's pixels; shifts are circular
(``torch.roll``), so no flux leaves the stamp. DEEPZ (Eriksen et al. 2020 §5.1) builds a new
coadd of each source at every step, keeping each individual exposure with probability α and at
least one per band. A survey's tiles each have their own photometric zero points (KiDS DR4:
~0.013 mag per band), so a model trained on a few tiles would learn theirs: :func:`jitter_zeropoints`
offsets every source's photometry by a random zero point per band (and per exposure) at the band
set's calibration scatter. All run on the batch's device, vectorised over the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from distributed_pz.models.features import coadd_exposures


def random_cutout_moves(
    n: int, max_shift: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Random moves for ``n`` cutouts: ``rot`` (quarter turns 0..3), ``flip`` (bool), ``shift`` (N, 2)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    rot = torch.randint(0, 4, (n,), generator=generator, device=gen_device)
    flip = torch.randint(0, 2, (n,), generator=generator, device=gen_device).bool()
    shift = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator, device=gen_device)
    return {"rot": rot.to(device), "flip": flip.to(device), "shift": shift.to(device)}


def move_cutouts(
    cutout: torch.Tensor, rot: torch.Tensor, flip: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """Flip, rotate and shift each cutout by whole pixels, as one gather.

    Per sample the result equals
    ``torch.roll(torch.rot90(flip_w(x), rot, (-2, -1)), tuple(shift), (-2, -1))`` where
    ``flip_w`` reverses the last (x) axis when ``flip`` is true.

    Parameters
    ----------
    cutout
        ``(N, C, P, P)`` square cutouts.
    rot, flip, shift
        ``(N,)`` quarter turns, ``(N,)`` booleans, ``(N, 2)`` integer shifts (rows, columns).
    """
    n, c, h, w = cutout.shape
    if h != w:
        raise ValueError(f"cutouts must be square to rotate by 90 degrees, got {h}x{w}")
    device = cutout.device
    i = torch.arange(h, device=device).view(1, h, 1).expand(n, h, w)  # output row
    j = torch.arange(w, device=device).view(1, 1, w).expand(n, h, w)  # output column
    # undo the circular shift: output (i, j) came from (i - dy, j - dx) of the rotated image
    i = (i - shift[:, 0].view(n, 1, 1)) % h
    j = (j - shift[:, 1].view(n, 1, 1)) % w
    # undo the rotation: rot90 by k maps source (r, s) so that out[i, j] = in[src(i, j)]
    k = (rot % 4).view(n, 1, 1)
    last = h - 1
    src_i = torch.where(k == 0, i, torch.where(k == 1, j, torch.where(k == 2, last - i, last - j)))
    src_j = torch.where(k == 0, j, torch.where(k == 1, last - i, torch.where(k == 2, last - j, i)))
    # undo the flip of the column axis
    src_j = torch.where(flip.view(n, 1, 1), last - src_j, src_j)
    index = (src_i * w + src_j).view(n, 1, h * w).expand(n, c, h * w)
    return cutout.reshape(n, c, h * w).gather(2, index).view(n, c, h, w)


def random_keep_mask(
    present: torch.Tensor, alpha: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Keep each present exposure with probability ``alpha``, at least one per (source, band).

    Parameters
    ----------
    present
        ``(N, B, E)`` booleans: which exposures exist.
    alpha
        Probability of keeping an exposure, in (0, 1].

    Returns
    -------
    ``(N, B, E)`` booleans, a subset of ``present`` with one or more exposures in every
    (source, band) that has any.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    uniform = torch.rand(present.shape, generator=generator, device=present.device)  # (N, B, E)
    keep = present & (uniform < alpha)
    # a band left empty keeps its present exposure with the highest uniform draw (uniformly chosen)
    score = torch.where(present, uniform, torch.full_like(uniform, -1.0))
    forced = torch.zeros_like(present).scatter_(2, score.argmax(dim=2, keepdim=True), True) & present
    empty = ~keep.any(dim=2, keepdim=True)  # (N, B, 1)
    return keep | (forced & empty)


def random_coadd(
    flux_exp: torch.Tensor,
    flux_exp_err: torch.Tensor,
    alpha: float = 0.8,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomized inverse-variance coadd of ``(N, B, E)`` exposures (NaN-padded) -> ``(N, B)`` flux, error.

    With ``alpha = 1`` this is exactly :func:`distributed_pz.features.coadd_exposures`.
    """
    present = torch.isfinite(flux_exp) & torch.isfinite(flux_exp_err) & (flux_exp_err > 0)
    keep = random_keep_mask(present, alpha, generator)
    return coadd_exposures(flux_exp, flux_exp_err, keep)


def jitter_zeropoints(
    batch: Mapping[str, torch.Tensor],
    tile_mag: Sequence[float],
    exposure_mag: Sequence[float] = (),
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The batch's photometry as if each source were observed with other zero points.

    Each source gets a normal offset per band of RMS ``tile_mag`` (its tile's calibration), and
    each of its exposures a further one of RMS ``exposure_mag``; magnitudes move by the offset,
    fluxes and their errors scale by ``10^(-0.4 offset)``. NaN (missing) values stay NaN.

    Parameters
    ----------
    batch
        Output of :func:`~distributed_pz.models.inputs.batch_tensors`: ``mag`` ``(N, B)``,
        ``flux`` ``(N, B)`` or ``flux_exp``/``flux_exp_err`` ``(N, B, E)``; other entries pass.
    tile_mag, exposure_mag
        RMS [mag] per band, in the batch's band order (``exposure_mag`` empty: none).
    """
    out = dict(batch)
    first = next(v for k, v in batch.items() if k in ("mag", "flux", "flux_exp"))
    n, n_bands = first.shape[:2]
    sigma = torch.as_tensor(tile_mag, dtype=first.dtype, device=first.device)
    offset = _normal((n, n_bands), generator, first) * sigma  # (N, B)
    if "mag" in batch:
        out["mag"] = batch["mag"] + offset
    if "flux" in batch:
        out["flux"] = batch["flux"] * 10.0 ** (-0.4 * offset)
    if "flux_exp" in batch:
        per_exposure = offset[..., None].expand_as(batch["flux_exp"])
        if len(exposure_mag):
            e_sigma = torch.as_tensor(exposure_mag, dtype=first.dtype, device=first.device)[:, None]
            per_exposure = per_exposure + _normal(batch["flux_exp"].shape, generator, first) * e_sigma
        scale = 10.0 ** (-0.4 * per_exposure)
        out["flux_exp"] = batch["flux_exp"] * scale
        out["flux_exp_err"] = batch["flux_exp_err"] * scale
    return out


def _normal(shape: Sequence[int], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal draws of ``shape`` from ``generator`` (on its device), on ``like``'s device and dtype."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    draws = torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=torch.float32)
    return draws.to(device=like.device, dtype=like.dtype)
