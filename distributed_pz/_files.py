"""Files that appear whole or not at all, on local disks and object stores; JSON, time.

Every writer of the package (bundles, ensembles, run manifests, catalogues, out-of-fold parts,
resume states) goes through :func:`atomic_path`, so a reader never sees half a file:

- a local path (or ``file://``) is written beside the target under a hidden name unique to
  the process and call, and renamed into place only when the writer returned; a crash leaves
  at most a hidden temporary behind;
- an fsspec URL (``s3://``, ``gs://``, ...) is written to a local temporary file and uploaded
  to the final key only when complete. Object stores have no rename, but an object appears
  whole or not at all (a PUT, or a multipart upload's completion), so "write once to the final
  key" is the atomic commit there; no temporary key is ever visible.

The small helpers (:func:`exists`, :func:`join`, :func:`read_text`, :func:`read_json`, :func:`makedirs`,
:func:`remove_tree`, :func:`remove_file`) take either kind of location.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec


def is_remote(url: str | os.PathLike) -> bool:
    """True for an fsspec URL other than ``file://`` (``s3://``, ``gs://``, ``memory://``, ...)."""
    text = str(url)
    return "://" in text and not text.startswith("file://")


def local_path(url: str | os.PathLike) -> Path:
    """A local location as a :class:`~pathlib.Path` (``file://`` stripped)."""
    return Path(str(url).removeprefix("file://"))


def join(url: str | os.PathLike, *parts: str) -> str:
    """``url/part/...`` for a local path or a URL."""
    if not is_remote(url):
        return str(local_path(url).joinpath(*parts))
    return "/".join([str(url).rstrip("/"), *parts])


def exists(url: str | os.PathLike) -> bool:
    """Whether a file or folder (a key prefix on an object store) exists."""
    if not is_remote(url):
        return local_path(url).exists()
    fs, path = fsspec.core.url_to_fs(str(url))
    return bool(fs.exists(path))


def is_file(url: str | os.PathLike) -> bool:
    """Whether a file (an object) exists."""
    if not is_remote(url):
        return local_path(url).is_file()
    fs, path = fsspec.core.url_to_fs(str(url))
    return bool(fs.isfile(path))


def makedirs(url: str | os.PathLike) -> None:
    """Create a local folder and its parents (object stores need none)."""
    if not is_remote(url):
        local_path(url).mkdir(parents=True, exist_ok=True)


def remove_tree(url: str | os.PathLike) -> None:
    """Remove a folder (every key under a prefix), if present."""
    if not is_remote(url):
        shutil.rmtree(local_path(url), ignore_errors=True)
        return
    fs, path = fsspec.core.url_to_fs(str(url))
    if fs.exists(path):
        fs.rm(path, recursive=True)


def remove_file(url: str | os.PathLike) -> None:
    """Remove a file (an object), if present."""
    if not is_remote(url):
        local_path(url).unlink(missing_ok=True)
        return
    fs, path = fsspec.core.url_to_fs(str(url))
    if fs.exists(path):
        fs.rm_file(path)


def read_bytes(url: str | os.PathLike) -> bytes:
    """The bytes of a file or object."""
    if not is_remote(url):
        return local_path(url).read_bytes()
    fs, path = fsspec.core.url_to_fs(str(url))
    return fs.cat_file(path)


def read_text(url: str | os.PathLike) -> str:
    """The text of a file or object (UTF-8)."""
    return read_bytes(url).decode()


def read_json(url: str | os.PathLike, error: type[Exception] = ValueError) -> Any:
    """The JSON value of a file or object; ``error`` naming it if it is missing or not JSON."""
    try:
        return json.loads(read_bytes(url))
    except FileNotFoundError:
        raise error(f"{url}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{url}: not JSON ({exc})") from None


def temporary_beside(path: str | os.PathLike) -> Path:
    """A hidden, unique temporary name in the folder of ``path`` (a local one for a URL)."""
    if is_remote(path):
        name = str(path).rsplit("/", 1)[-1]
        return Path(tempfile.gettempdir()) / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path = local_path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def commit_file(tmp: Path, path: str | os.PathLike) -> None:
    """Move the finished local file ``tmp`` onto ``path``: a rename, or one upload to the final key."""
    if not is_remote(path):
        os.replace(tmp, local_path(path))
        return
    fs, key = fsspec.core.url_to_fs(str(path))
    fs.put_file(str(tmp), key)
    tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a local temporary path to write; on success :func:`commit_file` it onto ``path``.

    ``path`` may be a URL. The temporary keeps the target's suffix so writers that choose a
    format by suffix (``np.savez``) write what the target expects; it is removed on failure.
    """
    tmp = temporary_beside(path)
    tmp = tmp.with_suffix(Path(str(path)).suffix or ".tmp")
    try:
        yield tmp
        commit_file(tmp, path)
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


CACHE_ENV = "DPZ_CACHE"
"""Environment variable naming the folder of local copies of remote folders (default ``~/.cache/distributed_pz``)."""


def cache_dir(kind: str, url: str) -> Path:
    """The local folder that holds ``kind`` (``"copies"``, ``"mirrors"``) of the remote folder ``url``."""
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "distributed_pz")
    return base / kind / hashlib.sha256(url.encode()).hexdigest()[:20]


def _listing(fs: fsspec.AbstractFileSystem, root: str) -> list[list[str]]:
    """Every file under ``root``: relative name, size and version tag (ETag, md5 or mtime)."""
    rows = []
    for path, info in sorted(fs.find(root, detail=True).items()):
        tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("mtime") or ""
        rows.append([path.removeprefix(root).lstrip("/"), str(info.get("size")), str(tag)])
    return rows


def local_copy(url: str | os.PathLike) -> Path:
    """A local, read-only copy of the folder ``url`` (the folder itself when it is local).

    A remote folder is downloaded once into :func:`cache_dir` and reused while its listing
    (names, sizes, ETags) is unchanged; a changed folder is downloaded anew. Processes that
    copy the same folder at once each download into their own temporary folder, and the first
    to finish publishes it by a rename.
    """
    if not is_remote(url):
        return local_path(url)
    fs, root = fsspec.core.url_to_fs(str(url))
    listing = _listing(fs, root)
    if not listing:
        raise FileNotFoundError(f"{url}: no such folder (no objects under this prefix)")
    target = cache_dir("copies", str(url))
    stamp = ".listing.json"
    if (target / stamp).is_file() and json.loads((target / stamp).read_text()) == listing:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    for name, _, _ in listing:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(f"{root}/{name}", str(tmp / name))
    (tmp / stamp).write_text(json.dumps(listing))
    if target.exists():
        os.replace(target, tmp.with_name(f"{tmp.name}-old"))
    try:
        os.rename(tmp, target)
    except OSError:  # another process published the same folder first
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(tmp.with_name(f"{tmp.name}-old"), ignore_errors=True)
    return target


@contextmanager
def mirrored(url: str | os.PathLike, last: tuple[str, ...] = ()) -> Iterator[Path]:
    """Work in a local folder that becomes the folder ``url`` (the folder itself when local).

    For a remote ``url`` the local mirror (:func:`cache_dir`) first receives the files it lacks
    from ``url`` (what an earlier run left, so the work resumes), and on exit — also when the
    work failed — every file written is uploaded, each to its final key in one piece; the files
    named in ``last`` are uploaded after all others, so their presence means the rest is there.
    Hidden files (temporaries) are not uploaded.
    """
    if not is_remote(url):
        yield local_path(url)
        return
    fs, root = fsspec.core.url_to_fs(str(url))
    local = cache_dir("mirrors", str(url))
    local.mkdir(parents=True, exist_ok=True)
    remote = {name: size for name, size, _ in (_listing(fs, root) if fs.exists(root) else [])}
    for name, size in remote.items():
        mine = local / name
        if not mine.is_file() or str(mine.stat().st_size) != size:
            mine.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(f"{root}/{name}", str(mine))
    pushed = {p: s for p, s in _stamps(local).items() if remote.get(p) == str(s[0])}  # already there
    try:
        yield local
    finally:
        changed = [p for p, stamp in _stamps(local).items() if pushed.get(p) != stamp]
        for name in sorted(changed, key=lambda p: (p in last, p)):
            fs.put_file(str(local / name), f"{root}/{name}")


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    """Relative name -> (size, mtime) of every file of ``folder`` not hidden (no part starts with '.')."""
    stamps = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts):
            stat = path.stat()
            stamps[rel.as_posix()] = (stat.st_size, stat.st_mtime_ns)
    return stamps
