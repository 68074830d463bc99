"""Runnalls' greedy merge: K components, every source's weight, mean and variance kept, PDFs close."""

from __future__ import annotations

import numpy as np
import torch

from distributed_pz.metrics.pdf import GaussianMixturePDF
from distributed_pz.metrics.reduce import reduce_mixture
from distributed_pz.models.predictor import EnsemblePredictor, PredictOptions
from tests.fixtures import fresh_members, learnable_tile, with_ids


def moments(w, m, s):
    total = w.sum(1)
    mean = (w * m).sum(1) / total
    return total, mean, (w * (s**2 + m**2)).sum(1) / total - mean**2


def pooled(n=300, c=60, seed=0):
    """Mixtures of ``c`` components (a third with zero weight, as a dropped member's), one row all zero."""
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(n, c, generator=g, dtype=torch.float64) * (torch.rand(n, c, generator=g) > 0.33)
    w[0] = 0.0
    w = w / w.sum(1, keepdim=True).clamp_min(1e-300)
    m = torch.rand(n, c, generator=g, dtype=torch.float64) * 3
    s = torch.rand(n, c, generator=g, dtype=torch.float64) * 0.2 + 0.01
    return w, m, s


def test_reduction_keeps_weight_mean_and_variance():
    w, m, s = pooled()
    for k in (1, 10, 20):
        rw, rm, rs = reduce_mixture(w, m, s, k)
        assert rw.shape == (len(w), k) and torch.all(rs > 0)
        for full, reduced in zip(moments(w[1:], m[1:], s[1:]), moments(rw[1:], rm[1:], rs[1:]), strict=True):
            assert torch.allclose(full, reduced, atol=1e-12)
        assert torch.all(rw[0] == 0)  # no estimate stays no estimate


def test_reduced_pdfs_stay_close_and_more_components_are_closer():
    w, m, s = pooled(n=100, c=40, seed=1)
    z = np.linspace(-0.5, 3.5, 801)[None, :]
    full = GaussianMixturePDF(w[1:].numpy(), m[1:].numpy(), s[1:].numpy()).cdf(z)
    error = {}
    for k in (5, 20):
        reduced = GaussianMixturePDF(*(a[1:].numpy() for a in reduce_mixture(w, m, s, k)))
        error[k] = np.abs(reduced.cdf(z) - full).max(axis=1).mean()
    assert error[20] < error[5] < 0.05


def test_predictor_pdf_components_reduce_the_pdf_columns_only():
    tile = with_ids(learnable_tile(200, seed=3))
    members = fresh_members("deepz", seeds=(1, 2, 3))
    full = EnsemblePredictor(members, "h", "cpu", PredictOptions()).predict_chunk(tile)
    small = EnsemblePredictor(members, "h", "cpu", PredictOptions(pdf_components=4)).predict_chunk(tile)
    assert full["pdf_weights"].shape[1] > 4 == small["pdf_weights"].shape[1]
    for name in (
        "z_phot",
        "z_mean",
        "z_lo68",
        "z_hi68",
        "odds",
        "flags",
    ):  # point estimates of the full mixture
        assert np.array_equal(full[name], small[name], equal_nan=True), name
    ok = np.isfinite(full["z_mean"])
    cols = ("pdf_weights", "pdf_means", "pdf_sigmas")
    f = moments(*(torch.as_tensor(full[c][ok], dtype=torch.float64) for c in cols))
    r = moments(*(torch.as_tensor(small[c][ok], dtype=torch.float64) for c in cols))
    for a, b in zip(f, r, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)
