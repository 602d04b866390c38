"""Paths: checks on folders the user names (output_dir, cache_dir, ABLATE_HOME) before anything is
written, and files written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path


def write_text_whole(path: Path, text: str) -> None:
    """`text` into `path` through a temporary file beside it and one rename: a process killed
    mid-write, or a reader in another process (a study's workers, other ranks), never sees half a
    file. The temporary name carries the pid, so concurrent writers do not share one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def file_in_the_way(folder: Path) -> Path | None:
    """The existing file that stops `folder` from being (made into) a folder: itself or a parent."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None
