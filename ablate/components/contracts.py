"""What each component kind's builder takes and returns.

Encoder builder: `build(config) -> VisionEncoder` (an nn.Module)
    .feature_dim: int          width of each visual feature
    .num_tokens: int           features per image
    .image_size: int
    .image_processor           HF image processor matching the checkpoint, or any callable
                               `processor(images, return_tensors="pt")["pixel_values"]` (PIL RGB in)
    .cache_key: str | None     identifies config + weights, for the frozen-feature cache; optional:
                               an encoder without one (or with "" / None) is never cached
    forward(pixel_values[B,3,H,W]) -> features[B, num_tokens, feature_dim]: a floating tensor on
                               the device of pixel_values (checked at every call)

Connector builder: `build(config, in_dim=, out_dim=, num_input_tokens=) -> nn.Module`
    .num_output_tokens: int    visual tokens given to the LLM per image
    forward(features[B, N, in_dim]) -> tokens[B, num_output_tokens, out_dim]
    The output dtype follows the input dtype.

LLM builder: `build(config) -> LoadedLLM(model, tokenizer)`
    model: a transformers causal LM (PreTrainedModel with generate: get_input_embeddings, config,
    forward(inputs_embeds=, attention_mask=, labels=)); tokenizer: its fast tokenizer (required for
    a run; a `meta=True` build may leave it None). A missing pad token is fine (pad = unk or eos).
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

    def __call__(self, pixel_values: Any) -> Any: ...


# cache_key is optional: without one the encoder's features are computed every batch.
VISION_ENCODER_MEMBERS = ("feature_dim", "num_tokens", "image_size", "image_processor")


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
    # Training reads .config, evaluation calls .generate: a bare nn.Module fails far from here.
    lacks = [m for m in ("get_input_embeddings", "generate") if not callable(getattr(built.model, m, None))]
    lacks += [] if getattr(built.model, "config", None) is not None else ["config"]
    if lacks:
        return (f"its model, a {type(built.model).__name__}, is not a transformers causal LM (no "
                f"{', '.join(lacks)}); subclass PreTrainedModel and GenerationMixin")
    return None


def tokenizer_problem(tokenizer: Any) -> str | None:
    """Why an LLM's tokenizer cannot serve a run (templates need character offsets), or None."""
    if tokenizer is None:
        return "it gave no tokenizer (LoadedLLM(model, tokenizer=None)); a run needs the LLM's fast tokenizer"
    if not getattr(tokenizer, "is_fast", False):
        return (f"its tokenizer, a {type(tokenizer).__name__}, is not a fast (tokenizers-backed) tokenizer; "
                "load it with AutoTokenizer.from_pretrained(..., use_fast=True)")
    return None


def encoder_features_problem(features: Any, encoder: Any, images: int, device: Any) -> str | None:
    """Why an encoder's output for `images` images on `device` breaks the contract, or None.
    Cheap: it runs on every encoder call."""
    import torch

    if not isinstance(features, torch.Tensor):
        return f"returned a {type(features).__name__}, not a tensor"
    expected = (images, getattr(encoder, "num_tokens", None), getattr(encoder, "feature_dim", None))
    if tuple(features.shape) != expected:
        return (f"returned features of shape {list(features.shape)}, not [images, num_tokens, feature_dim] = "
                f"{list(expected)}")
    if not features.is_floating_point():
        return f"returned {features.dtype} features, not floating point"
    if features.device != torch.device(device):
        return f"returned features on {features.device}, not on the device of its input ({device})"
    return None
