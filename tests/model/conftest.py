"""Fixtures for the model tests (helpers live in vlm_parts.py)."""

from __future__ import annotations

import pytest
import torch
from vlm_parts import tiny_vlm


@pytest.fixture
def vlm():
    torch.set_num_threads(1)
    model = tiny_vlm()
    model.eval()
    return model
