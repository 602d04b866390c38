"""Fixtures of the bad-input corpus (helpers live in bad_input_helpers.py: a conftest is not
importable by name when several test folders each have one)."""

from __future__ import annotations

import pytest

from bad_input_helpers import tiny_run


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    """No line wrapping, so messages can be matched whole."""
    from ablate.cli import console

    monkeypatch.setattr(console.err_console, "width", 10_000)
    monkeypatch.setattr(console.console, "width", 10_000)


@pytest.fixture(scope="session", autouse=True)
def _tiny_run_setup(tmp_path_factory):
    """A ready MLflow store to copy (a fresh one spends seconds on migrations) and one torch thread."""
    yield from tiny_run.session_setup(tmp_path_factory)
