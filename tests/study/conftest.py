"""Fixtures for the study tests: a temp project with the demo study and its own MLflow store."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from study_fakes import write_project

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An MLflow sqlite store with its tables created, copied into each test (creating one takes seconds)."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def project(tmp_path, monkeypatch, empty_mlflow_db):
    """A temp working directory with the demo study, its own MLflow store, and worker processes
    able to import study_fakes."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("FAKE_RUN_LOG", str(tmp_path / "runs.log"))
    for name in ("FAKE_RUN_HANG", "FAKE_RUN_FAIL", "FAKE_RUN_SLEEP"):
        monkeypatch.delenv(name, raising=False)
    write_project(tmp_path)
    return tmp_path
