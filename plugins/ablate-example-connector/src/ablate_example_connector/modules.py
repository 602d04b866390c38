"""Torch module of `pooled_mlp` (imported only when a connector is built)."""

from __future__ import annotations

import torch
from torch import nn


class PooledMLP(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, *, side: int, out_side: int, mode: str, depth: int):
        super().__init__()
        self.side = side
        # Adaptive pooling with output side ceil(side / pool) equals pool x pool windows when
        # the grid divides evenly, and still works when it does not.
        pool = nn.AdaptiveAvgPool2d if mode == "avg" else nn.AdaptiveMaxPool2d
        self.pool = pool(out_side)
        layers: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        for _ in range(depth - 1):
            layers += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        self.mlp = nn.Sequential(*layers)
        self.num_output_tokens = out_side * out_side

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = features.shape
        x = features.to(self.mlp[0].weight.dtype)
        # Patch tokens are row-major over the image grid, as ViT encoders emit them.
        grid = x.transpose(1, 2).reshape(batch, dim, self.side, self.side)
        pooled = self.pool(grid).flatten(2).transpose(1, 2)  # [B, out_side**2, dim]
        return self.mlp(pooled).to(features.dtype)
