"""The training tests build their tiny recipes with tests/run/tiny_run.py (and its setup)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "run"))

import tiny_run  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _tiny_run_setup(tmp_path_factory):
    yield from tiny_run.session_setup(tmp_path_factory)
