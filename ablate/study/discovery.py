"""Find study files: a path, or a NAME looked up as `studies/NAME.yaml` in the working directory,
then in $ABLATE_STUDIES (os.pathsep-separated folders), then in the ablate checkout."""

from __future__ import annotations

import os
from pathlib import Path

from ablate.errors import AblateError, did_you_mean


def study_dirs() -> list[Path]:
    dirs = [Path.cwd() / "studies"]
    dirs += [Path(p) for p in os.environ.get("ABLATE_STUDIES", "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[2] / "studies")  # the repository's own
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def available() -> dict[str, Path]:
    """{name: path} of every study file found, earlier folders winning."""
    found: dict[str, Path] = {}
    for folder in study_dirs():
        for path in sorted(folder.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def find_study(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix in {".yaml", ".yml"} or os.sep in name_or_path or path.is_file():
        if path.is_dir():
            raise AblateError(f"study file {path} is a folder, not a YAML file")
        if not path.is_file():
            raise AblateError(f"study file not found: {path}")
        return path
    studies = available()
    if name_or_path in studies:
        return studies[name_or_path]
    where = ", ".join(str(d) for d in study_dirs()) or "no studies/ folder found"
    known = ", ".join(sorted(studies)) or "none"
    raise AblateError(f"unknown study {name_or_path!r}.{did_you_mean(name_or_path, studies)} "
                      f"Studies ({where}): {known}")
