"""Progress of an ensemble run: ``status.json`` in the output directory, and a line per change.

The Ray Train controller calls :class:`ProgressCallback` after every lockstep report with the
metrics of every worker; it keeps each member's state (pending, running, done, failed), epoch and
losses, and rewrites ``status.json`` atomically. :class:`StatusWatcher` runs on the driver and
prints one line whenever the file changes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import ray.train

from distributed_pz._files import write_json

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


def new_status(member_ids: Iterable[str], done: Iterable[str]) -> dict[str, Any]:
    """Status of a run about to start: ``done`` members finished, the others pending."""
    done = set(done)
    members = {m: {"state": DONE if m in done else PENDING} for m in member_ids}
    return _with_counts({"members": members, "pretrain": None, "worker_failures": 0, "started": time.time()})


def _with_counts(status: dict[str, Any]) -> dict[str, Any]:
    states = [m["state"] for m in status["members"].values()]
    status["counts"] = {s: states.count(s) for s in (PENDING, RUNNING, DONE, FAILED)}
    status["updated"] = time.time()
    return status


class ProgressCallback(ray.train.UserCallback):
    """Keeps ``status.json`` current from the workers' reports (runs in the Train controller).

    Workers report ``rank``, ``phase`` (``"pretrain"``, ``"member"`` or ``"idle"``), and while
    training ``member``, ``epoch`` (epochs done), ``epochs``, ``train_loss``, ``val_loss``,
    ``resumed_from``; ``finished`` lists what they completed since their previous report.
    """

    def __init__(self, path: str | Path, status: dict[str, Any]) -> None:
        self.path = Path(path)
        self.status = status
        write_json(self.path, _with_counts(self.status))

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        members = self.status["members"]
        for worker in metrics:
            for name in worker.get("finished", ()):
                if name in members:
                    members[name] = {**members[name], "state": DONE}
            if worker.get("phase") == "pretrain":
                self.status["pretrain"] = _progress(worker)
            elif worker.get("phase") == "member":
                members[worker["member"]] = {"state": RUNNING, **_progress(worker)}
            if "pretrain" in worker.get("finished", ()):
                self.status["pretrain"] = {**(self.status["pretrain"] or {}), "state": DONE}
        write_json(self.path, _with_counts(self.status))

    def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
        failed_ranks = set(worker_exceptions)
        for name, member in self.status["members"].items():
            if member["state"] == RUNNING and member.get("rank") in failed_ranks:
                self.status["members"][name] = {**member, "state": FAILED}
        self.status["worker_failures"] += 1
        self.status["last_error"] = "; ".join(f"rank {r}: {e!r}"[:500] for r, e in worker_exceptions.items())
        write_json(self.path, _with_counts(self.status))


def _progress(worker: dict[str, Any]) -> dict[str, Any]:
    keys = ("rank", "pid", "epoch", "epochs", "train_loss", "val_loss", "resumed_from")
    return {k: worker[k] for k in keys if k in worker}


def progress_line(status: dict[str, Any]) -> str:
    """One line: counts, then epoch and losses of every running member."""
    c = status["counts"]
    n = sum(c.values())
    parts = [
        f"[{status['updated'] - status['started']:6.1f} s] members {c[DONE]}/{n} done, "
        f"{c[RUNNING]} running, {c[FAILED]} failed"
    ]
    pretrain = status.get("pretrain")
    if pretrain and pretrain.get("state") != DONE:
        parts.append(f"pretrain epoch {pretrain.get('epoch')}/{pretrain.get('epochs')} {_losses(pretrain)}")
    for name, m in sorted(status["members"].items()):
        if m["state"] == RUNNING:
            parts.append(f"{name} epoch {m.get('epoch')}/{m.get('epochs')} {_losses(m)}")
    if status["worker_failures"]:
        parts.append(f"worker failures {status['worker_failures']}")
    return " | ".join(parts)


def _losses(m: dict[str, Any]) -> str:
    return f"loss {m.get('train_loss', float('nan')):.4g} val {m.get('val_loss', float('nan')):.4g}"


class StatusWatcher:
    """Print :func:`progress_line` whenever ``status.json`` changes (a driver-side thread).

    Use as a context manager around ``trainer.fit()``.
    """

    def __init__(self, path: str | Path, echo: Callable[[str], None], interval_s: float = 1.0) -> None:
        self.path, self.echo, self.interval_s = Path(path), echo, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dpz-status", daemon=True)
        self._seen: float | None = None

    def __enter__(self) -> StatusWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._show()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._show()

    def _show(self) -> None:
        try:
            status = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return
        if status["updated"] != self._seen:
            self._seen = status["updated"]
            self.echo(progress_line(status))
