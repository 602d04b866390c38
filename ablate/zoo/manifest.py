"""What a built zoo folder must hold: every file's size and sha256, written when it is built.

A zoo folder is reused without rebuilding, so a file truncated by a full disk, edited by hand or
half-copied must be caught before `from_pretrained` reads it: a truncated safetensors file can
fail deep inside loading, and a damaged config could load as a different model. The folders
are a few MB, so hashing them is cheap; the result is remembered per file stamp
(`ablate.fingerprint.file_sha256`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from ablate.errors import AblateError
from ablate.fingerprint import file_sha256

MANIFEST_FILE = "manifest.json"


def file_digests(folder: Path) -> dict[str, dict[str, object]]:
    """relative path -> {size, sha256} of every file in `folder` except the manifest."""
    return {
        str(path.relative_to(folder)): {"size": path.stat().st_size, "sha256": file_sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILE
    }


def write_manifest(folder: Path) -> None:
    (folder / MANIFEST_FILE).write_text(json.dumps(file_digests(folder), indent=1, sort_keys=True))


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
            return f"{name} has {size:,} bytes, {want.get('size') if isinstance(want, dict) else '?'} when built"
        if file_sha256(file) != want.get("sha256"):
            return f"{name} was changed after it was built (its sha256 differs)"
    return None



def write_whole(dest: Path, fill: Callable[[Path], None]) -> Path:
    """`fill` a staging folder beside `dest`, give it a manifest, then put it in place in one
    rename: a crash or a full disk mid-build never leaves a half-written folder at `dest`."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):  # rmtree cannot replace it
        raise AblateError(f"{dest} is a file or a link, not a folder this built; delete it, then build again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        fill(staging)
        write_manifest(staging)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest
