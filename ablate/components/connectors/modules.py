"""Torch modules of the built-in connectors. Imported only by the builders (torch is heavy).

Every connector maps features [B, N, in_dim] -> tokens [B, num_output_tokens, out_dim] and
returns the dtype it was given, computing in its own parameter dtype in between (a frozen
bf16 encoder may feed an fp32 connector).
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


class IdentityConnector(nn.Module):
    def __init__(self, num_tokens: int):
        super().__init__()
        self.num_output_tokens = num_tokens

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


class LinearConnector(nn.Linear):
    """LLaVA v1's mm_projector; its state dict keys (weight, bias) match LLaVA's checkpoints."""

    def __init__(self, in_dim: int, out_dim: int, num_tokens: int):
        super().__init__(in_dim, out_dim)
        self.num_output_tokens = num_tokens

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features.to(self.weight.dtype)).to(features.dtype)


class MLPConnector(nn.Sequential):
    """Linear, then (activation, Linear) x (depth - 1): LLaVA-1.5's `mlp{depth}x_{activation}`.

    A plain Sequential so the state dict keys (0.weight, 2.weight, ...) match LLaVA's
    mm_projector checkpoints.
    """

    def __init__(self, in_dim: int, out_dim: int, num_tokens: int, depth: int, activation: str, hidden_dim: int):
        widths = [in_dim] + [hidden_dim] * (depth - 1) + [out_dim]
        layers: list[nn.Module] = [nn.Linear(widths[0], widths[1])]
        for i in range(1, depth):
            layers += [ACTIVATIONS[activation](), nn.Linear(widths[i], widths[i + 1])]
        super().__init__(*layers)
        self.num_output_tokens = num_tokens

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features.to(self[0].weight.dtype)).to(features.dtype)


class QFormerConnector(nn.Module):
    """BLIP-2: learned queries cross-attend to the features in transformers' Q-Former, then a
    Linear maps them to the LLM width. Attribute names follow Blip2Model (query_tokens,
    qformer, language_projection) so BLIP-2 Q-Former weights map over by name."""

    def __init__(self, in_dim: int, out_dim: int, *, num_queries: int, num_layers: int, hidden_size: int,
                 num_heads: int, cross_attention_frequency: int, intermediate_size: int, dropout: float):
        super().__init__()
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        config = Blip2QFormerConfig(
            hidden_size=hidden_size,
            num_hidden_layers=num_layers,
            num_attention_heads=num_heads,
            intermediate_size=intermediate_size,
            cross_attention_frequency=cross_attention_frequency,
            encoder_hidden_size=in_dim,
            hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout,
        )
        self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, hidden_size))
        nn.init.normal_(self.query_tokens, std=config.initializer_range)  # as Blip2PreTrainedModel does
        self.qformer = Blip2QFormerModel(config)
        self.language_projection = nn.Linear(hidden_size, out_dim)
        self.num_output_tokens = num_queries

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        dtype = self.language_projection.weight.dtype
        queries = self.query_tokens.expand(features.shape[0], -1, -1)
        hidden = self.qformer(query_embeds=queries, encoder_hidden_states=features.to(dtype)).last_hidden_state
        return self.language_projection(hidden.to(dtype)).to(features.dtype)


class ResamplerLayer(nn.Module):
    """Flamingo's Perceiver-resampler block: latents attend to [features; latents], then a
    feed-forward; both residual, pre-norm."""

    def __init__(self, width: int, num_heads: int, ff_mult: int):
        super().__init__()
        self.norm_features = nn.LayerNorm(width)
        self.norm_latents = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, num_heads, batch_first=True)
        self.feed_forward = nn.Sequential(
            nn.LayerNorm(width),
            nn.Linear(width, ff_mult * width, bias=False),
            nn.GELU(),
            nn.Linear(ff_mult * width, width, bias=False),
        )

    def forward(self, features: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        queries = self.norm_latents(latents)
        keys = torch.cat([self.norm_features(features), queries], dim=1)
        latents = latents + self.attention(queries, keys, keys, need_weights=False)[0]
        return latents + self.feed_forward(latents)


class ResamplerConnector(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, *, num_queries: int, depth: int, num_heads: int,
                 hidden_size: int, ff_mult: int):
        super().__init__()
        # Flamingo resamples at the encoder width; a different latent width needs an input map.
        self.input_projection = nn.Identity() if hidden_size == in_dim else nn.Linear(in_dim, hidden_size)
        self.latents = nn.Parameter(torch.randn(num_queries, hidden_size) * 0.02)
        self.layers = nn.ModuleList(ResamplerLayer(hidden_size, num_heads, ff_mult) for _ in range(depth))
        self.norm = nn.LayerNorm(hidden_size)
        self.output_projection = nn.Linear(hidden_size, out_dim)
        self.num_output_tokens = num_queries

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        dtype = self.output_projection.weight.dtype
        x = self.input_projection(features.to(dtype))
        latents = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(x, latents)
        return self.output_projection(self.norm(latents)).to(features.dtype)
