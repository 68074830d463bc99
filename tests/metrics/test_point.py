"""Point metrics against hand-computed cases; binned metrics and ODDS-style cuts against subsets."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from distributed_pz.metrics import (
    BINNED_DTYPE,
    bias,
    binned_point_metrics,
    completeness_curve,
    delta_z,
    interval_coverage,
    nmad,
    outlier_fraction,
    point_metrics,
    rows_to_dicts,
    sigma68,
)

# z_spec = 0, so δz = z_phot: δz = [0.01, -0.03, 0.2, 0, 0.05]
Z_SPEC = np.zeros(5)
Z_PHOT = np.array([0.01, -0.03, 0.2, 0.0, 0.05])


def test_delta_z_is_normalised_by_one_plus_z_spec():
    np.testing.assert_allclose(delta_z([1.4, 2.0, 0.0], [1.0, 3.0, 0.5]), [0.2, -0.25, -0.5 / 1.5])
    with pytest.raises(ValueError, match="shape"):
        delta_z([1.0, 2.0], [1.0])


def test_bias_nmad_outliers_by_hand():
    assert bias(Z_PHOT, Z_SPEC) == pytest.approx(0.23 / 5)
    # median δz = 0.01; |δz - 0.01| = [0, 0.04, 0.19, 0.01, 0.04] -> median 0.04
    assert nmad(Z_PHOT, Z_SPEC) == pytest.approx(1.4826 * 0.04)
    assert outlier_fraction(Z_PHOT, Z_SPEC) == pytest.approx(1 / 5)  # only 0.2 > 0.15
    assert outlier_fraction(Z_PHOT, Z_SPEC, threshold=0.02) == pytest.approx(3 / 5)  # -0.03, 0.2, 0.05


def test_nmad_uses_normalised_residuals():
    # δz = [0.1, -0.1, 0.3] with z_spec = 1: median 0.1, |dev| = [0, 0.2, 0.2] -> median 0.2
    assert nmad([1.2, 0.8, 1.6], [1.0, 1.0, 1.0]) == pytest.approx(1.4826 * 0.2)


def test_sigma68_by_hand():
    # δz = 0, 0.01, ..., 1: linear-interpolated quantile q of this sample is q itself
    dz = np.linspace(0.0, 1.0, 101)
    assert sigma68(dz, np.zeros_like(dz)) == pytest.approx(0.5 * (0.8413447460685429 - 0.15865525393145707))


def test_sigma68_and_nmad_equal_sigma_for_a_gaussian():
    dz = np.random.default_rng(0).normal(0.0, 0.05, 200_000)
    assert sigma68(dz, np.zeros_like(dz)) == pytest.approx(0.05, rel=0.01)
    assert nmad(dz, np.zeros_like(dz)) == pytest.approx(0.05, rel=0.01)


def test_point_metrics_collects_everything_and_empty_is_nan():
    m = point_metrics(Z_PHOT, Z_SPEC, outlier_threshold=0.04, strict_threshold=0.005)
    assert m["n"] == 5
    assert m["outlier_fraction"] == pytest.approx(2 / 5)
    assert m["strict_outlier_fraction"] == pytest.approx(4 / 5)
    assert m["bias"] == bias(Z_PHOT, Z_SPEC) and m["sigma68"] == sigma68(Z_PHOT, Z_SPEC)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        empty = point_metrics(np.array([]), np.array([]))
    assert empty["n"] == 0
    assert all(np.isnan(v) for k, v in empty.items() if k != "n")


def test_interval_coverage_by_hand():
    assert interval_coverage([0, 0, 1], [1, 0.5, 2], [0.5, 0.7, 1.0]) == pytest.approx(2 / 3)


def test_binned_metrics_equal_metrics_of_each_bin():
    z_spec = np.array([0.1, 0.2, 0.5, 0.9, 1.0, 1.5])
    z_phot = np.array([0.12, 0.1, 0.55, 0.7, 1.3, 1.5])
    by = np.array([0.0, 0.4, 0.5, 0.9, 1.0, np.nan])  # 1.0 is the closed last edge; NaN in no bin
    rows = binned_point_metrics(z_phot, z_spec, by, [0.0, 0.5, 1.0])
    assert rows.dtype == BINNED_DTYPE
    np.testing.assert_array_equal(rows["n"], [2, 3])
    for row, sel in zip(rows, ([0, 1], [2, 3, 4]), strict=True):
        expected = point_metrics(z_phot[sel], z_spec[sel])
        for name, value in expected.items():
            assert row[name] == pytest.approx(value), name
    empty = binned_point_metrics(z_phot, z_spec, by, [2.0, 3.0])
    assert empty["n"][0] == 0 and np.isnan(empty["nmad"][0])
    assert rows_to_dicts(rows)[0]["lo"] == 0.0 and rows_to_dicts(rows)[1]["n"] == 3
    with pytest.raises(ValueError, match="increasing"):
        binned_point_metrics(z_phot, z_spec, by, [1.0, 0.5])


def test_completeness_curve_keeps_the_best_quality_first():
    z_spec = np.zeros(4)
    z_phot = np.array([0.01, 0.3, 0.05, -0.02])
    quality = np.array([0.9, np.nan, 0.5, 0.7])  # NaN ranks last
    curve = completeness_curve(quality, z_phot, z_spec, completeness=[0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(curve["n"], [1, 2, 3, 4])
    np.testing.assert_allclose(curve["quality_min"][:3], [0.9, 0.7, 0.5])
    assert curve["nmad"][1] == pytest.approx(nmad(z_phot[[0, 3]], z_spec[[0, 3]]))
    np.testing.assert_allclose(curve["outlier_fraction"], [0, 0, 0, 0.25])
    with pytest.raises(ValueError, match="completeness"):
        completeness_curve(quality, z_phot, z_spec, completeness=[0.0])
