"""benchmarks.point_width: the gain of a mean of n members, measured from one member per split."""

from __future__ import annotations

import numpy as np

from benchmarks.point_width import mean_gain


def test_the_gain_of_a_larger_mean_follows_a_shared_and_an_own_error():
    rng = np.random.default_rng(0)
    z = rng.uniform(0.1, 1.0, 40_000)
    shared = rng.normal(0.0, 0.02, z.size) * (1 + z)
    members = z + shared + rng.normal(0.0, 0.03, (2, z.size)) * (1 + z)  # two splits' out-of-fold estimates
    expected = np.sqrt((0.02**2 + 0.03**2 / 8) / (0.02**2 + 0.03**2 / 2))
    assert abs(mean_gain(members, z, 8) - expected) < 0.01
    assert abs(mean_gain(members, z, 2) - 1.0) < 1e-9  # as many members as the out-of-fold rows pool
    alike = np.repeat(members[:1], 2, axis=0)  # members that err alike: a mean of more gains nothing
    assert abs(mean_gain(alike, z, 8) - 1.0) < 1e-9
