"""A zoo folder is written whole, with a manifest of every file's size and sha256 (`ablate.manifest`).

A zoo folder is reused without rebuilding, so a file truncated by a full disk, edited by hand or
half-copied must be caught before `from_pretrained` reads it: a truncated safetensors file can
fail deep inside loading, and a damaged config could load as a different model. The folders
are a few MB, so hashing them is cheap; the result is remembered per file stamp
(`ablate.fingerprint.file_sha256`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ablate.errors import AblateError
from ablate.manifest import (
    MANIFEST_FILE,
    file_digests,
    manifest_problem,
    write_manifest,
)

__all__ = ["MANIFEST_FILE", "file_digests", "manifest_problem", "write_manifest", "write_whole"]


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
