"""The run manifest of ``dpz predict``: which tiles are done, so a rerun resumes.

``OUT/manifest.json`` is written only by the client, always atomically (temporary file, then
rename). It records the ensemble's content hash, the input store and the settings that change
catalogue values; a rerun into the same directory must match them. For every committed tile
it records the catalogue file and its rows; for a tile under way, its row blocks, so a rerun
cuts the tile exactly as before and reuses the part files already in ``OUT/_staging/TILE/``
(each part file is itself written atomically, so one that exists is complete).

``OUT/failures.json`` lists the tiles whose last attempt failed, with the error line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from distributed_pz import __version__
from distributed_pz._files import exists, is_file, join, makedirs, read_text, utc_now, write_json

MANIFEST = "manifest.json"
FAILURES = "failures.json"
STAGING = "_staging"
RUN_FORMAT = "distributed_pz.predict-run"
RUN_VERSION = 1


class ManifestError(ValueError):
    """The output directory holds a run that does not match this one (or an unreadable manifest)."""


@dataclass
class RunManifest:
    """A run's state; :meth:`open` reads or starts it, every change is saved at once."""

    out: str
    identity: dict[str, Any]
    tiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    in_progress: dict[str, list[list[int]]] = field(default_factory=dict)
    failures: dict[str, dict[str, str]] = field(default_factory=dict)

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
        out = str(out)
        makedirs(out)
        identity = json.loads(json.dumps(identity))  # as it reads back (tuples become lists)
        path = join(out, MANIFEST)
        if not exists(path):
            manifest = cls(out, identity)
            manifest.save()
            return manifest
        try:
            state = json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: not JSON ({exc})") from None
        if state.get("format") != RUN_FORMAT or state.get("format_version") != RUN_VERSION:
            raise ManifestError(f"{path}: not a dpz predict manifest (format {state.get('format')!r})")
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
        failures = json.loads(read_text(failures_path)) if exists(failures_path) else {}
        return cls(out, identity, state["tiles"], state["in_progress"], failures)

    @property
    def staging(self) -> str:
        return join(self.out, STAGING)

    def done(self, tile: str) -> bool:
        """True if the tile's catalogue is committed and still on disk."""
        entry = self.tiles.get(tile)
        return entry is not None and is_file(join(self.out, entry["file"]))

    def blocks(self, tile: str) -> list[tuple[int, int]] | None:
        """The row blocks a tile under way was cut into, if any."""
        blocks = self.in_progress.get(tile)
        return None if blocks is None else [(int(a), int(b)) for a, b in blocks]

    def start_tile(self, tile: str, blocks: list[tuple[int, int]]) -> None:
        """Record the row blocks of a tile about to be predicted."""
        self.in_progress[tile] = [[a, b] for a, b in blocks]
        self.save()

    def finish_tile(self, tile: str, file: str, rows: int) -> None:
        """Record a committed tile (and clear its failure, if any)."""
        self.tiles[tile] = {"file": file, "rows": rows, "committed_utc": utc_now()}
        self.in_progress.pop(tile, None)
        self.save()
        if self.failures.pop(tile, None) is not None:
            self.save_failures()

    def fail_tile(self, tile: str, error: str) -> None:
        """Record a tile's failure in ``failures.json``."""
        self.failures[tile] = {"error": error, "utc": utc_now()}
        self.save_failures()

    def save(self) -> None:
        write_json(
            join(self.out, MANIFEST),
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
