"""A folder's manifest: every file's size and sha256, written when the folder is, checked before
it is read again (zoo checkpoints, the rehearsal kit, Trainer checkpoints a stage resumes from).

A file truncated by a full disk, edited by hand, half-copied or with flipped bytes is named
instead of loaded. Hashes are remembered per file stamp (`ablate.fingerprint.file_sha256`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ablate.fingerprint import file_sha256
from ablate.paths import write_text_whole

MANIFEST_FILE = "manifest.json"


def manifest_files(folder: Path) -> list[Path]:
    """Every file a manifest covers: all of `folder` but the manifest and temporary files."""
    return [path for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != MANIFEST_FILE and not path.name.endswith(".tmp")]


def file_digests(folder: Path, files: list[Path] | None = None) -> dict[str, dict[str, object]]:
    """relative path -> {size, sha256} of `files` (default: every file the manifest covers)."""
    return {str(path.relative_to(folder)): {"size": path.stat().st_size, "sha256": file_sha256(path)}
            for path in (manifest_files(folder) if files is None else files)}


def write_manifest(folder: Path, digests: dict[str, dict[str, object]] | None = None) -> None:
    """The manifest (of `digests`, or of the folder's files now), put in place in one rename:
    ranks that find a folder without one may all write it."""
    digests = file_digests(folder) if digests is None else digests
    write_text_whole(folder / MANIFEST_FILE, json.dumps(digests, indent=1, sort_keys=True))


def manifest_problem(folder: Path) -> str | None:
    """Why `folder`'s files differ from its manifest, or None when they match.

    A folder built before manifests existed gets one now (its files cannot be checked against
    what was written, only from here on)."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        write_manifest(folder)
        return None
    try:
        expected = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"its {MANIFEST_FILE} is unreadable ({exc})"
    if not isinstance(expected, dict):
        return f"its {MANIFEST_FILE} is not a mapping of files"
    for name, want in sorted(expected.items()):
        file = folder / name
        if not file.is_file():
            return f"{name} is missing"
        size = file.stat().st_size
        if not isinstance(want, dict) or size != want.get("size"):
            return f"{name} has {size:,} bytes, {want.get('size') if isinstance(want, dict) else '?'} when written"
        if file_sha256(file) != want.get("sha256"):
            return f"{name} was changed after it was written (its sha256 differs)"
    return None
