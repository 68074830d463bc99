"""Catalogue PDFs as a ``qp.Ensemble`` (LSST DESC qp; ``pip install qp-prob``).

The exact calls, for anyone reading a catalogue without this package::

    qp.Ensemble(qp.mixmod, data={"weights": pdf_weights, "means": pdf_means, "stds": pdf_sigmas})
    qp.Ensemble(qp.interp, data={"xvals": z_grid, "yvals": pdf})   # --pdf grid

Sources flagged with no estimate have all-zero mixture weights (or an all-zero grid): their
``qp`` PDF is not defined, so select ``flags & NO_ESTIMATE == 0`` first.
"""

from __future__ import annotations

import os
from typing import Any

from distributed_pz.catalog_io import Z_GRID_KEY, read_catalog


def to_qp(columns: dict[str, Any], z_grid: Any = None):
    """A ``qp.Ensemble`` of the catalogue's PDFs (mixture columns, or ``pdf`` on ``z_grid``)."""
    try:
        import qp
    except ImportError:
        raise ImportError("qp is not installed: pip install qp-prob") from None
    if "pdf_weights" in columns:
        data = {
            "weights": columns["pdf_weights"],
            "means": columns["pdf_means"],
            "stds": columns["pdf_sigmas"],
        }
        return qp.Ensemble(qp.mixmod, data=data)
    if "pdf" in columns and z_grid is not None:
        return qp.Ensemble(qp.interp, data={"xvals": z_grid, "yvals": columns["pdf"]})
    raise ValueError("no PDF columns (pdf_weights/pdf_means/pdf_sigmas, or pdf with a z grid)")


def read_qp(path: str | os.PathLike):
    """Read a ``dpz predict`` catalogue (Parquet or FITS) as a ``qp.Ensemble``."""
    table = read_catalog(path, ["pdf_weights", "pdf_means", "pdf_sigmas", "pdf"])
    return to_qp(table.columns, table.meta.get(Z_GRID_KEY))
