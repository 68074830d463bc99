"""Simulator speed (sources/s) and survey-store size (bytes per source, per array).

.venv/bin/python -m benchmarks.simulator --n 100000 --workers 2

Besides wall-clock sources/s, each row records the load average and the process CPU time, whose
sources per CPU-second times the worker count bounds what idle cores would reach (the cores here
are shared with other jobs).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.harness import (
    append_rows,
    argument_parser,
    load_average,
    markdown_table,
    opt,
    read_rows,
    report,
    time_runs,
)
from distributed_pz.survey.sim.simulate import SimulationConfig
from distributed_pz.survey.sim.simulate_cli import write_simulated_tile
from distributed_pz.survey.store.store import open_store

NAME = "simulator"


def _bytes_by_array(tile_dir: Path) -> dict[str, int]:
    return {
        d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
        for d in sorted(tile_dir.iterdir())
        if d.is_dir()
    }


def main() -> None:
    parser = argument_parser(
        __doc__,
        n=opt(100_000, help="sources in the tile"),
        workers=opt(2, nargs=None, help="simulator threads"),
        repeats=opt(1, help="timed runs (after no warm-up: a run is long)"),
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = str(Path(tmp) / "sim.zarr")

        def simulate_once() -> None:
            shutil.rmtree(url, ignore_errors=True)
            write_simulated_tile(
                open_store(url, "a"), SimulationConfig(n_sources=args.n), workers=args.workers
            )

        cpu_started = time.process_time()
        timing = time_runs(simulate_once, warmup=0, repeats=args.repeats)
        cpu_s = (time.process_time() - cpu_started) / args.repeats
        sizes = _bytes_by_array(Path(url) / "SIM_0000")
    total = sum(sizes.values())
    row = {
        "n_sources": args.n,
        "workers": args.workers,
        **timing,
        "sources_per_s": args.n / timing["median_s"],
        "cpu_s": cpu_s,
        "sources_per_cpu_s": args.n / cpu_s,
        **load_average(),
        "bytes_per_source": total / args.n,
        **{f"bytes_per_source_{name}": size / args.n for name, size in sizes.items()},
    }
    append_rows(NAME, [row])
    rows = read_rows(NAME)
    table = markdown_table(
        rows,
        [
            "time_utc",
            "n_sources",
            "workers",
            "median_s",
            "sources_per_s",
            "sources_per_cpu_s",
            "loadavg_1m",
            "bytes_per_source",
            "bytes_per_source_cutout",
            "bytes_per_source_flux_exp",
            "bytes_per_source_mag",
        ],
    )
    report(
        NAME, "Simulator speed and store size", f"Machine and versions in `{NAME}.jsonl`.", table, rows=rows
    )
    print(table)


if __name__ == "__main__":
    main()
