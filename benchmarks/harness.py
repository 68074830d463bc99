"""One benchmark harness: warm-up, repeated timed runs, tidy rows appended (never overwritten).

Every row records the benchmark, its parameters, the median and spread of the repeats, the
machine, library versions, the git commit and the command line that produced it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


def synchronize() -> None:
    """Wait for queued GPU work, so a timer measures it (no-op on CPU)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_runs(fn: Callable[[], Any], *, warmup: int = 1, repeats: int = 3) -> dict[str, float]:
    """Seconds per call of ``fn``: median, min, max over ``repeats`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    synchronize()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        synchronize()
        seconds.append(time.perf_counter() - started)
    return {
        "median_s": statistics.median(seconds),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "repeats": repeats,
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import torch

    info = {
        "host_cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    try:
        info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return info


def load_average() -> dict[str, float]:
    """1, 5 and 15 minute load averages: the cores may be shared, so record them with every row."""
    one, five, fifteen = os.getloadavg()
    return {"loadavg_1m": one, "loadavg_5m": five, "loadavg_15m": fifteen}


def write_markdown(name: str, text: str, results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``results/<name>.md`` (regenerated from the rows; the ``.jsonl`` is the record)."""
    path = results_dir / f"{name}.md"
    path.write_text(text)
    return path


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def append_rows(name: str, rows: Iterable[dict[str, Any]], results_dir: Path = RESULTS_DIR) -> Path:
    """Append ``rows`` to ``results/<name>.jsonl`` with machine, versions, commit, time and command."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.jsonl"
    context = {
        "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _git_commit(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
    }
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps({**row, **context}) + "\n")
    return path


def read_rows(name: str, results_dir: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    path = results_dir / f"{name}.jsonl"
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table of ``columns`` (missing values blank; floats to 3 significant digits)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def argument_parser(doc: str, work: str | None = None) -> argparse.ArgumentParser:
    """The parser every benchmark script starts from: its module docstring as the description.

    ``work`` names the default folder (under the system temporary folder) where a script keeps
    its tile and bundles between runs; it adds a ``--work`` option.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if work is not None:
        parser.add_argument(
            "--work",
            default=str(Path(tempfile.gettempdir()) / work),
            help="where the benchmark tile and bundles are kept between runs",
        )
    return parser


def commands_section(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Markdown lines naming every command that produced ``rows`` (for a results table's foot)."""
    return ["Commands:", "", *[f"- `{c}`" for c in sorted({r["command"] for r in rows})], ""]
