"""What ``--pdf-components K`` costs: CRPS, PIT KS and bytes per source at K = 10, 20 against the full mixture.

    python -m benchmarks.pdf_reduction --sample demo --ensemble demo_output/bundles/deepz \\
        --store demo_output/survey.zarr --tile SIM_0002 --tile SIM_0003 --tile SIM_0004
    python -m benchmarks.pdf_reduction            # a small simulated run, made once under --work

Each ``--tile`` of ``--store`` is predicted whole in this process by the ensemble (its calibration
applied, each tile homogenised against its stellar locus when it has one and the tile has
stars, as ``dpz predict --homogenise``), once with the full pooled mixture and once per K; the
point estimates are the full mixture's for every K, so NMAD is one number. Without
``--ensemble`` a small run is made once under ``--work``: ``dpz simulate`` of two tiles and a DEEPZ
ensemble trained on SIM_0000, measured on SIM_0001. Rows go to ``results/pdf_reduction.jsonl``;
the table, one row per sample and K, is ``results/pdf_reduction.md``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import append_rows, argument_parser, load_average, markdown_table, read_rows, report
from distributed_pz.catalog import NO_ESTIMATE, pdf_from_columns, write_table
from distributed_pz.infer.local import predict_tile_local
from distributed_pz.infer.stream import tile_zeropoints
from distributed_pz.metrics.pdf import ks_statistic, pit
from distributed_pz.metrics.point import nmad
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.predictor import EnsemblePredictor, PredictOptions
from distributed_pz.survey.store.store import open_store

NAME = "pdf_reduction"
COLUMNS = [
    "sample",
    "K",
    "components",
    "n",
    "crps",
    "pit_ks",
    "nmad",
    "pdf_bytes",
    "parquet_bytes",
    "loadavg_1m",
]


def dpz(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "distributed_pz.cli", *args], check=True)


def make_run(work: Path, n: int, epochs: int, splits: int) -> tuple[str, str]:
    """The simulated store and the trained ensemble (made once)."""
    store, ensemble = work / "sim.zarr", work / "ensemble"
    if not store.exists():
        dpz("simulate", "--out", str(store), "--n", str(n), "--tiles", "2", "--no-cutouts")
    if not (ensemble / "ensemble.json").exists():
        dpz("train", "--store", str(store), "--tile", "SIM_0000", "--model", "deepz", "--out", str(ensemble),
            "--splits", str(splits), "--folds", "2", "--epochs", str(epochs), "--num-workers", "1")  # fmt: skip
    return str(store), str(ensemble)


def predict(store: str, ensemble: str, tiles: list[str], k: int | None) -> dict[str, np.ndarray]:
    """Catalogue columns and ``z_spec`` of every tile, with ``--pdf-components k``."""
    read = EnsembleDir(ensemble).read(device="cpu")
    predictor = EnsemblePredictor.from_ensemble(read, PredictOptions(pdf_components=k))
    parts = []
    for name in tiles:
        offsets = None
        if read.locus is not None:  # "not corrected: ..." without stars, as dpz predict does
            offsets = tile_zeropoints(store, name, read.locus.to_dict()).get("zeropoint_offsets")
        z_spec = open_store(store).tile(name).read(["z_spec"])["z_spec"]
        parts.append({**predict_tile_local(store, name, predictor, offsets=offsets), "z_spec": z_spec})
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def measure(sample: str, columns: dict[str, np.ndarray], k: int | None, work: Path) -> dict[str, float]:
    """CRPS, PIT KS, NMAD and bytes per source of the predicted rows with a finite ``z_spec``."""
    z_spec = columns.pop("z_spec").astype(np.float64)
    ok = ((columns["flags"] & NO_ESTIMATE) == 0) & np.isfinite(z_spec)
    pdf = pdf_from_columns(columns, {}).subset(ok)
    path = write_table(work / f"{sample}-k{k or 'full'}.parquet", columns, {})
    return {
        "sample": sample,
        "K": k or "full",
        "components": columns["pdf_weights"].shape[1],
        "n": int(ok.sum()),
        "crps": float(np.mean(pdf.crps(z_spec[ok]))),
        "pit_ks": ks_statistic(pit(pdf, z_spec[ok])),
        "nmad": nmad(columns["z_phot"][ok], z_spec[ok]),
        "pdf_bytes": 3 * 4 * columns["pdf_weights"].shape[1],
        "parquet_bytes": Path(path).stat().st_size / len(columns["object_id"]),
        **load_average(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__, work="dpz_pdf_reduction", n=3000, epochs=5)
    parser.add_argument(
        "--splits", type=int, default=2, help="small run: ensemble splits (members = 2 × splits)"
    )
    parser.add_argument("--ensemble", help="a trained ensemble to measure (default: the small run's)")
    parser.add_argument("--store", help="the store of --tile")
    parser.add_argument("--tile", action="append", default=[], help="a tile to predict (repeatable)")
    parser.add_argument("--sample", default="simulated SIM_0001", help="the rows' label in the table")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.ensemble:
        store, ensemble, tiles = args.store, args.ensemble, args.tile
    else:
        (store, ensemble), tiles = make_run(work, args.n, args.epochs, args.splits), ["SIM_0001"]
    for k in (None, 20, 10):
        started = time.perf_counter()
        row = measure(args.sample, predict(store, ensemble, tiles, k), k, work)
        append_rows(NAME, [{**row, "seconds": time.perf_counter() - started}])
        print(markdown_table([row], COLUMNS))
    rows = read_rows(NAME)
    report(
        NAME,
        "Mixture reduction (`--pdf-components K`): what K Gaussians per source cost",
        __doc__.split("\n\n", 1)[1].split("\n\n", 1)[1].strip(),
        markdown_table(rows, ["time_utc", *COLUMNS]),
        rows=rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
