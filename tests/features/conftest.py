"""Fixtures for the feature-cache tests (helpers live in feature_parts.py)."""

from __future__ import annotations

import pytest
import torch
from feature_parts import write_images


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def images(tmp_path):
    """Six random 32x32 PNG paths."""
    return write_images(tmp_path / "images", 6)
