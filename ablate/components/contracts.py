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
