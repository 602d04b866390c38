"""Fixtures of the bad-input corpus (helpers live in bad_input_helpers.py: a conftest is not
importable by name when several test folders each have one)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    """No line wrapping, so messages can be matched whole."""
    from ablate.cli import console

    monkeypatch.setattr(console.err_console, "width", 10_000)
    monkeypatch.setattr(console.console, "width", 10_000)
