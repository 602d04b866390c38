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


def file_digests(folder: Path) -> dict[str, dict[str, object]]:
    """relative path -> {size, sha256} of every file in `folder` except the manifest."""
    return {
        str(path.relative_to(folder)): {"size": path.stat().st_size, "sha256": file_sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILE and not path.name.endswith(".tmp")
    }


def write_manifest(folder: Path) -> None:
    """The manifest, put in place in one rename: ranks that find a folder without one may all write it."""
    write_text_whole(folder / MANIFEST_FILE, json.dumps(file_digests(folder), indent=1, sort_keys=True))


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
