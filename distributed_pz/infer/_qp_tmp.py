"""Catalogue PDFs as a ``qp.Ensemble`` (LSST DESC qp; ``pip install qp-prob``).

The exact calls, for anyone reading a catalogue without this package::

    qp.Ensemble(qp.mixmod, data={"weights": pdf_weights, "means": pdf_means, "stds": pdf_sigmas})
    qp.Ensemble(qp.interp, data={"xvals": z_grid, "yvals": pdf})   # --pdf grid

Sources flagged with no estimate have all-zero mixture weights (or an all-zero grid): their
``qp`` PDF is not defined, so select ``flags & NO_ESTIMATE == 0`` first.
"""

from __future__ import annotations

import os

from distributed_pz.catalog import read_catalog
from distributed_pz.evaluate.score import pdf_from_columns
from distributed_pz.metrics.pdf import to_qp


def read_qp(path: str | os.PathLike):
    """Read a ``dpz predict`` catalogue (Parquet or FITS) as a ``qp.Ensemble``."""
    table = read_catalog(path, ["pdf_weights", "pdf_means", "pdf_sigmas", "pdf"])
    pdf = pdf_from_columns(table.columns, table.meta)
    if pdf is None:
        raise ValueError(f"{path}: no PDF columns (pdf_weights/pdf_means/pdf_sigmas, or pdf with a z grid)")
    return to_qp(pdf)
