"""Vision encoders: pixels [B, 3, H, W] -> features [B, N, D] (see ablate.components.contracts).

Config classes and `register` are light; the transformers code lives in `hf_vision` and is
imported by the builders.
"""

from __future__ import annotations

from typing import Literal, Union

from pydantic import Field, field_validator

from ablate.config_model import NonBlank
from ablate.registry import ComponentConfig

Dtype = Literal["float32", "bfloat16", "float16"]


class _HFVisionConfig(ComponentConfig):
    name_or_path: NonBlank = Field(description="Hub id, local folder, or zoo:<name> (e.g. zoo:tiny-clip)")
    feature_layer: Union[int, list[int]] = Field(
        -2,
        description="index into hidden_states (0 = embeddings, -1 = last layer), like LLaVA's "
        "mm_vision_select_layer; a list concatenates those layers on the feature dim",
    )
    image_size: int | None = Field(None, gt=0, description="if set, must equal the checkpoint's image size")
    dtype: Dtype = Field("float32", description="weights dtype")

    @field_validator("feature_layer")
    @classmethod
    def _non_empty(cls, value):
        if isinstance(value, list):
            if not value:
                raise ValueError("give at least one layer index")
            if len(set(value)) != len(value):
                raise ValueError(f"layer indices repeat: {value}")
        return value

    @property
    def feature_layers(self) -> list[int]:
        return list(self.feature_layer) if isinstance(self.feature_layer, list) else [self.feature_layer]


class HFClipConfig(_HFVisionConfig):
    select: Literal["patch", "cls_patch"] = Field(
        "patch", description="patch: drop the CLS token (LLaVA's default); cls_patch: keep it"
    )


class HFSiglipConfig(_HFVisionConfig):
    select: Literal["patch"] = Field("patch", description="SigLIP has no CLS token: patch tokens only")


def build_hf_clip(config: HFClipConfig, meta: bool = False):
    """CLIP vision tower (transformers CLIPVisionModel), frozen. `meta`: on the meta device from
    the checkpoint's config alone (shapes only, no weights read)."""
    return _build_tower(config, "clip", meta)


def build_hf_siglip(config: HFSiglipConfig, meta: bool = False):
    """SigLIP vision tower (transformers SiglipVisionModel), frozen. `meta`: as for hf_clip."""
    return _build_tower(config, "siglip", meta)


def _build_tower(config: _HFVisionConfig, family: str, meta: bool):
    from ablate.components.encoders.hf_vision import load_vision_encoder, vision_encoder_on_meta

    return vision_encoder_on_meta(config, family) if meta else load_vision_encoder(config, family)


def register(registries) -> None:
    from ablate.components.contracts import encoder_problem

    registries.encoder.contract = encoder_problem  # what a plugin's encoder builder must return
    add = registries.encoder.register
    add("hf_clip", HFClipConfig, build_hf_clip,
        description="CLIP ViT via transformers; feature_layer -2 + patch = LLaVA's default")
    add("hf_siglip", HFSiglipConfig, build_hf_siglip, description="SigLIP ViT via transformers (no CLS)")
