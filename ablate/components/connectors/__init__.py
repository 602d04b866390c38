"""Connectors: map visual features [B, N, in_dim] to LLM tokens [B, M, out_dim].

Builders take `(config, in_dim=, out_dim=, num_input_tokens=)` (see
ablate.components.contracts). Torch is imported inside them so `ablate list` stays fast.
"""

from __future__ import annotations

from ablate.components.connectors.configs import (
    IdentityConfig,
    LinearConfig,
    MLPConfig,
    QFormerConfig,
    ResamplerConfig,
)
from ablate.errors import AblateError


def check_dims(name: str, in_dim: int, out_dim: int, num_input_tokens: int) -> None:
    """Reject non-positive sizes early, with the connector's name (plugins may use this too)."""
    for label, value in (("in_dim", in_dim), ("out_dim", out_dim), ("num_input_tokens", num_input_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise AblateError(f"connector {name!r}: {label} must be a positive int, got {value!r}")


def build_identity(config: IdentityConfig, in_dim: int, out_dim: int, num_input_tokens: int):
    """Pass features through unchanged (encoder width must equal LLM width)."""
    check_dims("identity", in_dim, out_dim, num_input_tokens)
    if in_dim != out_dim:
        raise AblateError(
            f"connector 'identity' needs the encoder width to equal the LLM width, "
            f"but the encoder gives {in_dim} and the LLM expects {out_dim}; use 'linear' or 'mlp'"
        )
    from ablate.components.connectors.modules import IdentityConnector

    return IdentityConnector(num_input_tokens)


def build_linear(config: LinearConfig, in_dim: int, out_dim: int, num_input_tokens: int):
    """One linear layer (LLaVA v1's projector)."""
    check_dims("linear", in_dim, out_dim, num_input_tokens)
    from ablate.components.connectors.modules import LinearConnector

    return LinearConnector(in_dim, out_dim, num_input_tokens)


def build_mlp(config: MLPConfig, in_dim: int, out_dim: int, num_input_tokens: int):
    """MLP projector; depth 2 + gelu is LLaVA-1.5's mlp2x_gelu."""
    check_dims("mlp", in_dim, out_dim, num_input_tokens)
    from ablate.components.connectors.modules import MLPConnector

    return MLPConnector(
        in_dim, out_dim, num_input_tokens,
        depth=config.depth, activation=config.activation, hidden_dim=config.hidden_dim or out_dim,
    )


def build_qformer(config: QFormerConfig, in_dim: int, out_dim: int, num_input_tokens: int):
    """BLIP-2 Q-Former: learned queries cross-attend to the features, then project."""
    check_dims("qformer", in_dim, out_dim, num_input_tokens)
    from ablate.components.connectors.modules import QFormerConnector

    return QFormerConnector(
        in_dim, out_dim,
        num_queries=config.num_queries,
        num_layers=config.num_layers,
        hidden_size=config.hidden_size,
        num_heads=config.num_heads,
        cross_attention_frequency=config.cross_attention_frequency,
        intermediate_size=config.intermediate_size or 4 * config.hidden_size,
        dropout=config.dropout,
    )


def build_resampler(config: ResamplerConfig, in_dim: int, out_dim: int, num_input_tokens: int):
    """Flamingo's Perceiver resampler: a fixed number of latents, then project."""
    check_dims("resampler", in_dim, out_dim, num_input_tokens)
    width = config.hidden_size or in_dim
    if width % config.num_heads:
        raise AblateError(
            f"connector 'resampler': num_heads ({config.num_heads}) must divide the latent width ({width}, "
            f"{'hidden_size' if config.hidden_size else 'the encoder width'}); change num_heads or set hidden_size"
        )
    from ablate.components.connectors.modules import ResamplerConnector

    return ResamplerConnector(
        in_dim, out_dim,
        num_queries=config.num_queries, depth=config.depth, num_heads=config.num_heads,
        hidden_size=width, ff_mult=config.ff_mult,
    )


def register(registries) -> None:
    from ablate.components.contracts import connector_problem

    registries.connector.contract = connector_problem  # what a plugin's connector builder must return
    add = registries.connector.register
    add("identity", IdentityConfig, build_identity, description="features unchanged (encoder width = LLM width)")
    add("linear", LinearConfig, build_linear, description="one Linear layer (LLaVA v1)")
    add("mlp", MLPConfig, build_mlp, description="MLP; depth 2 + gelu = LLaVA-1.5 mlp2x_gelu")
    add("qformer", QFormerConfig, build_qformer,
        description="BLIP-2 Q-Former: num_queries learned queries cross-attend, then project")
    add("resampler", ResamplerConfig, build_resampler,
        description="Flamingo Perceiver resampler: num_queries latents, then project")
