"""Evaluation report: ``summary.json``, ``report.md`` and PNG plots of one or more catalogues.

Figures are drawn with matplotlib's object interface (no pyplot, no global backend) and
saved as PNG through the Agg canvas. The plots follow the two papers: z_phot against z_spec as a 2-D histogram with a logarithmic
colour scale and the |δz| = 0.15 outlier lines (GaZNet Fig. 3, DEEPZ Fig. D1), the PIT
histogram (DEEPZ Fig. 8), outlier fraction / bias / NMAD against z_spec, z_phot and magnitude
(GaZNet Fig. 4), and scatter and outlier rate against the completeness of an ODDS cut (DEEPZ
Fig. 9). Several catalogues share each figure: overlaid curves, one density panel each.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

MIN_BIN_COUNT = 10
"""Bins with fewer sources are not drawn in the binned-metric plots (they stay in the JSON)."""
DENSITY_BINS = 120
"""Bins per axis of the z_phot–z_spec density plot."""


def to_jsonable(obj: Any) -> Any:
    """``obj`` with numpy values as Python ones and NaN/inf as None (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_report(
    summary: Mapping[str, Any],
    points: Mapping[str, tuple[np.ndarray, np.ndarray]],
    out_dir: str | Path,
    plots: bool = True,
) -> dict[str, Path]:
    """Write the JSON summary, the Markdown report and the plots.

    Parameters
    ----------
    summary
        As built by :func:`distributed_pz.evaluate.evaluate_catalogues`.
    points
        Label → (z_spec, z_phot) of the evaluated sources, for the density plot.
    out_dir
        Created if needed; existing report files are overwritten.
    plots
        Draw the PNG plots (the slow part); the JSON and Markdown are always written.

    Returns
    -------
    dict
        File role → path written (``json``, ``markdown``, and one per plot).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cats = summary["catalogues"]
    figures: dict[str, Figure] = {}
    if plots:
        figures["density"] = plot_density(points, summary)
        if any(c["pdf"] is not None for c in cats.values()):
            figures["pit"] = plot_pit(cats)
        figures["binned"] = plot_binned(cats, summary["truth"]["mag_column"] or "magnitude")
        if any(c["odds"] is not None for c in cats.values()):
            figures["completeness"] = plot_completeness(cats)
    files: dict[str, Path] = {}
    for name, fig in figures.items():
        files[name] = out / f"{name}.png"
        fig.savefig(files[name], dpi=100)
    files["json"] = out / "summary.json"
    files["json"].write_text(json.dumps(to_jsonable(summary), indent=1, allow_nan=False) + "\n")
    files["markdown"] = out / "report.md"
    files["markdown"].write_text(
        markdown_report(summary, {k: v.name for k, v in files.items() if k in figures})
    )
    return files


def _outlier_lines(ax: Axes, z_max: float, threshold: float) -> None:
    z = np.array([0.0, z_max])
    ax.plot(z, z, color="k", lw=0.8)
    for sign in (-1, 1):
        ax.plot(z, z + sign * threshold * (1 + z), color="k", lw=0.8, ls="--")


def plot_density(points: Mapping[str, tuple[np.ndarray, np.ndarray]], summary: Mapping[str, Any]) -> Figure:
    """z_phot against z_spec, one panel per catalogue, shared logarithmic colour scale."""
    z_max = summary["z_edges"][-1]
    threshold = summary["settings"]["outlier_threshold"]
    bins = np.linspace(0.0, z_max, DENSITY_BINS + 1)
    hists = {label: np.histogram2d(zs, zp, bins=(bins, bins))[0] for label, (zs, zp) in points.items()}
    vmax = max([h.max() for h in hists.values()] + [1.0])
    n = len(hists)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(4.0 * ncols + 1.0, 4.2 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    right = 1.0 - 1.0 / fig.get_figwidth()
    fig.subplots_adjust(left=0.5 / fig.get_figwidth(), right=right, bottom=0.12, top=0.93, wspace=0.25)
    image = None
    for ax, (label, hist) in zip(axes.flat, hists.items(), strict=False):
        image = ax.pcolormesh(
            bins, bins, np.ma.masked_equal(hist.T, 0), norm=LogNorm(vmin=1, vmax=vmax), cmap="viridis"
        )
        _outlier_lines(ax, z_max, threshold)
        m = summary["catalogues"][label]["point"]
        ax.text(
            0.04,
            0.96,
            f"N = {m['n']}\nbias = {m['bias']:.4f}\nNMAD = {m['nmad']:.4f}\n"
            f"outl.(>{threshold:g}) = {100 * m['outlier_fraction']:.2f} %",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "lw": 0},
        )
        ax.set(
            title=label, xlabel=r"$z_{\rm spec}$", ylabel=r"$z_{\rm phot}$", xlim=(0, z_max), ylim=(0, z_max)
        )
        ax.set_aspect("equal")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    if image is not None:
        cax = fig.add_axes((right + 0.15 / fig.get_figwidth(), 0.2, 0.15 / fig.get_figwidth(), 0.65))
        bar = fig.colorbar(image, cax=cax, label="sources per cell", format="%g")
        bar.ax.yaxis.set_minor_formatter(NullFormatter())  # label decades only
    return fig


def plot_pit(cats: Mapping[str, Mapping[str, Any]]) -> Figure:
    """PIT histograms of the catalogues with PDFs, overlaid, with the uniform expectation."""
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.12, top=0.92)
    for label, c in cats.items():
        if c["pdf"] is None:
            continue
        hist = c["pdf"]["pit_histogram"]
        pit_stats = c["pdf"]["pit"]
        ax.stairs(
            hist["density"],
            hist["edges"],
            baseline=None,
            lw=1.5,
            label=f"{label}: KS {pit_stats['ks']:.3f}, CvM {pit_stats['cvm']:.2f}, AD {pit_stats['ad']:.1f}",
        )
    ax.axhline(1.0, color="k", ls="--", lw=0.8, label="uniform")
    ax.set(xlabel="PIT", ylabel="density", xlim=(0, 1), title="Probability integral transform")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return fig


_BINNED_ROWS = (
    ("outlier_fraction", "outlier fraction"),
    ("bias", r"bias $\langle\delta z\rangle$"),
    ("nmad", "NMAD"),
    ("n", "N"),
)


def plot_binned(cats: Mapping[str, Mapping[str, Any]], mag_label: str = "magnitude") -> Figure:
    """Outlier fraction, bias, NMAD and counts in bins of z_spec, z_phot and magnitude."""
    names = {"z_spec": r"$z_{\rm spec}$", "z_phot": r"$z_{\rm phot}$", "mag": mag_label}
    columns = [(k, name) for k, name in names.items() if any(k in c["binned"] for c in cats.values())]
    fig = Figure(figsize=(3.6 * len(columns), 9))
    axes = fig.subplots(len(_BINNED_ROWS), len(columns), sharex="col", squeeze=False)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.06, top=0.95, wspace=0.3, hspace=0.08)
    for j, (var, var_label) in enumerate(columns):
        for label, c in cats.items():
            rows = c["binned"].get(var)
            if not rows:
                continue
            centre = np.array([0.5 * (r["lo"] + r["hi"]) for r in rows])
            count = np.array([r["n"] for r in rows])
            shown = count >= MIN_BIN_COUNT
            for i, (metric, _) in enumerate(_BINNED_ROWS):
                values = np.array([np.nan if r[metric] is None else r[metric] for r in rows], dtype=float)
                if metric != "n":
                    values[~shown] = np.nan
                axes[i, j].plot(centre, values, marker="o", ms=3, label=label)
        axes[-1, j].set_xlabel(var_label)
        axes[-1, j].set_ylim(bottom=0)
        axes[1, j].axhline(0.0, color="k", lw=0.6)
    for i, (_, row_label) in enumerate(_BINNED_ROWS):
        axes[i, 0].set_ylabel(row_label)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"Metrics in bins (bins with N < {MIN_BIN_COUNT} not drawn)", fontsize=10)
    return fig


_COMPLETENESS_PANELS = (
    ("sigma68", r"$\sigma_{68}$"),
    ("nmad", "NMAD"),
    ("outlier_fraction", "outlier fraction"),
    ("strict_outlier_fraction", "strict outlier fraction"),
)


def plot_completeness(cats: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Scatter and outlier rates of the sources kept by an ODDS cut, against completeness."""
    fig = Figure(figsize=(9, 6.5))
    axes = fig.subplots(2, 2, sharex=True)
    fig.subplots_adjust(left=0.09, right=0.98, bottom=0.09, top=0.95, wspace=0.25, hspace=0.08)
    for label, c in cats.items():
        if c["odds"] is None:
            continue
        curve = c["odds"]["curve"]
        frac = [r["completeness"] for r in curve]
        for ax, (metric, _) in zip(axes.flat, _COMPLETENESS_PANELS, strict=True):
            values = [np.nan if r[metric] is None else r[metric] for r in curve]
            ax.plot(frac, values, marker="o", ms=3, label=f"{label} (ODDS from {c['odds']['source']})")
    for ax, (_, name) in zip(axes.flat, _COMPLETENESS_PANELS, strict=True):
        ax.set_ylabel(name)
        ax.set_ylim(bottom=0)
    for ax in axes[-1]:
        ax.set_xlabel("completeness (fraction kept, highest ODDS first)")
    axes[0, 0].legend(fontsize=8)
    return fig


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int | np.integer):
        return str(value)
    return f"{100 * value:.2f} %" if percent else f"{value:.4g}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]


def _class_cut_lines(cats: Mapping[str, Mapping[str, Any]], s: Mapping[str, Any]) -> list[str]:
    """The star/galaxy/QSO cut section (GaZNet §4.1): point metrics without ``NOT_GALAXY`` sources."""
    with_cut = {label: c for label, c in cats.items() if c.get("class_cut")}
    if not with_cut:
        return []
    lines = [
        "",
        "## Star/galaxy/QSO cut",
        "",
        "Sources the ensemble's class head gives p_galaxy < 0.5 (flag `NOT_GALAXY`) removed (GaZNet §4.1).",
        "",
    ]
    rows = []
    for label, c in with_cut.items():
        cut = c["class_cut"]
        rows.append(
            [
                label,
                _fmt(cut["n_cut"]),
                _fmt(cut["fraction_cut"], percent=True),
                _fmt(c["point"]["outlier_fraction"], percent=True),
                _fmt(cut["point"]["outlier_fraction"], percent=True),
                _fmt(c["point"]["nmad"]),
                _fmt(cut["point"]["nmad"]),
                _fmt(cut["pdf"]["pit"].get("ks") if cut.get("pdf") else None),
                _fmt(cut["pdf"].get("coverage_68") if cut.get("pdf") else None, percent=True),
            ]
        )
    threshold = f"{s['outlier_threshold']:g}"
    header = ["catalogue", "cut", "cut %", f"outliers > {threshold}", "after cut", "NMAD", "after cut"]
    lines += _table([*header, "PIT KS after cut", "cov. 68 % after cut"], rows)
    return lines


def _survey_lines(cats: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Galaxies pooled and per tile (:mod:`distributed_pz.evaluate.survey`)."""
    with_survey = {label: c["survey"] for label, c in cats.items() if c.get("survey")}
    if not with_survey:
        return []
    samples = sorted({v["sample"] for v in with_survey.values()})
    lines = [
        "",
        "## Across the survey",
        "",
        f"Sample: {'; '.join(samples)}. Pooled over the tiles, then per tile: the median and worst tile's "
        "PIT KS, and each tile's median δz in units of the pooled σ68.",
        "",
    ]
    rows = []
    for label, v in with_survey.items():
        p, spread = v["pooled"], v["spread"]
        counts = ", ".join(f"{n} {name}" for name, n in v["counts"].items())
        rows.append(
            [
                label,
                _fmt(spread.get("n_tiles")),
                _fmt(p["n"]),
                _fmt(p["nmad"]),
                _fmt(p["outlier_fraction"], percent=True) if "outlier_fraction" in p else "–",
                _fmt(p["pit_ks"]),
                _fmt(p["coverage_68"], percent=True),
                _fmt(spread.get("ks_median")),
                _fmt(spread.get("ks_max")),
                _fmt(spread.get("abs_bias_over_sigma68_median")),
                _fmt(spread.get("abs_bias_over_sigma68_max")),
                counts or "–",
            ]
        )
    header = ["catalogue", "tiles", "N", "NMAD", "outliers", "PIT KS", "cov. 68 %"]
    header += [
        "tile KS median",
        "tile KS max",
        "|median δz|/σ68 median",
        "|median δz|/σ68 max",
        "truth classes",
    ]
    lines += _table(header, rows)
    tile_rows = [
        [
            label,
            tile,
            _fmt(t["n"]),
            _fmt(t["nmad"]),
            _fmt(t["bias"]),
            _fmt(t["bias_over_sigma68"]),
            _fmt(t["pit_ks"]),
            _fmt(t["coverage_68"], percent=True),
        ]
        for label, v in with_survey.items()
        for tile, t in v["tiles"].items()
    ]
    header = ["catalogue", "tile", "N", "NMAD", "median δz", "median δz/σ68", "PIT KS", "cov. 68 %"]
    lines += _table(header, tile_rows)
    return lines


def markdown_report(summary: Mapping[str, Any], figures: Mapping[str, str]) -> str:
    """The Markdown report: samples, point metrics, PDF metrics, ODDS cuts and the figures."""
    s, cats = summary["settings"], summary["catalogues"]
    truth = summary["truth"]
    lines = [
        f"# {summary['title']}",
        "",
        f"distributed_pz {summary['code_version']}; truth: `{truth['source']}` ({truth['n']} sources, "
        f"magnitude column: {truth['mag_column'] or 'none'}). δz = (z_phot − z_spec)/(1 + z_spec); "
        f"outliers |δz| > {s['outlier_threshold']:g}, strict outliers |δz| > {s['strict_threshold']:g}; "
        f"σ68 = ½(q84.1 − q15.9) of δz.",
        "",
        "## Samples",
        "",
        "Matched on `object_id`; sources flagged as having no estimate, no finite z_spec or no finite z_phot are excluded.",
        "",
    ]
    count_keys = ("n_catalog", "n_matched", "n_flagged", "n_no_zspec", "n_bad_zphot", "n_used")
    lines += _table(
        ["catalogue", "rows", "matched", "flagged", "no z_spec", "no z_phot", "evaluated"],
        [[label, *(_fmt(c["counts"][k]) for k in count_keys)] for label, c in cats.items()],
    )
    for label, c in cats.items():
        meta = ", ".join(f"{k}: {v}" for k, v in c["meta"].items())
        lines.append(f"- {label}: `{c['path']}`" + (f" ({meta})" if meta else ""))
    lines += ["", "## Point metrics", ""]
    lines += _table(
        [
            "catalogue",
            "N",
            "bias",
            "NMAD",
            "σ68",
            f"outliers > {s['outlier_threshold']:g}",
            f"strict > {s['strict_threshold']:g}",
            "z_lo68–z_hi68 coverage",
        ],
        [
            [
                label,
                _fmt(c["point"]["n"]),
                _fmt(c["point"]["bias"]),
                _fmt(c["point"]["nmad"]),
                _fmt(c["point"]["sigma68"]),
                _fmt(c["point"]["outlier_fraction"], percent=True),
                _fmt(c["point"]["strict_outlier_fraction"], percent=True),
                _fmt(c.get("interval_coverage_68"), percent=True),
            ]
            for label, c in cats.items()
        ],
    )
    lines += ["## PDF metrics", ""]
    with_pdf = {label: c for label, c in cats.items() if c["pdf"] is not None}
    levels = [f"coverage_{round(100 * level)}" for level in s["coverage_levels"]]
    if with_pdf:
        lines += [
            "PIT = CDF(z_spec) (uniform if calibrated); KS, Cramér–von Mises and Anderson–Darling distances "
            "of the PIT from uniform (0 is perfect); CRPS averaged over sources; coverage of the central "
            "credible intervals (nominal: the level).",
            "",
        ]
        lines += _table(
            [
                "catalogue",
                "PDF",
                "N",
                "CRPS",
                "PIT KS",
                "PIT CvM",
                "PIT AD",
                *(f"cov. {k[9:]} %" for k in levels),
            ],
            [
                [
                    label,
                    c["pdf"]["representation"],
                    _fmt(c["pdf"]["n"]),
                    _fmt(c["pdf"]["crps"]),
                    _fmt(c["pdf"]["pit"].get("ks")),
                    _fmt(c["pdf"]["pit"].get("cvm")),
                    _fmt(c["pdf"]["pit"].get("ad")),
                    *(_fmt(c["pdf"][k], percent=True) for k in levels),
                ]
                for label, c in with_pdf.items()
            ],
        )
    lines += [f"- {label}: {c['pdf_note']}" for label, c in cats.items() if c["pdf_note"]]
    lines += _class_cut_lines(cats, s)
    lines += _survey_lines(cats)
    lines += ["", "## ODDS quality cut", ""]
    with_odds = {label: c for label, c in cats.items() if c["odds"] is not None}
    if with_odds:
        definitions = []
        for label, c in with_odds.items():
            interval = c["odds"]["interval"]
            width = "interval not recorded" if interval is None else f"Δz = {interval:g}"
            how = (
                "the catalogue's own `odds` column"
                if c["odds"]["source"] == "column"
                else "recomputed from the PDF"
            )
            definitions.append(f"{label}: {how} ({width})")
        lines += [
            "ODDS (DEEPZ eq. 7): the probability within z_phot ± Δz/2, Δz the full-width interval; "
            + "; ".join(definitions)
            + ". Metrics of the sources with the highest ODDS, keeping a given fraction (completeness):",
            "",
        ]
        rows = []
        for label, c in with_odds.items():
            for r in c["odds"]["curve"]:
                if round(r["completeness"], 6) in (0.5, 0.8, 1.0):
                    rows.append(
                        [
                            label,
                            c["odds"]["source"],
                            f"{100 * r['completeness']:.0f} %",
                            _fmt(r["quality_min"]),
                            _fmt(r["sigma68"]),
                            _fmt(r["nmad"]),
                            _fmt(r["outlier_fraction"], percent=True),
                            _fmt(r["strict_outlier_fraction"], percent=True),
                        ]
                    )
        lines += _table(
            ["catalogue", "ODDS from", "kept", "ODDS ≥", "σ68", "NMAD", "outliers", "strict outliers"], rows
        )
    else:
        lines += ["No catalogue has PDFs or an `odds` column: no ODDS curve.", ""]
    captions = {
        "density": "z_phot against z_spec (log colour scale; dashed: |δz| = outlier threshold)",
        "pit": "PIT histograms",
        "binned": "metrics in bins of z_spec, z_phot and magnitude",
        "completeness": "scatter and outlier rates against completeness of an ODDS cut",
    }
    lines += ["## Figures", ""]
    lines += [f"![{captions[name]}]({file})\n" for name, file in figures.items()]
    lines += ["Per-bin tables and the full ODDS curves are in `summary.json`.", ""]
    return "\n".join(lines)
