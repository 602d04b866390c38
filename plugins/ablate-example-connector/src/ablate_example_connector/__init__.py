"""ablate plugin adding the `pooled_mlp` connector.

`pooled_mlp` pools the encoder's square patch grid (e.g. 24x24 CLIP patches) by `pool` x
`pool` before a LLaVA-1.5 style MLP, so the LLM sees `pool**2` times fewer visual tokens.
It is the ablation for "how many visual tokens does the task need?".

ablate loads this module through the `ablate` entry-point group (see pyproject.toml) and
calls `ablate_register`. Torch is imported only when a connector is built.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from ablate.errors import AblateError
from ablate.hookspecs import hookimpl
from ablate.registry import ComponentConfig

__all__ = ["PooledMLPConfig", "build_pooled_mlp", "pooled_grid", "ablate_register"]


class PooledMLPConfig(ComponentConfig):
    pool: int = Field(2, ge=1, description="pool the patch grid by pool x pool (1 = no pooling)")
    mode: Literal["avg", "max"] = Field("avg", description="average or max pooling")
    depth: int = Field(2, ge=1, description="Linear layers after pooling (2 = LLaVA-1.5 mlp2x_gelu)")


def pooled_grid(num_input_tokens: int, pool: int) -> tuple[int, int]:
    """(input grid side, output grid side); the input must be a square grid of patches."""
    side = math.isqrt(num_input_tokens)
    if side * side != num_input_tokens:
        hint = " (it looks like a CLS token is included; select patch features only)" if math.isqrt(
            num_input_tokens - 1) ** 2 == num_input_tokens - 1 else ""
        raise AblateError(
            f"connector 'pooled_mlp' needs a square grid of visual tokens, got {num_input_tokens}{hint}"
        )
    if pool > side:
        raise AblateError(f"connector 'pooled_mlp': pool ({pool}) is larger than the {side}x{side} token grid")
    return side, math.ceil(side / pool)  # a ragged edge becomes one smaller window


def build_pooled_mlp(config: PooledMLPConfig, in_dim: int, out_dim: int, num_input_tokens: int):
    """Pool visual tokens pool x pool, then an MLP to the LLM width."""
    side, out_side = pooled_grid(num_input_tokens, config.pool)
    from ablate_example_connector.modules import PooledMLP

    return PooledMLP(in_dim, out_dim, side=side, out_side=out_side, mode=config.mode, depth=config.depth)


@hookimpl
def ablate_register(registries) -> None:
    registries.connector.register(
        "pooled_mlp", PooledMLPConfig, build_pooled_mlp,
        description="pool visual tokens pool x pool, then MLP (fewer visual tokens)",
        plugin="ablate-example-connector",
    )
