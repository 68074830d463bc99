"""Plot pipeline sources/s against Dask workers from ``results/inference.jsonl``.

One line per model (and ensemble size) of the latest run of each device and precision, with
the ideal linear scaling from one worker dashed; written to ``results/scaling.png``.

    .venv/bin/python -m benchmarks.plot_scaling
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from benchmarks.harness import RESULTS_DIR, argument_parser, opt, read_rows  # noqa: E402
from benchmarks.inference import NAME  # noqa: E402


def latest_pipeline_rows() -> dict[tuple, dict[int, float]]:
    """Sources/s by workers, per (device, precision, model, members), from each key's latest run."""
    rows = [r for r in read_rows(NAME) if r["stage"] == "pipeline" and not r.get("chunk_sweep")]
    latest: dict[tuple, str] = {}
    for r in rows:
        key = r["device"], r["precision"], r["model"], r["members"]
        latest[key] = max(latest.get(key, ""), r["time_utc"])
    series: dict[tuple, dict[int, float]] = defaultdict(dict)
    for r in rows:
        key = r["device"], r["precision"], r["model"], r["members"]
        if r["time_utc"] == latest[key]:
            series[key][r["workers"]] = r["sources_per_s"]
    return series


def plot(out: Path) -> Path:
    """Draw the scaling figure into ``out``."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for (device, precision, model, members), points in sorted(latest_pipeline_rows().items()):
        workers = sorted(points)
        label = f"{model}" + (f" ×{members}" if members > 1 else "") + f" ({device}, {precision})"
        (line,) = ax.plot(workers, [points[w] for w in workers], "o-", label=label)
        if 1 in points:
            ax.plot(workers, [w * points[1] for w in workers], "--", color=line.get_color(), alpha=0.5)
    ax.set_xlabel("Dask workers (1 thread each)")
    ax.set_ylabel("sources / s (whole predict_store call)")
    ax.set_yscale("log")
    ax.set_xticks(sorted({w for points in latest_pipeline_rows().values() for w in points}))
    ax.set_title("dpz predict scaling (dashed: ideal linear from 1 worker)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__, out=opt(RESULTS_DIR / "scaling.png", help="PNG to write"))
    args = parser.parse_args(argv)
    print(plot(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
