"""Checks on folders the user names (output_dir, cache_dir, ABLATE_HOME) before anything is written."""

from __future__ import annotations

from pathlib import Path


def file_in_the_way(folder: Path) -> Path | None:
    """The existing file that stops `folder` from being (made into) a folder: itself or a parent."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None
