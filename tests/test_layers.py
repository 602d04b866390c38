"""No lower layer imports a higher one (cli -> plan -> study -> run -> train/model/data/eval ->
components -> registry), lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ablate"

# package -> the packages it must never import
FORBIDDEN = {
    "registry": {"components", "recipe", "data", "model", "train", "eval", "run", "study", "plan", "cli", "scienceqa"},
    "fingerprint": {"components", "recipe", "data", "model", "train", "eval", "run", "study", "plan", "cli"},
    "components": {"study", "run", "plan", "cli", "train", "model", "recipe", "eval"},
    "recipe": {"scienceqa", "study", "run", "plan", "cli", "train", "model"},
    "data": {"study", "run", "plan", "cli", "train", "model"},
    "model": {"study", "run", "plan", "cli", "train"},
    "eval": {"study", "run", "plan", "cli", "train"},
    "train": {"study", "run", "plan", "cli"},
    "features": {"study", "run", "plan", "cli", "train"},
    "run": {"study", "plan", "cli"},
    "study": {"plan", "cli"},
    "plan": {"cli"},  # `ablate plan` sizes recipes and studies: above study, below the command line
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
