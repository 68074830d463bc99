"""Evaluate photo-z catalogues against spectroscopic truth: join, clean, measure, report.

``evaluate_catalogues`` is the one call behind ``dpz evaluate``: each catalogue (one file, or one
file per tile) is joined to the truth on ``object_id``; matched sources flagged "no estimate", a non-finite ``z_spec`` or a
non-finite ``z_phot`` are excluded (and counted, each under the first reason that applies);
point metrics, binned metrics, PDF metrics and the ODDS completeness curve are computed on
the rest and written by :func:`distributed_pz.report.write_report`. With a truth class or several
tiles, the galaxies are also measured per tile and pooled (:mod:`distributed_pz.evaluate.survey`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distributed_pz import __version__
from distributed_pz.catalog import (
    NO_ESTIMATE,
    Z_GRID_KEY,
    CatalogTable,
    Flag,
    pdf_from_columns,
    read_catalog,
)
from distributed_pz.evaluate.report import write_report
from distributed_pz.evaluate.survey import survey_summary
from distributed_pz.metrics.binned import (
    DEFAULT_COMPLETENESS,
    binned_point_metrics,
    completeness_curve,
    rows_to_dicts,
)
from distributed_pz.metrics.mixture import DEFAULT_ODDS_INTERVAL
from distributed_pz.metrics.pdf import (
    GaussianMixturePDF,
    RedshiftPDF,
    odds,
    pit,
    pit_coverage,
    pit_histogram,
    pit_uniformity,
)
from distributed_pz.metrics.point import (
    OUTLIER_THRESHOLD,
    STRICT_OUTLIER_THRESHOLD,
    interval_coverage,
    point_metrics,
)
from distributed_pz.options import option

DEFAULT_MAG_COLUMN = "mag_r"
"""Truth magnitude column used when present and none is named."""
CATALOG_COLUMNS = (
    "object_id",
    "z_phot",
    "z_lo68",
    "z_hi68",
    "odds",
    "flags",
    "p_galaxy",
    "pdf_weights",
    "pdf_means",
    "pdf_sigmas",
    "pdf",
    "tile",
)
"""Catalogue columns the evaluation reads (those present)."""

CatalogSource = str | Path | Sequence[str | Path]
"""A catalogue file, or one file per tile of the same catalogue."""
TruthSource = str | Path | Mapping[str, np.ndarray] | Callable[[], Mapping[str, np.ndarray]]
"""A truth table path (Parquet/FITS/CSV), its columns, or a loader returning them (e.g. a store tile)."""


@dataclass(frozen=True)
class EvaluationSettings:
    """What the evaluation measures and how.

    Attributes
    ----------
    outlier_threshold, strict_threshold
        |δz| above which a source is an outlier (GaZNet 0.15) / a strict outlier (DEEPZ 0.02).
    odds_interval
        Full width Δz of the ODDS window ``z_phot ± odds_interval / 2`` (DEEPZ eq. 7), to
        recompute ODDS from the PDF with. None (default): the catalogue's own ``odds`` column
        where it has one (its interval is the metadata ``odds_interval``); else recomputed
        with the catalogue's ``odds_interval``, or
        :data:`~distributed_pz.metrics.mixture.DEFAULT_ODDS_INTERVAL` if it records none.
    coverage_levels
        Central credible-interval levels whose coverage is measured.
    pit_bins
        Bins of the PIT histogram.
    z_bin_width, mag_bin_width
        Widths of the redshift and magnitude bins of the binned metrics.
    completeness
        Fractions kept at which the ODDS completeness curve is evaluated.
    exclude_flags
        Catalogue flag bits whose sources are left out (default: "no estimate" bits).
    """

    outlier_threshold: float = option(OUTLIER_THRESHOLD, help="|δz| outlier cut (default: %(default)s)")
    strict_threshold: float = option(
        STRICT_OUTLIER_THRESHOLD, help="|δz| strict outlier cut (default: %(default)s)"
    )
    odds_interval: float | None = option(
        None,
        metavar="DZ",
        help="recompute ODDS from the PDF as P(|z - z_phot| <= DZ/2), DZ the full width "
        "(default: the catalogue's own odds column and its metadata odds_interval; without a column, "
        f"recomputed with that interval, else {DEFAULT_ODDS_INTERVAL})",
    )
    coverage_levels: tuple[float, ...] = (0.68, 0.95)
    pit_bins: int = option(20, minimum=1, help="PIT histogram bins (default: %(default)s)")
    z_bin_width: float = 0.2
    mag_bin_width: float = 0.5
    completeness: tuple[float, ...] = DEFAULT_COMPLETENESS
    exclude_flags: int = NO_ESTIMATE


@dataclass(frozen=True)
class Truth:
    """Spectroscopic truth: ids, redshifts and optionally one magnitude and the class per source."""

    object_id: np.ndarray
    z_spec: np.ndarray
    mag: np.ndarray | None
    mag_column: str | None
    source: str
    truth_class: np.ndarray | None = None


@dataclass
class PreparedCatalog:
    """A catalogue joined to the truth and cleaned: the rows that are evaluated.

    ``meta`` keeps the catalogue's scalar metadata (model bundle hash, code version, tile, ...).
    """

    label: str
    path: str
    counts: dict[str, int]
    z_spec: np.ndarray
    z_phot: np.ndarray
    mag: np.ndarray | None
    truth_class: np.ndarray | None
    columns: dict[str, np.ndarray] = field(repr=False)
    meta: dict[str, Any]
    pdf: RedshiftPDF | None
    pdf_note: str | None


def truth_from_arrays(
    object_id: np.ndarray,
    z_spec: np.ndarray,
    mag: np.ndarray | None = None,
    bands: Sequence[str] | None = None,
    band: str = "r",
) -> dict[str, np.ndarray]:
    """Truth columns from survey-store arrays (``object_id``, ``z_spec``, ``mag`` [N, B]).

    Parameters
    ----------
    object_id, z_spec
        Shape [N].
    mag, bands
        Magnitudes [N, B] and the names of the B bands (the tile's ``bands`` attribute).
    band
        The band kept, as column ``mag_<band>``.
    """
    out = {"object_id": np.asarray(object_id), "z_spec": np.asarray(z_spec)}
    if mag is not None:
        if bands is None or band not in bands:
            raise ValueError(f"band {band!r} not among the tile's bands {list(bands or [])}")
        out[f"mag_{band}"] = np.asarray(mag)[:, list(bands).index(band)]
    return out


def load_truth(truth: TruthSource, mag_column: str | None = None) -> Truth:
    """Spectroscopic truth from a table file, a mapping of columns or a loader.

    Parameters
    ----------
    truth
        Path of a Parquet/FITS/CSV table, a mapping with ``object_id`` and ``z_spec`` (and
        magnitude) columns, or a zero-argument callable returning such a mapping.
    mag_column
        Magnitude column for the binned metrics. If None, ``mag_r`` when present, else none.
        A named column that is missing is an error.
    """
    if isinstance(truth, str | Path):
        columns, source = read_catalog(truth).columns, str(truth)
    elif callable(truth):
        columns, source = truth(), getattr(truth, "__name__", "loader")
    else:
        columns, source = truth, "arrays"
    missing = {"object_id", "z_spec"} - set(columns)
    if missing:
        raise ValueError(f"truth {source}: missing column(s) {sorted(missing)}")
    if mag_column is not None and mag_column not in columns:
        raise ValueError(f"truth {source}: no magnitude column {mag_column!r} (columns: {sorted(columns)})")
    if mag_column is None and DEFAULT_MAG_COLUMN in columns:
        mag_column = DEFAULT_MAG_COLUMN
    mag = None if mag_column is None else np.asarray(columns[mag_column], dtype=np.float64)
    return Truth(
        object_id=np.asarray(columns["object_id"], dtype=np.int64),
        z_spec=np.asarray(columns["z_spec"], dtype=np.float64),
        mag=mag,
        mag_column=mag_column,
        source=source,
        truth_class=np.asarray(columns["class"]) if "class" in columns else None,
    )


def _unique(ids: np.ndarray, what: str) -> None:
    if np.unique(ids).size != ids.size:
        raise ValueError(f"{what}: object_id is not unique ({ids.size - np.unique(ids).size} duplicates)")


def prepare_catalog(
    label: str, table: CatalogTable, truth: Truth, exclude_flags: int = NO_ESTIMATE
) -> PreparedCatalog:
    """Join a catalogue to the truth on ``object_id`` and drop the rows that cannot be evaluated.

    Rows with any of the ``exclude_flags`` bits set are dropped (default: the bits meaning
    "no estimate"; informational bits such as a missing band keep the row).
    """
    cols = table.columns
    for name in ("object_id", "z_phot"):
        if name not in cols:
            raise ValueError(f"catalogue {label} ({table.path}): no {name!r} column")
    ids = np.asarray(cols["object_id"], dtype=np.int64)
    _unique(ids, f"catalogue {label} ({table.path})")
    _unique(truth.object_id, f"truth {truth.source}")
    _, in_cat, in_truth = np.intersect1d(ids, truth.object_id, assume_unique=True, return_indices=True)
    flags = np.asarray(cols["flags"])[in_cat] if "flags" in cols else np.zeros(in_cat.size, np.uint8)
    z_spec = truth.z_spec[in_truth]
    z_phot = np.asarray(cols["z_phot"], dtype=np.float64)[in_cat]
    flagged = (flags.astype(np.int64) & exclude_flags) != 0
    no_zspec = ~flagged & ~np.isfinite(z_spec)
    bad_zphot = ~flagged & ~no_zspec & ~np.isfinite(z_phot)
    keep = ~(flagged | no_zspec | bad_zphot)
    rows = in_cat[keep]
    counts = {
        "n_catalog": int(ids.size),
        "n_truth": int(truth.object_id.size),
        "n_matched": int(in_cat.size),
        "n_flagged": int(flagged.sum()),
        "n_no_zspec": int(no_zspec.sum()),
        "n_bad_zphot": int(bad_zphot.sum()),
        "n_used": int(keep.sum()),
    }
    kept = {name: np.asarray(values)[rows] for name, values in cols.items()}
    pdf = pdf_from_columns(kept, table.meta)
    return PreparedCatalog(
        label=label,
        path=table.path,
        counts=counts,
        z_spec=z_spec[keep],
        z_phot=z_phot[keep],
        mag=None if truth.mag is None else truth.mag[in_truth][keep],
        truth_class=None if truth.truth_class is None else truth.truth_class[in_truth][keep],
        columns=kept,
        meta={
            k: v for k, v in table.meta.items() if k != Z_GRID_KEY and isinstance(v, str | int | float | bool)
        },
        pdf=pdf,
        pdf_note=pdf_note(pdf, table.meta),
    )


def pdf_note(pdf: RedshiftPDF | None, meta: Mapping[str, Any]) -> str | None:
    """What the report should say about a catalogue's p(z), from its ``pdf_source`` / ``calibration`` metadata.

    ``None`` for a calibrated p(z), or a catalogue that records neither (another code's).
    """
    if pdf is None:
        return "no PDF columns: PDF metrics skipped"
    calibration, source = meta.get("calibration"), meta.get("pdf_source")
    if calibration != "none":
        return None
    if source == "member_spread":
        return (
            "p(z) is only the spread of the point-estimate members (uncalibrated), not a predictive "
            "p(z): its PDF metrics measure that spread"
        )
    return "uncalibrated p(z): the members' pooled mixtures as they are (no out-of-fold calibration)"


def _edges(values: np.ndarray, width: float, lo_q: float, hi_q: float, floor: float | None) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return np.array([0.0, width])
    lo = floor if floor is not None else np.floor(np.quantile(finite, lo_q) / width) * width
    hi = max(np.ceil(np.quantile(finite, hi_q) / width) * width, lo + width)
    return np.round(np.arange(lo, hi + 0.5 * width, width), 10)


def pdf_summary(
    pdf: RedshiftPDF, z_spec: np.ndarray, settings: EvaluationSettings
) -> tuple[dict[str, Any], np.ndarray]:
    """PDF metrics of one catalogue's evaluated rows: PIT statistics and histogram, CRPS, coverage.

    Rows whose PDF is invalid (non-finite PIT) are left out and counted as ``n_invalid``.

    Returns
    -------
    summary, valid
        The JSON-ready metrics and the boolean mask [N] of rows with a valid PDF.
    """
    pit_values = pit(pdf, z_spec)
    valid = np.isfinite(pit_values)
    pit_values = pit_values[valid]
    density, edges = pit_histogram(pit_values, settings.pit_bins)
    out: dict[str, Any] = {
        "representation": "gaussian_mixture" if isinstance(pdf, GaussianMixturePDF) else "grid",
        "n": int(valid.sum()),
        "n_invalid": int((~valid).sum()),
        "crps": float(np.mean(pdf.subset(valid).crps(z_spec[valid]))) if valid.any() else np.nan,
        "pit": pit_uniformity(pit_values)
        if valid.any()
        else dict.fromkeys(("ks", "ks_pvalue", "cvm", "ad"), np.nan),
        "pit_histogram": {"edges": edges.tolist(), "density": density.tolist()},
    }
    for level in settings.coverage_levels:
        out[f"coverage_{round(100 * level)}"] = pit_coverage(pit_values, level) if valid.any() else np.nan
    return out, valid


def summarise_catalog(
    cat: PreparedCatalog,
    settings: EvaluationSettings,
    z_edges: np.ndarray,
    mag_edges: np.ndarray | None,
) -> dict[str, Any]:
    """Every metric of one prepared catalogue, as a JSON-ready dict."""
    thresholds = (settings.outlier_threshold, settings.strict_threshold)
    binned = {
        "z_spec": rows_to_dicts(
            binned_point_metrics(cat.z_phot, cat.z_spec, cat.z_spec, z_edges, *thresholds)
        ),
        "z_phot": rows_to_dicts(
            binned_point_metrics(cat.z_phot, cat.z_spec, cat.z_phot, z_edges, *thresholds)
        ),
    }
    if cat.mag is not None and mag_edges is not None:
        binned["mag"] = rows_to_dicts(
            binned_point_metrics(cat.z_phot, cat.z_spec, cat.mag, mag_edges, *thresholds)
        )
    summary: dict[str, Any] = {
        "path": cat.path,
        "meta": cat.meta,
        "counts": cat.counts,
        "point": point_metrics(cat.z_phot, cat.z_spec, *thresholds),
        "binned": binned,
        "pdf": None,
        "pdf_note": cat.pdf_note,
        "odds": None,
    }
    if "z_lo68" in cat.columns and "z_hi68" in cat.columns:
        summary["interval_coverage_68"] = interval_coverage(
            cat.columns["z_lo68"], cat.columns["z_hi68"], cat.z_spec
        )
    if cat.pdf is not None:
        summary["pdf"], _ = pdf_summary(cat.pdf, cat.z_spec, settings)
    if "p_galaxy" in cat.columns and "flags" in cat.columns:
        kept = (np.asarray(cat.columns["flags"]).astype(np.int64) & Flag.NOT_GALAXY) == 0
        summary["class_cut"] = {
            "n_cut": int((~kept).sum()),
            "fraction_cut": float(np.mean(~kept)) if kept.size else np.nan,
            "point": point_metrics(cat.z_phot[kept], cat.z_spec[kept], *thresholds),
            "pdf": None,
        }
        if cat.pdf is not None and kept.any():
            after, _ = pdf_summary(cat.pdf.subset(kept), cat.z_spec[kept], settings)
            summary["class_cut"]["pdf"] = {k: after[k] for k in ("pit", "coverage_68", "crps") if k in after}
    tiles = cat.columns.get("tile")
    if cat.truth_class is not None or (tiles is not None and len(set(tiles)) > 1):
        tile = tiles if tiles is not None else np.full(len(cat.z_spec), cat.meta.get("tile", cat.label))
        summary["survey"] = survey_summary(cat.z_phot, cat.z_spec, tile, cat.truth_class, cat.pdf, thresholds)
    quality, source, interval = _odds(cat, settings)
    if quality is not None and cat.z_spec.size:
        curve = completeness_curve(quality, cat.z_phot, cat.z_spec, settings.completeness, *thresholds)
        summary["odds"] = {
            "source": source,
            "interval": interval,
            "mean": float(np.nanmean(quality)),
            "curve": rows_to_dicts(curve),
        }
    return summary


def _odds(
    cat: PreparedCatalog, settings: EvaluationSettings
) -> tuple[np.ndarray | None, str | None, float | None]:
    """ODDS per source, where it came from (``"column"`` or ``"pdf"``) and its full-width interval.

    The catalogue's own column unless the settings name an interval; recomputed from the PDF
    (around the catalogue's ``z_phot``, as the catalogues do) only without a column or with an
    interval given. The interval of a column is the catalogue's ``odds_interval`` metadata
    (None if it records none).
    """
    recorded = cat.meta.get("odds_interval")
    recorded = float(recorded) if type(recorded) in (int, float) else None  # JSON-decoded metadata
    has_column = (
        "odds" in cat.columns and np.isfinite(np.asarray(cat.columns["odds"], dtype=np.float64)).any()
    )
    if has_column and settings.odds_interval is None:
        return np.asarray(cat.columns["odds"], dtype=np.float64), "column", recorded
    if cat.pdf is None:
        return None, None, None
    interval = settings.odds_interval if settings.odds_interval is not None else recorded
    interval = DEFAULT_ODDS_INTERVAL if interval is None else interval
    valid = np.isfinite(pit(cat.pdf, cat.z_spec))
    quality = np.full(cat.z_spec.size, np.nan)
    quality[valid] = odds(cat.pdf.subset(valid), interval, mode=cat.z_phot[valid])
    return quality, "pdf", interval


def read_catalogues(source: CatalogSource) -> CatalogTable:
    """One catalogue, or the tiles of one catalogue as one table with a ``tile`` column.

    Each tile's name is its ``tile`` metadata (``dpz predict`` records it), else its file name.
    """
    if isinstance(source, str | Path):
        return read_catalog(source, CATALOG_COLUMNS)
    tables = [read_catalog(path, CATALOG_COLUMNS) for path in source]
    if not tables:
        raise ValueError("a catalogue of no tiles")
    names = [str(t.meta.get("tile") or Path(t.path).name.split(".")[0]) for t in tables]
    columns = {
        key: np.concatenate([t.columns[key] for t in tables]) for key in tables[0].columns if key != "tile"
    }
    columns["tile"] = np.concatenate(
        [np.full(len(t.columns["object_id"]), n) for t, n in zip(tables, names, strict=True)]
    )
    meta = {k: v for k, v in tables[0].meta.items() if k != "tile"}
    return CatalogTable(
        path=", ".join(t.path for t in tables), format=tables[0].format, columns=columns, meta=meta
    )


def evaluate_catalogues(
    catalogs: Mapping[str, CatalogSource],
    truth: TruthSource,
    out_dir: str | Path,
    *,
    mag_column: str | None = None,
    settings: EvaluationSettings | None = None,
    title: str = "Photo-z evaluation",
    plots: bool = True,
) -> dict[str, Any]:
    """Evaluate one or more catalogues against one truth and write the report.

    Parameters
    ----------
    catalogs
        Label → catalogue path (Parquet or FITS), or the paths of its tiles; several labels give
        one comparison report.
    truth
        Truth table path, columns or loader (see :func:`load_truth`).
    out_dir
        Directory receiving ``summary.json``, ``report.md`` and the PNG plots.
    mag_column
        Truth magnitude column for the magnitude bins (default ``mag_r`` if present).
    settings
        Thresholds, ODDS window, binning; :class:`EvaluationSettings` defaults if None.
    title
        Report title.
    plots
        Draw the PNG plots; the JSON and Markdown summaries are always written.

    Returns
    -------
    dict
        The summary written to ``summary.json`` (NaN written as null), with ``files``: the
        paths written.
    """
    settings = settings or EvaluationSettings()
    if not catalogs:
        raise ValueError("no catalogue to evaluate")
    truth_data = load_truth(truth, mag_column)
    prepared = [
        prepare_catalog(label, read_catalogues(source), truth_data, settings.exclude_flags)
        for label, source in catalogs.items()
    ]
    z_all = np.concatenate([np.concatenate([c.z_spec, c.z_phot]) for c in prepared])
    z_edges = _edges(z_all, settings.z_bin_width, 0.0, 0.999, floor=0.0)
    mag_edges = None
    if truth_data.mag is not None:
        mags = np.concatenate([c.mag for c in prepared])
        mag_edges = _edges(mags, settings.mag_bin_width, 0.005, 0.995, floor=None)
    summary = {
        "title": title,
        "code_version": __version__,
        "truth": {
            "source": truth_data.source,
            "n": int(truth_data.z_spec.size),
            "mag_column": truth_data.mag_column,
        },
        "settings": asdict(settings),
        "z_edges": z_edges.tolist(),
        "mag_edges": None if mag_edges is None else mag_edges.tolist(),
        "catalogues": {c.label: summarise_catalog(c, settings, z_edges, mag_edges) for c in prepared},
    }
    points = {c.label: (c.z_spec, c.z_phot) for c in prepared}
    files = write_report(summary, points, out_dir, plots=plots)
    summary["files"] = {name: str(path) for name, path in files.items()}
    return summary
