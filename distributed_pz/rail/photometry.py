"""A RAIL table (dict of columns) as survey-store arrays, with RAIL's sentinels and ingest's rules."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import numpy as np

from distributed_pz.survey.ingest.validity import usable_magnitudes


def column(data: Mapping[str, Any], name: str, param: str) -> np.ndarray:
    """Column ``name`` (named by the stage parameter ``param``) as floats; one line if it is missing."""
    try:
        return np.asarray(data[name], dtype=np.float64)
    except KeyError:
        names = [str(c) for c in data]
        close = difflib.get_close_matches(name, names, n=3)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise ValueError(f"RAIL input has no column {name!r} named by {param}{hint}") from None


def tile_arrays(
    data: Mapping[str, Any], config: Any, first_row: int = 0, with_redshift: str | None = None
) -> dict[str, np.ndarray]:
    """The store arrays of a RAIL table (a chunk of one, starting at row ``first_row``).

    Parameters
    ----------
    data
        Columns: ``config.bands``, ``config.err_bands``, optionally ``id_col``, ``ra``, ``dec``.
    config
        The stage configuration (``bands``, ``err_bands``, ``nondetect_val``, ``nonobserved_val``,
        ``mag_limits``, ``mag_valid_range``, ``id_col``).
    first_row
        Row number of the chunk's first row: without an ``id_col`` column the ids are row numbers
        in the whole table, unique across chunks.
    with_redshift
        Column holding the spectroscopic redshift, copied as ``z_spec``.

    Notes
    -----
    A magnitude of ``nondetect_val`` is not detected (its error becomes the band's ``mag_limits``
    entry when one is given), one of ``nonobserved_val`` or NaN is not observed; every other value
    passes ``dpz ingest``'s rules (:func:`~distributed_pz.survey.ingest.validity.usable_magnitudes`:
    finite, inside ``mag_valid_range``, error finite, >= 0 and at most ``MAX_MAG_ERR``) or is
    flagged bad (``mag_flag`` 3).
    """
    mag = np.stack([column(data, b, "bands") for b in config.bands], axis=1)  # (N, B)
    err = np.stack([column(data, b, "err_bands") for b in config.err_bands], axis=1)
    not_observed = (mag == config.nonobserved_val) | np.isnan(mag)
    not_detected = (mag == config.nondetect_val) & ~not_observed
    limits = np.array([config.mag_limits.get(b, np.nan) for b in config.bands])
    err = np.where(not_detected & np.isfinite(limits), limits, err)
    mag, err, flag = usable_magnitudes(mag, err, not_detected, not_observed, tuple(config.mag_valid_range))
    n = len(mag)
    ids = data[config.id_col] if config.id_col in data else np.arange(first_row, first_row + n)
    arrays = {
        "object_id": np.asarray(ids, dtype=np.int64),
        "ra": np.asarray(data["ra"] if "ra" in data else np.zeros(n), dtype=np.float64),
        "dec": np.asarray(data["dec"] if "dec" in data else np.zeros(n), dtype=np.float64),
        "mag": mag.astype(np.float32),
        "mag_err": err.astype(np.float32),
        "mag_flag": flag,
    }
    if with_redshift is not None:
        arrays["z_spec"] = column(data, with_redshift, "redshift_col").astype(np.float32)
    return arrays
