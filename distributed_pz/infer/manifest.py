"""The run manifest of ``dpz predict``: which tiles are done, so a rerun resumes.

``OUT/manifest.json`` is written only by the client, always atomically (temporary file, then
rename). It records the ensemble's content hash, the input store and the settings that change
catalogue values; a rerun into the same directory must match them. For every committed tile
it records the catalogue file, its rows and the tile's content identity (its ``write_id``,
:meth:`~distributed_pz.survey.store.store.Tile.content_id`); for a tile under way, its row blocks
and content identity, so a rerun cuts the tile exactly as before and reuses the part files
already in ``OUT/_staging/TILE/`` (each part file is itself written atomically, so one that
exists is complete). A tile rewritten since (another identity) is predicted again from
scratch: its old parts and catalogue are never mixed with the new rows.

``OUT/failures.json`` lists the tiles whose last attempt failed, with the error line.
``OUT/.lock`` is held (:class:`filelock.FileLock`: ``flock`` on POSIX, ``msvcrt`` on Windows) by the
one run using a local directory, whose pid is in ``OUT/.lock.pid``; a second run is refused
(object storage has no locks: one run per ``--out`` URL is the user's to keep; what an overlapping
run leaves, a failure of a tile done since and its orphan part files, the next run clears). Every output
path is built by :meth:`RunManifest.path`, which refuses one outside ``OUT``. ``OUT`` is a local
path or an fsspec URL (``s3://``, ``gs://``).
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from distributed_pz import __version__
from distributed_pz._files import (
    exists,
    is_file,
    is_remote,
    join,
    local_path,
    makedirs,
    read_json,
    utc_now,
    write_json,
)

RUN_MANIFEST = "manifest.json"
FAILURES = "failures.json"
STAGING = "_staging"
LOCK = ".lock"
LOCK_PID = ".lock.pid"
RUN_FORMAT = "distributed_pz.predict-run"
RUN_VERSION = 2


class ManifestError(ValueError):
    """The output directory holds a run that does not match this one (or an unreadable manifest)."""


@dataclass
class RunManifest:
    """A run's state; :meth:`open` reads or starts it, every change is saved at once."""

    out: str
    identity: dict[str, Any]
    tiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    in_progress: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: FileLock | None = field(default=None, repr=False)

    @classmethod
    def open(cls, out: str | os.PathLike, identity: dict[str, Any]) -> RunManifest:
        """Read ``OUT/manifest.json`` (checking it matches ``identity``) or start a new run.

        Parameters
        ----------
        out
            Output directory (created if absent), a local path or an fsspec URL.
        identity
            What makes two runs the same: bundle hash, store, format and value-changing settings.
        """
        out = str(out).rstrip("/") if is_remote(out) else str(local_path(out).resolve())
        makedirs(out)
        lock = None if is_remote(out) else _lock(Path(out))
        try:
            return cls._read(out, json.loads(json.dumps(identity)), lock)  # tuples become lists
        except BaseException:
            if lock is not None:
                lock.release()
            raise

    @classmethod
    def _read(cls, out: str, identity: dict[str, Any], lock: FileLock | None) -> RunManifest:
        path = join(out, RUN_MANIFEST)
        if not exists(path):
            manifest = cls(out, identity, lock=lock)
            manifest.save()
            return manifest
        state = _read_run_file(path)
        if state.get("format") != RUN_FORMAT:
            raise ManifestError(f"{path}: not a dpz predict manifest (format {state.get('format')!r})")
        if state.get("format_version") != RUN_VERSION:
            raise ManifestError(
                f"{path}: written by another version of dpz predict (run format "
                f"{state.get('format_version')}, this one reads {RUN_VERSION}); use another --out"
            )
        if state["identity"] != identity:
            changed = sorted(
                k
                for k in identity.keys() | state["identity"].keys()
                if identity.get(k) != state["identity"].get(k)
            )
            raise ManifestError(
                f"{out} holds a run with different {', '.join(changed)} "
                f"(recorded: { {k: state['identity'].get(k) for k in changed} }); use another --out"
            )
        failures_path = join(out, FAILURES)
        failures = _read_run_file(failures_path) if exists(failures_path) else {}
        return cls(out, identity, state["tiles"], state["in_progress"], failures, lock)

    def close(self) -> None:
        """Release ``OUT/.lock`` (the process's exit releases it too)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def path(self, *parts: str) -> str:
        """``OUT/parts...``, refused (:class:`ManifestError`) unless it lies inside ``OUT``."""
        if is_remote(self.out):
            inside = posixpath.normpath(posixpath.join("/", *parts))
            path, ok = (
                join(self.out, inside.lstrip("/")),
                inside not in ("/", "") and not any(p.startswith("/") for p in parts),
            )
        else:
            resolved = Path(self.out).joinpath(*parts).resolve()
            path, ok = str(resolved), resolved != Path(self.out) and resolved.is_relative_to(self.out)
        if not ok:
            raise ManifestError(f"output path {'/'.join(parts)!r} is not inside {self.out!r}; refused")
        return path

    @property
    def staging(self) -> str:
        return self.path(STAGING)

    def done(self, tile: str, content: str) -> bool:
        """True if the tile's catalogue is committed from this content and still on disk."""
        entry = self.tiles.get(tile)
        return entry is not None and entry.get("content") == content and is_file(self.path(entry["file"]))

    def blocks(self, tile: str, content: str) -> list[tuple[int, int]] | None:
        """The row blocks a tile under way was cut into, if it was cut from this content."""
        entry = self.in_progress.get(tile)
        if entry is None or entry["content"] != content:
            return None
        return [(int(a), int(b)) for a, b in entry["blocks"]]

    def start_tile(self, tile: str, blocks: list[tuple[int, int]], content: str) -> None:
        """Record the row blocks and content identity of a tile about to be predicted."""
        self.in_progress[tile] = {"blocks": [[a, b] for a, b in blocks], "content": content}
        self.save()

    def finish_tile(self, tile: str, file: str, rows: int, content: str) -> None:
        """Record a committed tile (and clear its failure, if any)."""
        self.tiles[tile] = {"file": file, "rows": rows, "content": content, "committed_utc": utc_now()}
        self.in_progress.pop(tile, None)
        self.save()
        self.clear_failure(tile)

    def clear_failure(self, tile: str) -> None:
        """Drop a tile's entry from ``failures.json``, if any (the tile is done now)."""
        if self.failures.pop(tile, None) is not None:
            self.save_failures()

    def fail_tile(self, tile: str, error: str) -> None:
        """Record a tile's failure in ``failures.json``."""
        self.failures[tile] = {"error": error, "utc": utc_now()}
        self.save_failures()

    def save(self) -> None:
        write_json(
            join(self.out, RUN_MANIFEST),
            {
                "format": RUN_FORMAT,
                "format_version": RUN_VERSION,
                "identity": self.identity,
                "package_version": __version__,
                "updated_utc": utc_now(),
                "tiles": self.tiles,
                "in_progress": self.in_progress,
            },
        )

    def save_failures(self) -> None:
        write_json(join(self.out, FAILURES), self.failures)


def check_out(out: str, *inputs: str) -> None:
    """Raise :class:`ManifestError` if ``out`` is or lies inside one of ``inputs`` (the survey store,
    the ensemble), or holds a survey store or an ensemble: a run would write its files into them."""
    for given in inputs:
        if _inside(out, given):
            raise ManifestError(f"--out {out} is inside the input {given}; use another --out")
    for marker, what in (
        ("zarr.json", "a Zarr store"),
        ("ensemble.json", "an ensemble"),
        ("bundle.json", "a model bundle"),
    ):
        if is_file(join(out, marker)):
            raise ManifestError(f"--out {out} holds {what} ({marker}); use another --out")


def _inside(path: str, folder: str) -> bool:
    if is_remote(path) or is_remote(folder):
        return posixpath.join(path.rstrip("/"), "").startswith(posixpath.join(folder.rstrip("/"), ""))
    return local_path(path).resolve().is_relative_to(local_path(folder).resolve())


def _read_run_file(path: str) -> Any:
    try:
        return read_json(path, ManifestError)
    except ManifestError as exc:
        raise ManifestError(f"{exc}; move it away (or use another --out)") from None


def _lock(out: Path) -> FileLock:
    """Hold ``OUT/.lock`` and write this process's pid beside it, or refuse: another run is writing here."""
    lock = FileLock(out / LOCK)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        pid = out / LOCK_PID
        holder = (pid.read_text().strip() if pid.is_file() else "") or "unknown"
        raise ManifestError(
            f"another dpz predict is using {out} (pid {holder}); wait for it to finish or use another --out"
        ) from None
    (out / LOCK_PID).write_text(str(os.getpid()))
    return lock
