"""pooled_mlp honours ablate's connector contract and pools the grid as documented."""

from __future__ import annotations

import pytest
import torch

from ablate.errors import AblateError
from ablate.registry import Registries
from ablate.testing import assert_connector_conforms, check_connector
from ablate_example_connector import PooledMLPConfig, ablate_register, build_pooled_mlp


@pytest.fixture
def entry():
    # Register into a private Registries, so this test does not depend on how the plugin
    # was installed (ablate's own tests cover loading through the entry point).
    regs = Registries()
    ablate_register(regs)
    return regs.connector.get("pooled_mlp")


@pytest.mark.parametrize(
    "config, num_input_tokens, expected_tokens",
    [({}, 16, 4), ({"pool": 1}, 16, 16), ({"pool": 3}, 36, 4), ({"pool": 2, "mode": "max", "depth": 1}, 25, 9)],
)
def test_conforms(entry, config, num_input_tokens, expected_tokens):
    report = assert_connector_conforms(entry, config, num_input_tokens=num_input_tokens)
    assert report.num_output_tokens == expected_tokens


def test_avg_pool_equals_2x2_window_means_then_mlp():
    torch.manual_seed(0)
    module = build_pooled_mlp(PooledMLPConfig(type="pooled_mlp"), in_dim=3, out_dim=5, num_input_tokens=16)
    features = torch.randn(1, 16, 3)
    grid = features.reshape(4, 4, 3)
    # token (r, c) of the 2x2 output is the mean of grid rows 2r..2r+1, cols 2c..2c+1.
    means = torch.stack([grid[2 * r:2 * r + 2, 2 * c:2 * c + 2].mean(dim=(0, 1)) for r in range(2) for c in range(2)])
    torch.testing.assert_close(module(features)[0], module.mlp(means))


def test_non_square_grid_is_a_clear_error():
    with pytest.raises(AblateError, match="CLS token"):
        build_pooled_mlp(PooledMLPConfig(type="pooled_mlp"), in_dim=8, out_dim=8, num_input_tokens=17)


def test_checker_notices_a_wrong_grid_assumption(entry):
    # 4x4 grid but the checker feeds 15 tokens: the build must refuse, not silently misbehave.
    report = check_connector(entry, {}, num_input_tokens=15)
    assert not report.ok and "square grid" in report.failures[0]
