"""Plan tests: one torch thread; the tiny zoo entries built once per session, in the home every test gets."""

from __future__ import annotations

import os
from unittest import mock

import pytest
from shared_home import session_home

from plan_helpers import build_zoo


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    home = session_home(tmp_path_factory)
    with mock.patch.dict(os.environ, {"ABLATE_HOME": home}):
        build_zoo()
