"""What each component kind's builder takes and returns.

Encoder builder: `build(config) -> VisionEncoder` (an nn.Module)
    .feature_dim: int          width of each visual feature
    .num_tokens: int           features per image
    .image_size: int
    .image_processor           HF image processor matching the checkpoint
    .cache_key: str            identifies config + weights, for the frozen-feature cache
    forward(pixel_values[B,3,H,W]) -> features[B, num_tokens, feature_dim]

Connector builder: `build(config, in_dim=, out_dim=, num_input_tokens=) -> nn.Module`
    .num_output_tokens: int    visual tokens given to the LLM per image
    forward(features[B, N, in_dim]) -> tokens[B, num_output_tokens, out_dim]
    The output dtype follows the input dtype.

LLM builder: `build(config) -> LoadedLLM(model, tokenizer)`
    model: a transformers causal LM (PreTrainedModel); tokenizer: its fast tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

# LLaVA's placeholder id for an image inside input_ids; replaced by visual tokens.
IMAGE_TOKEN_INDEX = -200
IMAGE_TOKEN = "<image>"
IGNORE_INDEX = -100


@dataclass
class LoadedLLM:
    model: Any
    tokenizer: Any


@runtime_checkable
class VisionEncoder(Protocol):
    feature_dim: int
    num_tokens: int
    image_size: int
    image_processor: Any
    cache_key: str

    def __call__(self, pixel_values: Any) -> Any: ...


VISION_ENCODER_MEMBERS = ("feature_dim", "num_tokens", "image_size", "image_processor", "cache_key")


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def connector_problem(built: Any, entry: Any = None) -> str | None:
    """Why what a connector builder returned is not a connector, or None."""
    from torch import nn  # the builder has imported torch already

    if not isinstance(built, nn.Module):
        return "a connector is a torch.nn.Module"
    tokens = getattr(built, "num_output_tokens", None)
    if not _positive_int(tokens):
        return f"num_output_tokens must be a positive int attribute set when it is built, got {tokens!r}"
    return None


def encoder_problem(built: Any, entry: Any = None) -> str | None:
    """Why what an encoder builder returned is not a VisionEncoder, or None."""
    from torch import nn

    if not isinstance(built, nn.Module):
        return "an encoder is a torch.nn.Module with " + ", ".join(VISION_ENCODER_MEMBERS)
    missing = [m for m in VISION_ENCODER_MEMBERS if not hasattr(built, m)]
    if missing:
        return f"it lacks {', '.join(missing)} (ablate.components.contracts.VisionEncoder)"
    bad = [f"{m}={getattr(built, m)!r}" for m in ("feature_dim", "num_tokens") if not _positive_int(getattr(built, m))]
    return f"feature_dim and num_tokens must be positive ints, got {', '.join(bad)}" if bad else None


def llm_problem(built: Any, entry: Any = None) -> str | None:
    """Why what an llm builder returned is not a LoadedLLM with a model, or None."""
    if not isinstance(built, LoadedLLM) or built.model is None:
        return "an llm builder returns ablate.components.contracts.LoadedLLM(model, tokenizer)"
    if not callable(getattr(built.model, "get_input_embeddings", None)):
        return f"its model, a {type(built.model).__name__}, is not a transformers causal LM (no get_input_embeddings)"
    return None
