"""LSST DESC RAIL's FlexZBoost, GPz and KNN side by side with ours, on the real catalogues' split.

Runs in a RAIL environment of its own (not the package's, not CI; see ``benchmarks/README.md``)::

    python -m venv .rail-venv
    .rail-venv/bin/pip install pz-rail-base pz-rail-flexzboost pz-rail-gpz-v1 pz-rail-sklearn
    .venv/bin/python -m benchmarks.real_data --export /tmp/rail_split       # ours, and the split
    .rail-venv/bin/python -m benchmarks.rail_comparison --split /tmp/rail_split

``benchmarks.real_data --export`` writes each catalogue's training and test rows (the bands,
magnitudes and errors our models and baselines used, the same seeded split) and our scored rows;
this script trains each RAIL informer on all the training rows (they hold out their own share
internally), estimates the test rows, and scores the rows our models were scored on. RAIL's
p(z) are evaluated on a redshift grid (step 0.001): mode, PIT, CRPS and 68 % coverage from the
gridded CDF; ours come from the exact mixtures. Magnitudes that are missing are given RAIL's
non-detection value with the band's 99.5th-percentile magnitude as its limit.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import RESULTS_DIR, Run, argument_parser, git_commit, markdown_table

NAME = "rail_comparison"
NONDETECT = 99.0
GRID_STEP = 0.001
COVERAGE_68 = 0.6827
COLUMNS = ["method", "source", "nmad", "outlier_fraction", "crps", "pit_ks", "coverage_68", "train_s"]
ALGORITHMS = ("FlexZBoost", "GPz", "KNN")


def rail_table(
    mag: np.ndarray, mag_err: np.ndarray, bands: list[str], z: np.ndarray
) -> dict[str, np.ndarray]:
    """RAIL columns ``mag_<b>``, ``mag_err_<b>``, ``redshift``; missing magnitudes -> the non-detection value."""
    table = {"redshift": z.astype(np.float64)}
    for k, band in enumerate(bands):
        m = mag[:, k].astype(np.float64)
        e = mag_err[:, k].astype(np.float64)
        missing = ~np.isfinite(m)
        table[f"mag_{band}"] = np.where(missing, NONDETECT, m)
        table[f"mag_err_{band}"] = np.where(missing | ~np.isfinite(e) | (e <= 0), 1.0, e)
    return table


def stages(algorithm: str) -> tuple[Any, Any]:
    """The (Informer, Estimator) classes of a RAIL algorithm."""
    if algorithm == "FlexZBoost":
        from rail.estimation.algos.flexzboost import FlexZBoostEstimator, FlexZBoostInformer

        return FlexZBoostInformer, FlexZBoostEstimator
    if algorithm == "GPz":
        from rail.estimation.algos.gpz import GPzEstimator, GPzInformer

        return GPzInformer, GPzEstimator
    from rail.estimation.algos.k_nearneigh import KNearNeighEstimator, KNearNeighInformer

    return KNearNeighInformer, KNearNeighEstimator


def run_rail(
    algorithm: str, train: dict[str, np.ndarray], test: dict[str, np.ndarray], bands: list[str], work: Path
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Train and apply one RAIL algorithm; returns the p(z) on the grid ``(N, G)``, the grid, and
    the seconds of training and of estimation (the ``estimate`` call alone)."""
    z_max = float(np.ceil(1.2 * np.max(train["redshift"]) * 10) / 10)
    names = [f"mag_{b}" for b in bands]
    limits = {n: float(np.percentile(train[n][train[n] < NONDETECT], 99.5)) for n in names}
    common = {
        "hdf5_groupname": "",
        "bands": names,
        "err_bands": [f"mag_err_{b}" for b in bands],
        "ref_band": "mag_i" if "i" in bands else names[-1],
        "redshift_col": "redshift",
        "nondetect_val": NONDETECT,
        "mag_limits": limits,
        "replace_error_vals": [0.1] * len(bands),
        "zmin": 0.0,
        "zmax": z_max,
        "nzbins": int(round(z_max / GRID_STEP)) + 1,
    }
    informer_cls, estimator_cls = stages(algorithm)
    tag = f"{algorithm.lower()}_{len(train['redshift'])}"
    informer = informer_cls.make_stage(name=f"inform_{tag}", model=str(work / f"{tag}.pkl"), **common)
    started = time.perf_counter()
    informer.inform(train)
    train_s = time.perf_counter() - started
    estimator = estimator_cls.make_stage(
        name=f"estimate_{tag}", model=informer.get_handle("model"), output=str(work / f"{tag}.hdf5"), **common
    )
    started = time.perf_counter()
    ensemble = estimator.estimate(test).data
    estimate_s = time.perf_counter() - started
    grid = np.arange(0.0, z_max + GRID_STEP / 2, GRID_STEP)
    return np.asarray(ensemble.pdf(grid)), grid, train_s, estimate_s


def grid_scores(pdf: np.ndarray, grid: np.ndarray, z: np.ndarray) -> dict[str, float]:
    """NMAD and outliers of the mode, CRPS, PIT KS and 68 % coverage of gridded p(z)."""
    pdf = np.clip(np.nan_to_num(pdf), 0.0, None)
    cdf = np.cumsum(pdf, axis=1)
    total = cdf[:, -1:]
    ok = total[:, 0] > 0
    cdf = np.where(ok[:, None], cdf / np.where(total > 0, total, 1.0), np.nan)
    z_phot = grid[np.argmax(pdf, axis=1)]
    dz = (z_phot - z) / (1 + z)
    pit = np.array([np.interp(zi, grid, c) for zi, c in zip(z, cdf, strict=True)])
    step = (grid >= z[:, None]).astype(np.float64)
    crps = np.nansum((cdf - step) ** 2, axis=1) * GRID_STEP
    p = np.sort(pit[np.isfinite(pit)])
    n = p.size
    ks = max(np.max(np.arange(1, n + 1) / n - p), np.max(p - np.arange(n) / n))
    return {
        "nmad": float(1.4826 * np.median(np.abs(dz - np.median(dz)))),
        "outlier_fraction": float(np.mean(np.abs(dz) > 0.15)),
        "crps": float(np.mean(crps[ok])),
        "pit_ks": float(ks),
        "coverage_68": float(np.mean(np.abs(p - 0.5) <= COVERAGE_68 / 2)),
    }


def run_catalogue(split: Path, name: str, work: Path) -> list[dict[str, Any]]:
    """RAIL's rows and ours for one exported catalogue."""
    data = np.load(split / f"{name}.npz", allow_pickle=False)
    bands = [str(b) for b in data["bands"]]
    train = rail_table(data["train_mag"], data["train_mag_err"], bands, data["train_z"])
    scored = data["scored"]
    test = rail_table(data["test_mag"][scored], data["test_mag_err"][scored], bands, data["test_z"][scored])
    rows = []
    for algorithm in ALGORITHMS:
        pdf, grid, train_s, _ = run_rail(algorithm, train, test, bands, work)
        scores = grid_scores(pdf, grid, test["redshift"])
        rows.append({"catalogue": name, "method": algorithm, "source": "RAIL", "train_s": train_s, **scores})
        print(f"{name} {algorithm}: {json.dumps(scores)}", flush=True)
    for ours in json.loads((split / f"{name}_ours.json").read_text()):
        if ours.get("pit_ks") is not None:
            keep = {k: ours.get(k) for k in COLUMNS if k not in ("method", "source")}
            rows.append({"catalogue": name, "method": ours["model"], "source": "distributed_pz", **keep})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every exported catalogue, append the rows and write ``results/rail_comparison.md``."""
    parser = argument_parser(
        __doc__,
        catalogues=["zcosmos_bright", "sdss_mgs"],
        out=RESULTS_DIR / f"{NAME}.md",
    )
    parser.add_argument("--split", type=Path, required=True, help="folder written by real_data --export")
    args = parser.parse_args(argv)
    names = [n for n in args.catalogues if (args.split / f"{n}.npz").is_file()]
    if not names:
        print(f"rail_comparison: nothing exported in {args.split}; run benchmarks.real_data --export first")
        return 1
    run = Run(NAME, args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dpz_rail_") as tmp, contextlib.chdir(tmp):
        # RAIL stages may write their outputs into the working directory
        for name in names:
            rows += run_catalogue(args.split, name, Path(tmp))
    sections = [
        f"## {name}\n\n" + markdown_table([r for r in rows if r["catalogue"] == name], COLUMNS)
        for name in dict.fromkeys(r["catalogue"] for r in rows)
    ]
    return run.finish(
        rows,
        "RAIL (FlexZBoost, GPz, KNN) and distributed_pz on the same split",
        SETUP.format(commit=git_commit()),
        *sections,
    )


SETUP = """\
Run after `python -m benchmarks.real_data --export <split>` (commit {commit}). Same training rows,
test rows and bands for every method (the split of `benchmarks/real_data.py`); RAIL's informers
are trained on all training rows with their default settings, ours are the calibrated small
ensembles of `results/real_data.md`. NMAD and outliers (|δz| > 0.15) of the p(z) mode, mean CRPS,
KS distance of the PIT from uniform, share of sources in their central 68 % interval. RAIL's p(z)
are evaluated on a 0.001 grid, ours exactly; `train_s` is RAIL's training time only."""


if __name__ == "__main__":
    sys.exit(main())
