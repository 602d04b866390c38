"""Run tests: one torch thread (the machine is shared; more threads only contend), and a ready
MLflow store template for tiny_run.recipe."""

from __future__ import annotations

import pytest
import torch

import tiny_run


@pytest.fixture(scope="session", autouse=True)
def _tiny_run_setup(tmp_path_factory):
    torch.set_num_threads(1)
    tiny_run.MLFLOW_TEMPLATE = tiny_run.make_store_template(tmp_path_factory.mktemp("mlflow-template"))
    yield
    tiny_run.MLFLOW_TEMPLATE = None
