"""MDN log-likelihood against scipy; the Huber loss; head shapes. (Mixture summaries: test_mixture.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from distributed_pz.models.heads import MDNHead, PointHead, huber_loss, mixture_log_prob, mixture_nll

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
