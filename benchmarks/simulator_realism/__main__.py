"""Command line of the simulator realism benchmark (the method is the package docstring)."""

from __future__ import annotations

import sys
import time

import benchmarks.simulator_realism as package
from benchmarks.harness import RESULTS_DIR, append_rows, argument_parser, opt, write_markdown
from benchmarks.real_data import shared_data_dir
from benchmarks.simulator_realism.common import NAME
from benchmarks.simulator_realism.imaging import image_checks, speed
from benchmarks.simulator_realism.measures import kids_difficulty, sdss_difficulty, zcosmos_all
from benchmarks.simulator_realism.report import plots, report


def main(argv: list[str] | None = None) -> int:
    quick = opt(help="smaller samples (a smoke run; results not written)")
    args = argument_parser(package.__doc__, quick=quick).parse_args(argv)
    data = shared_data_dir()
    if not (data / "real/zcosmos_bright").is_dir() or not (data / "real/sdss_mgs").is_dir():
        print(f"simulator_realism: shared data not found at {data}; skipped")
        return 0
    scale = 0.2 if args.quick else 1.0
    started = time.perf_counter()
    results: dict = {}
    results.update(kids_difficulty(int(40_000 * scale), int(15_000 * scale)))
    print("kids", {k: round(v, 4) for k, v in results.items()}, flush=True)
    results.update(sdss_difficulty(data, int(40_000 * scale)))
    print("sdss", results["sdss_sim_nmad"], results["sdss_real_nmad"], flush=True)
    zc, samples = zcosmos_all(data, int(60_000 * scale))
    results.update(zc)
    print("zcosmos", {k: v for k, v in zc.items() if k != "colours"}, flush=True)
    results.update(image_checks(int(12_000 * scale)))
    print("images", {k: v for k, v in results.items() if k.startswith("image")}, flush=True)
    results.update(speed(int(20_000 * scale), 2))
    results["wall_s"] = time.perf_counter() - started
    if args.quick:
        print(report({**results, "time_utc": "quick", "commit": "quick"}, "quick"))
        return 0
    path = append_rows(NAME, [results])
    row = [line for line in path.read_text().splitlines() if line.strip()][-1]
    import json

    recorded = json.loads(row)
    plots(samples, RESULTS_DIR)
    text = report(recorded, "PYTHONPATH=. .venv/bin/python -m benchmarks.simulator_realism")
    write_markdown(NAME, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
