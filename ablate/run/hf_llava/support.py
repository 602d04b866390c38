"""Which ablate models a transformers Llava checkpoint reproduces exactly, and how.

LlavaForConditionalGeneration runs a vision tower (transformers' AutoModel of its vision
config), picks hidden states (`vision_feature_layer`, CLS dropped under the "default"
strategy), projects them with Linear -> activation -> Linear (LlavaMultiModalProjector), and
runs a base language model plus a bias-free `lm_head`. Everything ablate runs that fits this
shape is exported; anything else is refused with the part named, never approximated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ablate.errors import AblateError
from ablate.registry import checkpoint_or_type

# ablate encoder type -> vision family (ablate.components.encoders.hf_vision loads both).
ENCODERS = {"hf_clip": "clip", "hf_siglip": "siglip"}
# Causal LMs whose logits are `lm_head(base_model(...))` with nothing after it (no soft-capping or
# logit scale), so Llava's language_model + lm_head compute them exactly.
LLM_TYPES = ("llama", "mistral", "qwen2")
TEMPLATES = ("plain", "vicuna_v1")


class UnsupportedExportError(AblateError):
    """The run's model has a part that transformers' Llava cannot express."""


@dataclass(frozen=True)
class LlavaLayout:
    """How the run's model maps onto LlavaConfig and LlavaProcessor."""

    vision_feature_layer: int | list[int]
    vision_feature_select_strategy: str  # "default" drops CLS, "full" keeps every token
    num_additional_image_tokens: int  # CLS: the processor counts it before "default" takes it off
    projector_act: str  # ACT2FN name; "linear" when the connector has a single Linear
    visual_tokens: int
    template: Any  # the ConversationTemplate the run evaluates with
    image_aspect_ratio: str


def check_recipe(recipe: Any) -> None:
    """The checks the recipe alone settles (encoder, connector, template), made before any
    weights are loaded; UnsupportedExportError names the part."""
    if recipe.model.encoder.type not in ENCODERS:
        raise _unsupported(f"encoder {recipe.model.encoder.type!r}", f"encoders {', '.join(ENCODERS)}")
    projector_activation(recipe.model.connector)
    _template(recipe)


def llava_layout(recipe: Any, vlm: Any) -> LlavaLayout:
    """The layout for a run's recipe and model, or UnsupportedExportError naming the part."""
    check_recipe(recipe)
    model = recipe.model
    llm_type = getattr(vlm.llm.config, "model_type", None)
    if llm_type not in LLM_TYPES or getattr(vlm.llm, "lm_head", None) is None or vlm.llm.lm_head.bias is not None:
        raise _unsupported(f"llm {checkpoint_or_type(model.llm)!r} (model_type {llm_type!r})",
                           f"causal LMs of type {', '.join(LLM_TYPES)}")
    llm_width = vlm.llm.get_input_embeddings().embedding_dim
    if model.connector.type == "mlp" and (model.connector.hidden_dim or llm_width) != llm_width:
        raise _unsupported(f"connector mlp with hidden_dim {model.connector.hidden_dim}",
                           f"an mlp hidden width equal to the LLM width ({llm_width})")
    family = ENCODERS[model.encoder.type]
    layers = model.encoder.feature_layers
    keeps_cls = family == "clip" and model.encoder.select == "cls_patch"
    return LlavaLayout(
        vision_feature_layer=layers[0] if len(layers) == 1 else list(layers),
        vision_feature_select_strategy="full" if family == "siglip" or keeps_cls else "default",
        num_additional_image_tokens=1 if family == "clip" else 0,
        projector_act=projector_activation(model.connector),
        visual_tokens=int(vlm.connector.num_output_tokens),
        template=_template(recipe),
        image_aspect_ratio=recipe.eval_aspect_ratio(),
    )


def projector_activation(connector: Any) -> str:
    """Llava's `projector_hidden_act` for the connector: its activation for a 2-layer MLP, "linear"
    for one Linear (the second layer becomes an identity)."""
    if connector.type == "linear" or (connector.type == "mlp" and connector.depth == 1):
        return "linear"
    if connector.type != "mlp":
        raise _unsupported(f"connector {connector.type!r}", "connectors linear and mlp (depth 1 or 2)")
    if connector.depth != 2:
        raise _unsupported(f"connector mlp with depth {connector.depth}",
                           "mlp depth 2 (Linear, activation, Linear) or depth 1")
    return connector.activation


def _template(recipe: Any) -> Any:
    from ablate.registry import registries

    config = recipe.eval.template if recipe.eval is not None and recipe.eval.template else None
    config = config or (recipe.stages[-1].template if recipe.stages else None)
    if config is None or config.type not in TEMPLATES:
        name = config.type if config is not None else "none"
        raise _unsupported(f"template {name!r}", f"templates {', '.join(TEMPLATES)}")
    return registries().template.get(config.type).build(config)


def _unsupported(part: str, supported: str) -> UnsupportedExportError:
    return UnsupportedExportError(
        f"cannot export to hf-llava: {part} has no exact counterpart in a transformers Llava "
        f"checkpoint (supported: {supported})"
    )
