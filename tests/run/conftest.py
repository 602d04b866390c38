"""Run tests: one torch thread and a ready MLflow store template for tiny_run.recipe."""

from __future__ import annotations

import pytest

import tiny_run


@pytest.fixture(scope="session", autouse=True)
def _tiny_run_setup(tmp_path_factory):
    yield from tiny_run.session_setup(tmp_path_factory)
