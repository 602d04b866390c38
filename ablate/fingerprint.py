"""Fingerprints: the one place that decides how ablate identifies configs, files and checkpoints.

What decides whether a stored result may be reused is named here, so every reuse follows one
rule (stage store, feature cache, tokenized-data cache, zoo checkpoints):

- **JSON payloads** (configs): SHA-256 of their canonical JSON (`content_hash`).
- **Data and checkpoint files** (`file_fingerprint`): exact for files up to `EXACT_LIMIT`
  (SHA-256 of every byte); larger files (checkpoint shards, a 1 GB mix665k JSON) by their size,
  modification time and a SHA-256 of `SAMPLES` evenly spaced 64 KiB blocks, first and last
  included. Results are memoised per process by (real path, size, mtime, inode, ctime), so a
  file is read once per process.
- **Images** (`image_stamp`): size and modification time only. A data set's images are
  hundreds of thousands of files; reading them all before each run would cost more than the
  reuse saves. An image edited in place gets a new mtime, so it is still noticed.
- **Checkpoint folders** (`folder_fingerprint`): every regular file in the folder by the file
  rule (configs and tokenizer files exactly, weight shards by the large-file rule). Hub cache
  snapshots are folders of symlinks; the blobs they point to are what is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

EXACT_LIMIT = 64 * 1024 * 1024
SAMPLES = 32
BLOCK = 64 * 1024


def content_hash(payload: Any, length: int = 12) -> str:
    """Short SHA-256 of a JSON-serialisable payload, independent of key order."""
    blob = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def file_fingerprint(path: str | os.PathLike) -> str:
    """The identity of one file's content (see the module docstring for the rule)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return _fingerprint(real, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of every byte of a file, whatever its size (memoised like file_fingerprint)."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return _sha256(real, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


@lru_cache(maxsize=65536)
def _sha256(real: str, size: int, mtime_ns: int, inode: int, ctime_ns: int) -> str:
    # ctime and inode are in the memo key only: no tool can set ctime back, so a file rewritten
    # with its old mtime (a restore, `cp -p`) is read again.
    digest = hashlib.sha256()
    with open(real, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=65536)
def _fingerprint(real: str, size: int, mtime_ns: int, inode: int, ctime_ns: int) -> str:
    if size <= EXACT_LIMIT:
        return "sha256:" + _sha256(real, size, mtime_ns, inode, ctime_ns)
    digest = hashlib.sha256()
    with open(real, "rb") as handle:
        step = (size - BLOCK) // (SAMPLES - 1)
        for index in range(SAMPLES):
            handle.seek(index * step)
            digest.update(handle.read(BLOCK))
    return f"sampled:{size}:{mtime_ns}:{digest.hexdigest()}"


def image_stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    """(real path, size, mtime_ns) of an image file: cheap enough for every image of a data set."""
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns)


class ImageStamps:
    """`image_stamp` for many images: each folder's real path is resolved once.

    A file that is not a symlink has the real path of its folder plus its name, so one lstat
    per image replaces realpath's lstat of every path component (mix665k: 625K images)."""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def __call__(self, path: str) -> tuple[str, int, int]:
        folder, name = os.path.split(path)
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or name in ("", ".", ".."):
            return image_stamp(path)
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder)
        return (os.path.join(real, name), st.st_size, st.st_mtime_ns)


def folder_fingerprint(folder: str | os.PathLike, *, only: Iterable[str] | None = None,
                       skip: Iterable[str] = ()) -> dict[str, str]:
    """{file name: fingerprint} of the regular files directly in `folder` (hidden files left out).

    `only` keeps just those names; `skip` leaves names out (e.g. the tokenizer's files, which
    are fingerprinted on their own so a reason can name them).
    """
    wanted, skipped = (set(only) if only is not None else None), set(skip)
    out = {}
    for path in sorted(Path(folder).iterdir()):
        name = path.name
        if name.startswith(".") or name in skipped or (wanted is not None and name not in wanted):
            continue
        if path.is_file():
            out[name] = file_fingerprint(path)
    return out


def lock(path: str | os.PathLike, timeout: float = -1):
    """An inter-process lock on `path` (created if missing); a context manager.

    filelock's FileLock: fcntl on POSIX, msvcrt on Windows, and it releases on process death.
    """
    from filelock import FileLock

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), timeout=timeout)
