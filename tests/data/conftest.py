"""Fixtures for the data tests: tiny PNGs and LLaVA-format files written to tmp dirs."""

from __future__ import annotations

from pathlib import Path

import pytest


from data_helpers import record, write_json, write_png  # noqa: F401 - re-exported for fixtures


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    write_png(root / "a.png")
    write_png(root / "sub" / "b.png", (0, 0, 255))
    return root


@pytest.fixture
def registries():
    from ablate.registry import registries as get

    return get()
