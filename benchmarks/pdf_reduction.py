"""What ``--pdf-components K`` costs: CRPS, PIT KS and bytes per source at K = 10, 20 against the full mixture.

    nice -n 10 python -m benchmarks.pdf_reduction [--work DIR] [--n 3000] [--epochs 5]

A small simulated run (made once under --work, then reused): ``dpz simulate`` of two tiles,
``dpz train`` of a DEEPZ ensemble on SIM_0000 (``--splits`` × 2 folds), then the unseen tile
SIM_0001 predicted in this process with each K. The point estimates are the full mixture's for
every K, so NMAD is one number; the table is ``results/pdf_reduction.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.harness import command_line, write_markdown
from distributed_pz.catalog import NO_ESTIMATE, pdf_from_columns, write_table
from distributed_pz.infer.local import predict_tile_local
from distributed_pz.metrics.pdf import ks_statistic, pit
from distributed_pz.metrics.point import nmad
from distributed_pz.models.ensemble import EnsembleDir
from distributed_pz.models.predictor import EnsemblePredictor, PredictOptions
from distributed_pz.survey.store.store import open_store


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


def measure(store: str, ensemble: str, k: int | None, work: Path) -> dict[str, float]:
    """CRPS, PIT KS, NMAD and PDF bytes per source of SIM_0001 with ``--pdf-components k``."""
    predictor = EnsemblePredictor.from_ensemble(
        EnsembleDir(ensemble).read(device="cpu"), PredictOptions(pdf_components=k)
    )
    columns = predict_tile_local(store, "SIM_0001", predictor)
    z_spec = open_store(store).tile("SIM_0001").read(["z_spec"])["z_spec"].astype(np.float64)
    ok = ((columns["flags"] & NO_ESTIMATE) == 0) & np.isfinite(z_spec)
    pdf = pdf_from_columns(columns, {}).subset(ok)
    path = write_table(work / f"k{k or 'full'}.parquet", columns, {})
    return {
        "components": columns["pdf_weights"].shape[1],
        "crps": float(np.mean(pdf.crps(z_spec[ok]))),
        "pit_ks": ks_statistic(pit(pdf, z_spec[ok])),
        "nmad": nmad(columns["z_phot"][ok], z_spec[ok]),
        "pdf_bytes": 3 * 4 * columns["pdf_weights"].shape[1],
        "parquet_bytes": Path(path).stat().st_size / len(columns["object_id"]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "dpz_pdf_reduction"))
    parser.add_argument("--n", type=int, default=3000, help="rows per simulated tile")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--splits", type=int, default=2, help="ensemble splits (members = 2 × splits)")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    store, ensemble = make_run(work, args.n, args.epochs, args.splits)
    rows = [(k, measure(store, ensemble, k, work)) for k in (None, 20, 10)]
    lines = [
        "# Mixture reduction (`--pdf-components K`) on an unseen simulated tile",
        "",
        f"Command: `{command_line(argv)}`; SIM_0001 ({args.n} rows), DEEPZ ensemble of "
        f"{2 * args.splits} members trained {args.epochs} epochs on SIM_0000.",
        "",
        "| K | components | CRPS | PIT KS | NMAD | PDF bytes / source | Parquet bytes / source |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, r in rows:
        lines.append(
            f"| {k or 'full'} | {r['components']} | {r['crps']:.4f} | {r['pit_ks']:.4f} | {r['nmad']:.4f} "
            f"| {r['pdf_bytes']} | {r['parquet_bytes']:.0f} |"
        )
    print("\n".join(lines))
    write_markdown("pdf_reduction", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
