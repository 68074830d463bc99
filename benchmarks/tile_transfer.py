"""Photo-z across a survey: trained on a few tiles, measured on tiles never seen.

Each simulated tile has its own photometric zero points (0.01 mag per band per tile and 0.02 per
exposure, the KiDS DR4 calibration scatter). An ensemble is trained on ``--train-tiles`` tiles and
predicts ``--unseen`` others; one row per model, remedy and survey seed:

- ``none``: no zero-point jitter, calibration on the out-of-fold rows as they are;
- ``jitter``: members trained with zero-point jitter (``--zeropoint-jitter 1``, the default);
- ``calibration``: the calibration sees the survey's error (``--survey-calibration``: whole tiles
  left out with as many tiles as folds, else out-of-fold rows under redrawn zero points);
- ``jitter+calibration``: both;
- ``locus``: ``none``'s ensemble, each unseen tile homogenised first (``dpz predict --homogenise``:
  stellar-locus regression against the training tiles' stars);
- ``jitter+locus``: ``jitter``'s ensemble, homogenised (what ``dpz demo`` does);
- ``all``: ``jitter+calibration``'s ensemble, homogenised.

With ``--real zcosmos_bright`` the survey is a real catalogue instead: a seeded 80 % of its rows
is the training tile, the other 20 % is cut into ``--unseen`` pseudo-tiles, each moved by its own
per-band zero points drawn at the band set's calibration scatter (real galaxies, no stars: the
locus remedies do not apply).

Columns: NMAD and outliers of the galaxies' out-of-fold predictions (the training tiles) and of
the unseen tiles' galaxies, their ratio, per-tile |median δz| in units of the pooled σ68 (median
and worst tile), per-tile PIT KS (median), pooled PIT KS and 68 % coverage, and ``zp_rms_mag``:
the rms over unseen tiles and bands of the zero points left after the remedy (the simulator's
truth, less its mean over bands, against the training tiles' mean). Prediction uses the one
predictor on each whole tile in this process (the Dask pipeline computes the same). Rows measured
before the locus's reference shift and the per-tile median δz (commit 5678db5) are in the git
history of this file. The GaZNet-C9 rows of 2026-12-07 from 11:21 on were measured with a point
ensemble's width as the standard error of its members' mean (commit 1a6e525, reverted: on the real
pseudo-tiles it made every remedy too narrow, ``point_width.md``); a diagnostic ran beside them.
The GaZNet-C9 rows from 14:38 on are calibrated on a share held out of every member and pooled
over all members (commit a0f316f: ``dpz train --calibration-share``, default 0.15 for point
ensembles; calibration bins of 250 rows), run beside a helper's profiling (load 2.5–4.7).
The GaZNet-C9 rows from 19:41 (seventh session) on are calibrated by the kernel of their
residuals (``models/kernel_calibration.py``: 20 Gaussians at the standardised residuals'
quantiles per z_phot bin, in place of one Gaussian with a width temperature), run alone (load 1.4–2.1).

    python -m benchmarks.tile_transfer --models deepz gaznet_c9 --seed 0
    python -m benchmarks.tile_transfer --real zcosmos_bright --seed 0
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from benchmarks.harness import append_rows, argument_parser, load_average, markdown_table, read_rows, report
from benchmarks.real_data import CATALOGUES, ingest, shared_data_dir
from distributed_pz.catalog import NO_ESTIMATE, pdf_from_columns
from distributed_pz.cli import main as dpz
from distributed_pz.evaluate.survey import survey_summary
from distributed_pz.infer.local import predict_tile_local
from distributed_pz.infer.stream import tile_zeropoints
from distributed_pz.metrics.point import point_metrics
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.inputs import zeropoint_scatter
from distributed_pz.models.locus import correct_photometry
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.survey.store.schema import CLASS_GALAXY
from distributed_pz.survey.store.store import open_store

NAME = "tile_transfer"
REMEDIES = {
    "none": (0.0, False, False),
    "jitter": (1.0, False, False),
    "calibration": (0.0, True, False),
    "jitter+calibration": (1.0, True, False),
    "locus": (0.0, False, True),
    "jitter+locus": (1.0, False, True),
    "all": (1.0, True, True),
}
"""Remedy -> (zero-point jitter, survey calibration, homogenise)."""
HELD_OUT = 0.2
"""Share of a real catalogue's rows cut into pseudo-tiles (``--real``)."""
COLUMNS = [
    "survey",
    "model",
    "remedy",
    "survey_seed",
    "oof_nmad",
    "unseen_nmad",
    "nmad_ratio",
    "oof_outliers",
    "unseen_outliers",
    "tile_bias_sigma68_median",
    "tile_bias_sigma68_max",
    "tile_ks_median",
    "pooled_ks",
    "pooled_cov68",
    "zp_rms_mag",
    "seconds",
    "loadavg_1m",
]


def simulate(work: Path, n: int, tiles: int, seed: int) -> str:
    """The survey store (catalogue-only tiles ``SIM_0000``...), simulated once per seed."""
    store = work / f"survey-{seed}-{n}-{tiles}.zarr"
    if not store.exists():
        argv = ["simulate", "--out", str(store), "--n", str(n), "--tiles", str(tiles), "--seed", str(seed)]
        assert dpz([*argv, "--no-cutouts"]) == 0
    return str(store)


def train(
    store: str, out: Path, model: str, train_tiles: list[str], jitter: float, survey: bool, epochs: int
) -> None:
    """A 2 × 2 ensemble, through ``dpz train`` (skipped when already trained)."""
    argv = ["train", "--store", store, "--out", str(out), "--model", model, "--splits", "2", "--folds", "2"]
    argv += [a for t in train_tiles for a in ("--tile", t)]
    argv += ["--epochs", str(epochs), "--zeropoint-jitter", str(jitter), "--num-workers", "2"]
    argv += ["--survey-calibration"] if survey else []
    assert dpz(argv) == 0, f"dpz {' '.join(argv)}"


def real_store(work: Path, catalogue: str, n_tiles: int, seed: int) -> str:
    """A real catalogue's store of pseudo-tiles: ``TRAIN``, a seeded 80 % of its rows, as they are;
    the other 20 % cut into ``n_tiles`` tiles ``P0``... each moved by its own per-band zero points,
    drawn at the band set's calibration scatter and recorded as ``zeropoint_offset_mag``."""
    store = work / f"{catalogue}-{seed}-{n_tiles}.zarr"
    if store.exists():
        return str(store)
    known = {c.name: c for c in CATALOGUES}[catalogue]
    with tempfile.TemporaryDirectory() as tmp:
        data = ingest(known, shared_data_dir(), Path(tmp) / "ingested.zarr")["all"]
        attrs = dict(open_store(f"{tmp}/ingested.zarr").tile(f"{catalogue}_all").attrs)
    rng = np.random.default_rng(seed)
    order = rng.permutation(data.n_rows)
    held = int(round(HELD_OUT * data.n_rows))
    out = open_store(str(store), mode="w")
    out.write_tile("TRAIN", data.take(np.sort(order[held:])).arrays, attrs)
    scatter = np.asarray(zeropoint_scatter(data.bands, data.band_set)[0])
    for i, rows in enumerate(np.array_split(np.sort(order[:held]), n_tiles)):
        offsets = rng.normal(0.0, scatter)
        moved = correct_photometry(data.take(rows).arrays, -offsets, data.bands)
        recorded = dict(zip(data.bands, map(float, offsets), strict=True))
        out.write_tile(f"P{i}", moved, {**attrs, "zeropoint_offset_mag": recorded})
    return str(store)


def oof_galaxies(ensemble: EnsembleDir, store: str, train_tiles: list[str]) -> dict[str, float]:
    """Point metrics of the out-of-fold galaxies (every row where the store has no class)."""
    table = pq.read_table(ensemble.oof_catalog).to_pydict()
    ids = np.asarray(table["object_id"])
    classes = {}
    for name in train_tiles:
        tile = open_store(store).tile(name)
        if tile.has("class"):
            data = tile.read(["object_id", "class"])
            classes.update(zip(data["object_id"].tolist(), data["class"].tolist(), strict=True))
    galaxy = np.array([classes.get(i, CLASS_GALAXY) == CLASS_GALAXY for i in ids.tolist()])
    z_phot, z_spec = np.asarray(table["z_phot"], float), np.asarray(table["z_spec"], float)
    keep = galaxy & np.isfinite(z_phot)
    return point_metrics(z_phot[keep], z_spec[keep])


def true_offsets(store: str, name: str) -> np.ndarray:
    """A tile's known zero-point offsets less their mean (what colours can see): a simulated tile's,
    a pseudo-tile's (:func:`real_store`), zero for the real catalogue's own."""
    tile = open_store(store).tile(name)
    known = tile.attrs.get("zeropoint_offset_mag") or tile.attrs.get("simulator", {}).get(
        "zeropoint_offset_mag"
    )
    offsets = np.array([(known or {}).get(b, 0.0) for b in tile.bands])
    return offsets - offsets.mean()


def predict_unseen(
    path: Path, store: str, tiles: list[str], homogenise: bool, train_tiles: list[str]
) -> dict[str, Any]:
    """Predict every unseen tile whole (homogenised first if asked); the survey summary of its
    galaxies and ``zp_rms``, the rms of the tiles' zero points left (after the correction) against
    the training tiles' mean."""
    ensemble = EnsembleDir(path).read(device="cpu")
    predictor = EnsemblePredictor.from_ensemble(ensemble)
    reference = np.mean([true_offsets(store, t) for t in train_tiles], axis=0)
    parts, left = [], []
    for name in tiles:
        tile = open_store(store).tile(name)
        found = tile_zeropoints(store, name, ensemble.locus.to_dict()) if homogenise else {}
        if "zeropoint_offsets" not in found and homogenise:
            print(f"{name}: {found['zeropoints']}")
        offsets = found.get("zeropoint_offsets")
        left.append(true_offsets(store, name) - reference - [(offsets or {}).get(b, 0.0) for b in tile.bands])
        out = predict_tile_local(store, name, predictor, offsets=offsets)
        truth = tile.read([a for a in ("z_spec", "class") if tile.has(a)])
        ok = (out["flags"] & NO_ESTIMATE) == 0
        parts.append(
            {
                **{k: v[ok] for k, v in out.items()},
                "z_spec": truth["z_spec"][ok],
                "class": truth.get("class", np.zeros(len(ok), np.uint8))[ok],
                "tile": np.full(ok.sum(), name),
            }
        )
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    pdf = pdf_from_columns(cols, {})
    z_phot, z_spec = cols["z_phot"].astype(float), cols["z_spec"].astype(float)
    summary = survey_summary(z_phot, z_spec, cols["tile"], cols["class"], pdf, (0.15, 0.02))
    return {**summary, "zp_rms": float(np.sqrt(np.mean(np.square(left))))}


def run_one(
    args, store: str, model: str, remedy: str, train_tiles: list[str], unseen: list[str]
) -> dict[str, Any]:
    jitter, survey, homogenise = REMEDIES[remedy]
    started = time.perf_counter()
    trained = "jitter" if jitter else "plain"
    path = (
        Path(args.work) / f"ens-{args.seed}-{model}-{trained}-{'survey' if survey else 'oof'}-{args.epochs}"
    )
    train(store, path, model, train_tiles, jitter, survey, args.epochs)
    oof = oof_galaxies(EnsembleDir(path), store, train_tiles)
    unseen_summary = predict_unseen(path, store, unseen, homogenise, train_tiles)
    pooled, spread = unseen_summary["pooled"], unseen_summary["spread"]
    return {
        "survey": args.real or "simulated",
        "model": model,
        "remedy": remedy,
        "survey_seed": args.seed,
        "n_per_tile": args.n,
        "train_tiles": len(train_tiles),
        "unseen_tiles": len(unseen),
        "epochs": args.epochs,
        "oof_nmad": oof["nmad"],
        "oof_outliers": oof["outlier_fraction"],
        "unseen_nmad": pooled["nmad"],
        "nmad_ratio": pooled["nmad"] / oof["nmad"],
        "unseen_outliers": pooled["outlier_fraction"],
        "tile_bias_sigma68_median": spread["abs_bias_over_sigma68_median"],
        "tile_bias_sigma68_max": spread["abs_bias_over_sigma68_max"],
        "tile_ks_median": spread["ks_median"],
        "pooled_ks": pooled["pit_ks"],
        "pooled_cov68": pooled["coverage_68"],
        "zp_rms_mag": unseen_summary["zp_rms"],
        "tiles": unseen_summary["tiles"],
        "seconds": time.perf_counter() - started,
        **load_average(),
    }


def main() -> int:
    parser = argument_parser(
        __doc__, "seed", work="dpz_bench_tile_transfer", models=["deepz", "gaznet_c9"], n=4000, epochs=30
    )
    parser.add_argument("--remedies", nargs="+", default=list(REMEDIES), choices=list(REMEDIES))
    parser.add_argument("--train-tiles", type=int, default=2, help="tiles trained on")
    parser.add_argument("--unseen", type=int, default=5, help="unseen tiles predicted")
    parser.add_argument(
        "--real",
        choices=[c.name for c in CATALOGUES if "all" in c.files],
        help="a real catalogue cut into pseudo-tiles instead of the simulator (no stars: no locus remedies)",
    )
    args = parser.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.real:
        store = real_store(Path(args.work), args.real, args.unseen, args.seed)
        train_tiles, unseen = ["TRAIN"], [f"P{i}" for i in range(args.unseen)]
    else:
        store = simulate(Path(args.work), args.n, args.train_tiles + args.unseen, args.seed)
        names = open_store(store).tile_names()
        train_tiles, unseen = names[: args.train_tiles], names[args.train_tiles :]
    remedies = [r for r in args.remedies if not (args.real and REMEDIES[r][2])]
    for model in args.models:
        for remedy in remedies:
            row = run_one(args, store, model, remedy, train_tiles, unseen)
            append_rows(NAME, [row])  # each row as soon as it is measured
            print(markdown_table([row], COLUMNS))
    rows = read_rows(NAME)
    report(
        NAME,
        "Photo-z across a survey: trained on a few tiles, measured on tiles never seen",
        __doc__.split("\n\n    python")[0].split("\n", 1)[1].strip(),
        markdown_table(rows, ["time_utc", *COLUMNS]),
        rows=rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
