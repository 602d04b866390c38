"""Config models of the built-in connectors (pydantic only: cheap to import for `ablate list`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ablate.config_model import MAX_WIDTH
from ablate.registry import ComponentConfig

Activation = Literal["gelu", "relu", "silu", "tanh"]
# A connector deeper than this is a typo: building its layers, even on the meta device for
# `ablate plan`, would take hours.
MAX_LAYERS = 256
# Visual tokens per image: LLaVA-1.5 gives 576, LLaVA-NeXT's AnyRes up to 2,880.
MAX_QUERIES = 16_384
MAX_HEADS = 1024  # the widest released models have 128
MAX_FF_MULT = 64  # Flamingo's resampler uses 4


class IdentityConfig(ComponentConfig):
    """No options: visual features go to the LLM unchanged (needs encoder width == LLM width)."""


class LinearConfig(ComponentConfig):
    """No options: one nn.Linear(in_dim, out_dim), LLaVA v1's mm_projector."""


class MLPConfig(ComponentConfig):
    depth: int = Field(2, ge=1, le=MAX_LAYERS, description="number of Linear layers; 2 with gelu is LLaVA-1.5's mlp2x_gelu")
    activation: Activation = Field("gelu", description="non-linearity between the Linear layers")
    hidden_dim: int | None = Field(
        None, gt=0, le=MAX_WIDTH, description="width of the hidden layers (default: the LLM width, as in LLaVA)"
    )

    @model_validator(mode="after")
    def _hidden_needs_depth(self) -> "MLPConfig":
        if self.depth == 1 and self.hidden_dim is not None:
            raise ValueError("hidden_dim has no effect with depth 1 (a single Linear layer); remove it")
        return self


class QFormerConfig(ComponentConfig):
    num_queries: int = Field(32, gt=0, le=MAX_QUERIES, description="learned query tokens = visual tokens given to the LLM")
    num_layers: int = Field(2, gt=0, le=MAX_LAYERS, description="Q-Former transformer layers")
    hidden_size: int = Field(256, gt=0, le=MAX_WIDTH, description="Q-Former width")
    num_heads: int = Field(4, gt=0, le=MAX_HEADS, description="attention heads (must divide hidden_size)")
    cross_attention_frequency: int = Field(
        1, gt=0, le=MAX_LAYERS, description="cross-attend to the visual features every N layers (BLIP-2 uses 2)"
    )
    intermediate_size: int | None = Field(None, gt=0, le=4 * MAX_WIDTH, description="feed-forward width (default: 4 x hidden_size)")
    dropout: float = Field(0.0, ge=0, lt=1, description="hidden and attention dropout (BLIP-2 uses 0.1)")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "QFormerConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})")
        return self


class ResamplerConfig(ComponentConfig):
    num_queries: int = Field(64, gt=0, le=MAX_QUERIES, description="learned latent queries = visual tokens given to the LLM")
    depth: int = Field(2, gt=0, le=MAX_LAYERS, description="resampler layers (cross-attention + feed-forward each)")
    num_heads: int = Field(8, gt=0, le=MAX_HEADS, description="attention heads (must divide the latent width)")
    hidden_size: int | None = Field(
        None, gt=0, le=MAX_WIDTH, description="latent width (default: the encoder width, as in Flamingo)"
    )
    ff_mult: int = Field(4, gt=0, le=MAX_FF_MULT, description="feed-forward width = ff_mult x latent width")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "ResamplerConfig":
        if self.hidden_size is not None and self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads ({self.num_heads}) must divide hidden_size ({self.hidden_size})")
        return self
