"""No lower layer imports a higher one (cli -> study -> run -> train/model/data/eval ->
components -> registry), lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ablate"

# package -> the packages it must never import
FORBIDDEN = {
    "registry": {"components", "recipe", "data", "model", "train", "eval", "run", "study", "cli", "scienceqa"},
    "fingerprint": {"components", "recipe", "data", "model", "train", "eval", "run", "study", "cli"},
    "components": {"study", "run", "cli", "train", "model", "recipe", "eval"},
    "recipe": {"scienceqa", "study", "run", "cli", "train", "model"},
    "data": {"study", "run", "cli", "train", "model"},
    "model": {"study", "run", "cli", "train"},
    "eval": {"study", "run", "cli", "train"},
    "train": {"study", "run", "cli"},
    "features": {"study", "run", "cli", "train"},
    "run": {"study", "cli"},
    "study": {"cli"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name.split(".")[1] for name in found if name.startswith("ablate.") and name.count(".") >= 1}


def _layer_files(layer: str) -> list[Path]:
    folder = PACKAGE / layer
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [PACKAGE / f"{layer}.py"]


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_lower_layer_imports_a_higher_one(layer):
    bad = [f"{path.relative_to(PACKAGE.parent)} imports ablate.{name}"
           for path in _layer_files(layer) for name in sorted(_imports(path) & FORBIDDEN[layer])]
    assert bad == []
