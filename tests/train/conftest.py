"""The training tests build their tiny recipes with tests/run/tiny_run.py (and its setup)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "run"))

import tiny_run  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _tiny_run_setup(tmp_path_factory):
    torch.set_num_threads(1)
    tiny_run.MLFLOW_TEMPLATE = tiny_run.make_store_template(tmp_path_factory.mktemp("mlflow-template"))
    yield
    tiny_run.MLFLOW_TEMPLATE = None
