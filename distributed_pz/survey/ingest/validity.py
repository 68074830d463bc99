"""Which magnitudes are usable: the rules ingest applies to every band, shared with the RAIL stages."""

from __future__ import annotations

import numpy as np

from distributed_pz.survey.store.schema import FLAG_BAD, FLAG_NOT_DETECTED, FLAG_NOT_OBSERVED, FLAG_OK

MAX_MAG_ERR = 5.0
"""Largest usable magnitude error (S/N ~0.2); larger ones (1e30 sentinels) flag the magnitude bad.
A non-detection keeps its error column (often the limiting magnitude) whatever its size."""


def equals_any(values: np.ndarray, sentinels: tuple[float, ...]) -> np.ndarray:
    """Exact matches, compared in the column's own precision (-99.9 in float32 is not -99.9)."""
    if not sentinels:
        return np.zeros(values.shape, dtype=bool)
    return np.isin(values, np.asarray(sentinels, dtype=values.dtype))


def usable_magnitudes(
    mag: np.ndarray,
    err: np.ndarray,
    not_detected: np.ndarray,
    not_observed: np.ndarray,
    valid_range: tuple[float, float],
    err_sentinels: tuple[float, ...] = (),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Magnitudes, errors and ``mag_flag`` values (same shape as ``mag``) under ingest's rules.

    ``not_observed`` / ``not_detected`` mark the sentinel values (flags 2 / 1; a non-detection keeps
    a usable error). Any other magnitude that is non-finite, outside ``valid_range``, or whose
    error is non-finite, negative, one of ``err_sentinels`` or above :data:`MAX_MAG_ERR` is
    ``FLAG_BAD``. Every flagged magnitude is NaN, and so is every error not kept.
    """
    low, high = valid_range
    err_ok = np.isfinite(err) & (err >= 0) & ~equals_any(err, err_sentinels)
    measured = err_ok & (err <= MAX_MAG_ERR)
    ok = np.isfinite(mag) & (mag >= low) & (mag <= high) & measured & ~not_observed & ~not_detected
    flag = np.full(mag.shape, FLAG_BAD, dtype=np.uint8)
    flag[not_observed] = FLAG_NOT_OBSERVED
    flag[not_detected] = FLAG_NOT_DETECTED
    flag[ok] = FLAG_OK
    kept_err = ok | (not_detected & err_ok)
    return np.where(ok, mag, np.nan), np.where(kept_err, err, np.nan), flag
