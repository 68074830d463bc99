"""Out-of-fold predictions: each training galaxy predicted only by the members that never saw it.

Every member predicts its own test fold right after training and leaves a part file
(``oof/<member_id>.npz``: sample rows and the prediction columns). With R splits a galaxy is in
exactly one test fold per split, so it gets up to R predictions; they combine with equal weights
into one mixture of the members' mixtures (MDN models; the point estimate is its mode) or into
the mean of the members' point estimates. The catalogue ``oof.parquet`` lets the ensemble be
evaluated without leakage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from distributed_pz._files import atomic_path
from distributed_pz.catalog import MIXTURE_COLUMNS, write_table
from distributed_pz.metrics import mixture as mixture_tools

OOF_CATALOG = "oof.parquet"


def save_part(path: str | Path, rows: np.ndarray, prediction: Mapping[str, np.ndarray]) -> None:
    """Write one member's test-fold predictions atomically (``.npz``, no pickle)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {k: np.asarray(prediction[k]) for k in ("z_phot", *MIXTURE_COLUMNS) if k in prediction}
    with atomic_path(path) as tmp:
        np.savez(tmp, row=np.asarray(rows, np.int64), **columns)


def load_part(path: str | Path) -> dict[str, np.ndarray]:
    """Read a part written by :func:`save_part`."""
    with np.load(path, allow_pickle=False) as part:
        return {k: part[k] for k in part.files}


def combine_parts(
    parts: Sequence[tuple[int, Mapping[str, np.ndarray]]], n_rows: int
) -> dict[str, np.ndarray]:
    """Combine members' test-fold predictions row by row, with equal weights.

    Parameters
    ----------
    parts
        ``(split, part)`` per member, ``part`` as from :func:`load_part`; within a split the
        parts' rows must not overlap.
    n_rows
        Rows of the training sample.

    Returns
    -------
    dict
        ``n_members`` ``[N]`` (members with a finite prediction), ``z_phot`` ``[N]`` (NaN where
        none) and, when the parts carry mixtures, ``pdf_weights``, ``pdf_means``, ``pdf_sigmas``
        ``[N, S*K]`` over the ``S`` splits present, pooled by
        :func:`distributed_pz.infer.mixture.pool_members` (a missing member's components have
        weight 0); ``z_phot`` is then the mode of the pooled mixture.
    """
    if not parts:
        raise ValueError("no member predictions to combine")
    splits = sorted({s for s, _ in parts})
    has_pdf = all(MIXTURE_COLUMNS[0] in p for _, p in parts)
    filled = np.zeros((len(splits), n_rows), bool)
    z = np.full((len(splits), n_rows), np.nan)
    if has_pdf:
        k = parts[0][1][MIXTURE_COLUMNS[0]].shape[1]
        mixture = [np.zeros((len(splits), n_rows, k)) for _ in MIXTURE_COLUMNS]  # (S, N, K) each
    for split, part in parts:
        s, rows = splits.index(split), part["row"]
        if filled[s, rows].any():
            raise ValueError(f"two members of split {split} predicted the same rows")
        filled[s, rows] = True
        z[s, rows] = part["z_phot"]
        if has_pdf:
            for array, name in zip(mixture, MIXTURE_COLUMNS, strict=True):
                array[s, rows] = part[name]
    valid = filled & np.isfinite(z)
    n_members = valid.sum(axis=0)
    some = n_members > 0
    z_phot = np.full(n_rows, np.nan)
    out: dict[str, np.ndarray] = {"n_members": n_members.astype(np.int16)}
    if has_pdf:
        weights, means, sigmas = mixture_tools.pool_members(*mixture, valid)
        z_phot[some] = mixture_tools.mode(weights[some], means[some], sigmas[some])
        out.update(pdf_weights=weights, pdf_means=means, pdf_sigmas=sigmas)
    else:
        z_phot[some] = np.where(valid, z, 0).sum(axis=0)[some] / n_members[some]
    out["z_phot"] = z_phot.astype(np.float32)
    return out


def write_catalog(
    path: str | Path, object_id: np.ndarray, z_spec: np.ndarray, combined: Mapping[str, np.ndarray]
) -> Path:
    """Write the out-of-fold catalogue (:mod:`distributed_pz.catalog` columns), atomically."""
    columns = {
        "object_id": np.asarray(object_id, np.int64),
        "z_spec": np.asarray(z_spec, np.float32),
        "z_phot": np.asarray(combined["z_phot"], np.float32),
        "n_members": np.asarray(combined["n_members"], np.int16),
    }
    columns.update({k: np.asarray(combined[k], np.float32) for k in MIXTURE_COLUMNS if k in combined})
    return write_table(path, columns, {})
