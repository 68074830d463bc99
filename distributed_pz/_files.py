"""Files that appear whole or not at all: one temporary-file-then-rename helper, JSON, time.

Every writer of the package (bundles, ensembles, run manifests, catalogues, out-of-fold parts,
resume states) goes through :func:`atomic_path`: it writes beside the target under a hidden
name unique to the process and call, and renames into place only when the writer returned, so
a reader never sees half a file and a crash leaves at most a hidden temporary behind.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def temporary_beside(path: str | os.PathLike) -> Path:
    """A hidden, unique temporary name in the folder of ``path``."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it onto ``path``, else remove it.

    The temporary keeps the target's suffix so writers that choose a format by suffix
    (``np.savez``) write what the target expects.
    """
    target = Path(path)
    tmp = temporary_beside(target).with_suffix(target.suffix or ".tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, value: Any) -> None:
    """Write ``value`` as indented, key-sorted JSON to ``path`` atomically."""
    write_text(path, json.dumps(value, indent=1, sort_keys=True) + "\n")


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")
