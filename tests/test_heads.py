"""Mixture-density maths against independent numpy/scipy computations; the Huber loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from distributed_pz.models.heads import (
    MDNHead,
    PointHead,
    huber_loss,
    mixture_cdf,
    mixture_log_prob,
    mixture_mean,
    mixture_mode,
    mixture_nll,
    mixture_odds,
    mixture_pdf,
    mixture_quantile,
    mixture_std,
    summarize_mixture,
)

torch.set_num_threads(1)


def random_mixture(b=50, k=10, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (b, k))
    means = rng.uniform(0, 3, (b, k))
    sigmas = rng.uniform(0.01, 0.4, (b, k))
    z = rng.uniform(0, 3, b)
    return logits, means, sigmas, z


def scipy_weights(logits):
    w = np.exp(logits - logits.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def test_log_prob_matches_scipy():
    logits, means, sigmas, z = random_mixture()
    w = scipy_weights(logits)
    expected = np.log((w * stats.norm.pdf(z[:, None], means, sigmas)).sum(axis=1))
    t = [torch.tensor(a) for a in (logits, means, sigmas, z)]
    np.testing.assert_allclose(mixture_log_prob(*t).numpy(), expected, rtol=1e-10)
    assert mixture_nll(*t).item() == pytest.approx(-expected.mean())


def test_log_prob_is_stable_far_in_the_tails():
    t = [
        torch.tensor([[0.0, 0.0]]),
        torch.tensor([[0.0, 1.0]]),
        torch.tensor([[0.01, 0.01]]),
        torch.tensor([3.0]),
    ]
    value = mixture_log_prob(*t)
    assert torch.isfinite(value).all()
    assert value.item() == pytest.approx(np.log(0.5) + stats.norm.logpdf(3.0, 1.0, 0.01), rel=1e-5)


def test_pdf_and_cdf_match_scipy():
    logits, means, sigmas, z = random_mixture(seed=1)
    w = scipy_weights(logits)
    grid = np.linspace(-1, 4, 11)
    t = [torch.tensor(a) for a in (w, means, sigmas)]
    pdf = mixture_pdf(*t, torch.tensor(grid).expand(len(w), -1))
    cdf = mixture_cdf(*t, torch.tensor(z))
    np.testing.assert_allclose(
        pdf.numpy(),
        (w[:, None] * stats.norm.pdf(grid[None, :, None], means[:, None], sigmas[:, None])).sum(-1),
    )
    np.testing.assert_allclose(cdf.numpy(), (w * stats.norm.cdf(z[:, None], means, sigmas)).sum(-1))


def test_moments_mode_quantiles_against_a_fine_grid():
    logits, means, sigmas, _ = random_mixture(b=20, k=5, seed=2)
    w = scipy_weights(logits)
    grid = np.linspace(-2, 5, 35001)
    dens = (w[:, None] * stats.norm.pdf(grid[None, :, None], means[:, None], sigmas[:, None])).sum(-1)
    dz = grid[1] - grid[0]
    mean = (dens * grid).sum(1) * dz
    std = np.sqrt((dens * (grid - mean[:, None]) ** 2).sum(1) * dz)
    t = [torch.tensor(a) for a in (w, means, sigmas)]
    np.testing.assert_allclose(mixture_mean(t[0], t[1]).numpy(), mean, atol=1e-5)
    np.testing.assert_allclose(mixture_std(*t).numpy(), std, atol=1e-5)
    np.testing.assert_allclose(mixture_mode(*t).numpy(), grid[dens.argmax(1)], atol=2e-4)
    cum = np.cumsum(dens, 1) * dz
    for q in (0.15865, 0.5, 0.84135):
        expected = grid[np.argmax(cum >= q, axis=1)]
        np.testing.assert_allclose(mixture_quantile(*t, q).numpy(), expected, atol=3e-4)


def test_mode_of_one_gaussian_is_its_mean_and_odds_is_its_mass():
    w, mu, s = torch.tensor([[1.0]]), torch.tensor([[0.7]]), torch.tensor([[0.05]])
    mode = mixture_mode(w, mu, s)
    assert mode.item() == pytest.approx(0.7)
    halfwidth = 0.06
    expected = stats.norm.cdf(halfwidth * 1.7 / 0.05) - stats.norm.cdf(-halfwidth * 1.7 / 0.05)
    assert mixture_odds(w, mu, s, mode, halfwidth).item() == pytest.approx(expected, rel=1e-5)
    summary = summarize_mixture(w, mu, s)
    assert summary["z_lo68"].item() == pytest.approx(0.65, abs=1e-4)
    assert summary["z_hi68"].item() == pytest.approx(0.75, abs=1e-4)


def test_huber_loss_is_the_paper_formula():
    a = torch.tensor([0.0005, -0.0008, 0.01, -0.2])
    delta = 1e-3
    expected = torch.where(a.abs() <= delta, 0.5 * a**2, delta * (a.abs() - 0.5 * delta)).mean()
    assert huber_loss(a, torch.zeros(4), delta).item() == pytest.approx(expected.item())


def test_heads_shapes_and_positive_widths():
    x = torch.randn(7, 12)
    assert PointHead(12)(x)["z"].shape == (7,)
    out = MDNHead(12, n_components=4)(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {k: (7, 4) for k in ("logits", "means", "sigmas")}
    assert (out["sigmas"] > 0).all()
