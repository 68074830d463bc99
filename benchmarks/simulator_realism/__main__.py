"""Is the simulator as hard as the real sky? Random-forest difficulty, sim-to-real transfer, colours, images, speed.

.venv/bin/python -m benchmarks.simulator_realism [--quick]

Every comparison with real data follows the realism review (``findings/SIMULATOR-REALISM.md``):
the simulator is run through the real catalogue's filter curves (zCOSMOS: CFHT u*, Subaru
g+ r+ i+ z+, UKIRT J, CFHT Ks; SDSS: the shipped ugriz), with per-band depths fitted to the real
error–magnitude relation, the real selection applied to the observed magnitudes (zCOSMOS-bright
i < 22.5; SDSS MGS 16 < r < 17.77, z < 0.3), and the simulated galaxies resampled to the real
(z, i) [zCOSMOS] or (z, r) [SDSS] distribution. The random forest is always the same: 200 trees,
min_samples_leaf 2, max_features 0.5, on magnitudes + adjacent colours (non-detections at their
1σ limit, missing bands at the training median). The KiDS+VIKING and image forests are tested
on another tile (seed) than they were trained on — tiles have their own zero points, so that is
the honest split; the real catalogues come from one field each (zCOSMOS, split 80/20) or one
calibrated survey (SDSS MGS), so their simulated counterparts are trained and tested on
disjoint halves of one tile. NMAD = 1.4826 median |Δ − median Δ|, Δ = (z_p − z_s)/(1 + z_s); outliers |Δ| > 0.15.

Needs the shared real catalogues (``$DPZ_SHARED_DATA`` or ``../shared/data``); without them it
says so and exits 0. Results: ``results/simulator_realism.{jsonl,md}`` and two PNGs.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks.harness import RESULTS_DIR, append_rows, write_markdown
from benchmarks.real_data import shared_data_dir
from benchmarks.simulator_realism.common import NAME
from benchmarks.simulator_realism.imaging import image_checks, speed
from benchmarks.simulator_realism.measures import kids_difficulty, sdss_difficulty, zcosmos_all
from benchmarks.simulator_realism.report import plots, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller samples (a smoke run; results not written)"
    )
    args = parser.parse_args(argv)
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
