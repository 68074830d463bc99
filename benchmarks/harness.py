"""One benchmark harness: warm-up, repeated timed runs, tidy rows appended (never overwritten).

Every row records the benchmark, its parameters, the median and spread of the repeats, the
machine, library versions, the git commit and the command line that produced it (``python -m
benchmarks.<script> ...``, whatever checkout ran it).

The scripts share their command line and their report: :func:`argument_parser` declares the
options several scripts take (:data:`OPTIONS`; a script names the ones it takes, with its own
defaults), :func:`report` writes a Markdown report (title, paragraphs and tables, the commands
that produced its rows) and :class:`Run` is the common frame of the accuracy scripts (threads,
timing, rows appended with the load average, report with the machine at its foot).

Only the standard library is imported here (torch lazily): ``rail_comparison`` runs in a venv
of its own.
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]
"""The repository root (commands are recorded relative to it)."""


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


def _torch() -> Any:
    """The torch module, or None (``rail_comparison``'s venv has none)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def machine() -> dict[str, Any]:
    """What the numbers were measured on (torch version and device where torch is installed)."""
    torch = _torch()
    info: dict[str, Any] = {
        "host_cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    if torch is not None:
        info["torch"] = torch.__version__
    info["device"] = (
        torch.cuda.get_device_name(0) if torch is not None and torch.cuda.is_available() else "cpu"
    )
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


def command_line(argv: list[str] | None = None) -> str:
    """``argv`` (this process's by default) as a command run from the repository root.

    A script under ``benchmarks/`` becomes ``python -m benchmarks.<module> ARGS`` whichever
    checkout (worktree, copy) ran it; another script is named by its file name.
    """
    script, *rest = argv if argv is not None else (sys.argv or [""])
    path = Path(script).resolve()
    if path.suffix == ".py" and path.is_relative_to(ROOT / "benchmarks"):
        module = [p for p in path.relative_to(ROOT).with_suffix("").parts if p != "__main__"]
        head = "python -m " + ".".join(module)
    elif path.name == "__main__.py":
        head = f"python -m {path.parent.name}"
    else:
        head = f"python {path.name}" if script else "python"
    return " ".join([head, *rest])


def git_commit() -> str:
    """The short commit of the checkout in the working folder ("unknown" outside git)."""
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
        "commit": git_commit(),
        "command": command_line(),
        "machine": machine(),
    }
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps({**row, **context}) + "\n")
    return path


def read_rows(name: str, results_dir: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Every row of ``results/<name>.jsonl`` (none when it does not exist)."""
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


def commands_section(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Markdown lines naming every command that produced ``rows`` (for a results table's foot)."""
    return ["Commands:", "", *[f"- `{c}`" for c in sorted({r["command"] for r in rows})], ""]


def report(
    name: str,
    title: str,
    *parts: str,
    rows: Iterable[dict[str, Any]] = (),
    out: Path | None = None,
    results_dir: Path = RESULTS_DIR,
) -> Path:
    """Write a Markdown report: ``# title``, then ``parts`` (paragraphs, tables, ``## headings``).

    Parts are separated by a blank line; the commands that produced ``rows`` (appended rows,
    each with its ``command``) close the report. It goes to ``out`` (its folder created), else to
    ``results/<name>.md``.
    """
    rows = list(rows)
    commands = ["\n".join(commands_section(rows)).rstrip("\n")] if rows else []
    text = "\n\n".join([f"# {title}", *parts, *commands]) + "\n"
    if out is None:
        return write_markdown(name, text, results_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


# --- the command line --------------------------------------------------------------------------
class _Names(argparse.Action):
    """A list of names, space- or comma-separated (``--models a b`` or ``--models a,b``)."""

    def __init__(self, *args: Any, allowed: Iterable[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.allowed = None if allowed is None else list(allowed)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        names = [n for v in values for n in v.split(",") if n]
        unknown = [n for n in names if self.allowed is not None and n not in self.allowed]
        if unknown:
            parser.error(
                f"argument {option_string}: invalid choice: {unknown[0]!r} (choose from {self.allowed})"
            )
        setattr(namespace, self.dest, names)


OPTIONS: dict[str, dict[str, Any]] = {
    "work": {"help": "where the benchmark tile and bundles are kept between runs"},
    "quick": {"action": "store_true", "help": "a smaller, faster run"},
    "n": {"type": int, "help": "sources in the simulated tile"},
    "train_sources": {"type": int, "help": "sources of the training tile"},
    "test_sources": {"type": int, "default": 3000, "help": "sources of the test tile"},
    "models": {
        "nargs": "+",
        "action": _Names,
        "metavar": "MODEL",
        "help": "registered model names (space- or comma-separated)",
    },
    "catalogues": {
        "nargs": "+",
        "action": _Names,
        "metavar": "NAME",
        "help": "catalogue names (space- or comma-separated)",
    },
    "ensemble_members": {"type": int, "default": 5, "help": "members of the DEEPZ ensemble"},
    "device": {"default": "cpu", "help": "cpu, cuda, cuda:1..."},
    "precision": {"default": "fp32", "help": "autocast precision"},
    "threads": {"type": int, "default": 1, "help": "torch CPU threads"},
    "workers": {"type": int, "nargs": "+", "help": "pipeline cluster sizes"},
    "batch_size": {"type": int, "default": 1024, "help": "rows per forward pass"},
    "rows_per_task": {"type": int, "default": 2048, "help": "rows per pipeline task"},
    "repeats": {"type": int, "help": "timed repeats"},
    "epochs": {"type": int, "help": "most epochs"},
    "epochs_image": {"type": int, "help": "epochs of models reading cutouts"},
    "seed": {"type": int, "default": 0, "help": "seed"},
    "out": {"type": Path, "help": "Markdown report to write"},
}
"""The options several scripts take (``argparse`` keywords), added before a script's own."""
_KEEP = object()


@dataclass(frozen=True)
class Opt:
    """A shared option as one script takes it: its default and any other keywords it changes."""

    default: Any = _KEEP
    changes: dict[str, Any] = field(default_factory=dict)


def opt(default: Any = _KEEP, **changes: Any) -> Opt:
    """A shared option with ``default`` (the shared one if not given) and ``changes`` (``help``...).

    ``nargs=None`` makes a one-value option of a list one.
    """
    return Opt(default, changes)


def argument_parser(doc: str, *names: str, work: str | None = None, **shared: Any) -> argparse.ArgumentParser:
    """The parser every benchmark script starts from: its module docstring as the description.

    ``work`` names the default folder (under the system temporary folder) where a script keeps
    its tile and bundles between runs; it adds a ``--work`` option. ``names`` are options of
    :data:`OPTIONS` (``rows_per_task`` is ``--rows-per-task``) taken as they are; every keyword
    adds one more with its value as this script's default, or with an :func:`opt` changing more
    than the default. They are added in the order of :data:`OPTIONS`; a script adds its own
    options to the parser returned.
    """
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if work is not None:
        shared = {"work": opt(str(Path(tempfile.gettempdir()) / work)), **shared}
    chosen = {**dict.fromkeys(names, Opt()), **shared}
    for name in sorted(chosen, key=list(OPTIONS).index):  # one order in every script's --help
        value = chosen[name] if isinstance(chosen[name], Opt) else Opt(chosen[name])
        spec = {**OPTIONS[name], **value.changes}
        if value.default is not _KEEP:
            spec["default"] = value.default
        if spec.get("action") is _Names and "choices" in spec:
            spec["allowed"] = spec.pop("choices")
            spec["metavar"] = "{" + ",".join(spec["allowed"]) + "}"
        parser.add_argument("--" + name.replace("_", "-"), **{k: v for k, v in spec.items() if v is not None})
    return parser


# --- the accuracy scripts' frame ---------------------------------------------------------------
class Run:
    """One accuracy run (``model_zoo_accuracy``, ``paper_claims``, ``real_data``, ``rail_comparison``).

    Started with the parsed arguments: sets ``--threads`` torch threads (when the script takes
    it; torch imported only then) and starts the clock. :meth:`finish` appends the rows (with the
    load average) and writes ``--out``: title, the command, the parts and the machine.
    """

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name, self.args = name, args
        self.threads = getattr(args, "threads", None)
        if self.threads is not None:
            import torch

            torch.set_num_threads(self.threads)
        self.load_start = os.getloadavg()[0]
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started

    def machine_line(self, load: dict[str, float]) -> str:
        """Total time, machine, load at the start and end, torch threads and version, device."""
        m = machine()
        plural = "" if self.threads == 1 else "s"
        torch = f", {self.threads} torch thread{plural}), torch {m['torch']}," if self.threads else "),"
        return (
            f"Total {self.seconds:.0f} s on {m['host_cpu']} ({m['cpu_count']} cores shared with other jobs, "
            f"1-minute load average {self.load_start:.1f} at the start, {load['loadavg_1m']:.1f} / "
            f"{load['loadavg_5m']:.1f} / {load['loadavg_15m']:.1f} at the end{torch} device {m['device']}."
        )

    def finish(self, rows: list[dict[str, Any]], title: str, *parts: str) -> int:
        """Append ``rows`` with the load average, write the report to ``--out``; exit status 0."""
        load = load_average()
        append_rows(self.name, [{**r, **load} for r in rows])
        out = report(
            self.name,
            title,
            f"Command: `{command_line()}`",
            *parts,
            self.machine_line(load),
            out=self.args.out,
        )
        print(f"wrote {out} ({self.seconds:.0f} s)")
        return 0
