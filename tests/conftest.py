"""Shared fixtures. Everything runs offline on CPU with tiny models."""

from __future__ import annotations

import os

import pytest

from shared_home import session_home

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session", autouse=True)
def _isolated_home(tmp_path_factory):
    """Zoo checkpoints and generated data go to one per-session folder, not ~/.cache. Session
    scope: module fixtures that train (set up before any function fixture) see it too, and a
    test that sets ABLATE_HOME itself gets this one back after it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ABLATE_HOME", session_home(tmp_path_factory))
        yield


@pytest.fixture(scope="session")
def rehearsal_kit(tmp_path_factory):
    """The rehearsal kit (ablate.zoo.kit), built once per session in the home every test gets."""
    from unittest import mock

    from ablate.zoo.kit import ensure_kit

    home = session_home(tmp_path_factory)
    with mock.patch.dict(os.environ, {"ABLATE_HOME": home}):
        return ensure_kit()
