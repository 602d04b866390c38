"""transformers vision towers (CLIP, SigLIP) wrapped to the encoder contract."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ablate.errors import AblateError, MissingCheckpointError
from ablate.components.checkpoints import checkpoint_config, checkpoint_fingerprint, open_checkpoint

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# config.json model types each tower can be read from (a full CLIP/SigLIP or a vision-only one).
_MODEL_TYPES = {"clip": ("clip", "clip_vision_model"), "siglip": ("siglip", "siglip_vision_model")}
_LABELS = {"clip": "CLIP", "siglip": "SigLIP"}


class HFVisionEncoder(nn.Module):
    """Runs a vision tower with all hidden states and returns the chosen layers' tokens.

    Like LLaVA's CLIPVisionTower: `hidden_states[feature_layer]`, CLS dropped for "patch".
    """

    def __init__(
        self,
        model: nn.Module,
        image_processor: Any,
        *,
        feature_layers: list[int],
        drop_cls: bool,
        has_cls: bool,
        cache_key: str,
    ):
        super().__init__()
        self.model = model
        self.image_processor = image_processor
        self.feature_layers = list(feature_layers)
        self.drop_cls = drop_cls
        self.cache_key = cache_key
        cfg = model.config
        self.image_size = int(cfg.image_size)
        patches = (cfg.image_size // cfg.patch_size) ** 2
        self.num_tokens = patches + (1 if has_cls and not drop_cls else 0)
        self.feature_dim = int(cfg.hidden_size) * len(self.feature_layers)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixel_values.to(self.model.dtype), output_hidden_states=True)
        layers = [out.hidden_states[i] for i in self.feature_layers]
        features = layers[0] if len(layers) == 1 else torch.cat(layers, dim=-1)
        return features[:, 1:] if self.drop_cls else features


def load_vision_encoder(config, family: str) -> HFVisionEncoder:
    """Load the tower and its image processor from `config.name_or_path` (frozen, eval mode)."""
    from transformers import AutoConfig

    checkpoint_config = open_checkpoint(
        "encoder", config.name_or_path, lambda src, **kw: AutoConfig.from_pretrained(src, **kw)
    )
    _checked_vision_config(config, family, checkpoint_config)
    dtype = _DTYPES[config.dtype]
    model_class, extra = _tower_class(family)

    model, info = open_checkpoint(
        "encoder",
        config.name_or_path,
        lambda src, **kw: model_class.from_pretrained(src, dtype=dtype, output_loading_info=True, **extra, **kw),
    )
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise MissingCheckpointError(
            "encoder", config.name_or_path,
            f"it is not a {model_class.__name__} checkpoint: {len(missing)} weights missing, e.g. {missing[0]}",
        )

    image_processor = open_checkpoint(
        "encoder", config.name_or_path, lambda src, **kw: load_image_processor(src, **kw), what="image processor",
    )
    model.requires_grad_(False)
    model.eval()
    return _wrap(model, image_processor, config, family, features_key(config, image_processor))


def load_image_processor(src: str, **kwargs: Any) -> Any:
    """The checkpoint's image processor on transformers' PIL backend.

    LLaVA prepares images with transformers 4's CLIPImageProcessor, which resizes with PIL.
    transformers 5 picks its torchvision backend whenever torchvision is installed, and that
    resize gives slightly different pixels; the PIL backend is the same code as LLaVA's.
    """
    from transformers import AutoImageProcessor

    return AutoImageProcessor.from_pretrained(src, backend="pil", **kwargs)


def features_key(config, image_processor: Any) -> str:
    """What decides the encoder's features for an image: its config, its checkpoint's files, and
    the image processor's class (the PIL and torchvision backends resize to different pixels), so
    the feature cache never serves features another preprocessing made."""
    from ablate.fingerprint import content_hash

    return content_hash({"checkpoint": checkpoint_fingerprint(config, config.name_or_path),
                         "image_processor": type(image_processor).__name__}, length=20)


def vision_encoder_on_meta(config, family: str) -> HFVisionEncoder:
    """The encoder built on the meta device from the checkpoint's config.json alone: its shapes,
    no weights read and no memory taken (image_processor None, no cache key)."""
    vision = copy.deepcopy(_checked_vision_config(config, family, checkpoint_config("encoder", config.name_or_path)))
    model_class, extra = _tower_class(family)
    for key, value in extra.items():
        setattr(vision, key, value)
    with torch.device("meta"):
        model = model_class(vision).to(_DTYPES[config.dtype])  # the dtype a run loads it in
    model.requires_grad_(False)
    return _wrap(model, None, config, family, "")


def _wrap(model, image_processor, config, family: str, cache_key: str) -> HFVisionEncoder:
    encoder = HFVisionEncoder(
        model,
        image_processor,
        feature_layers=config.feature_layers,
        drop_cls=family == "clip" and config.select == "patch",
        has_cls=family == "clip",
        cache_key=cache_key,
    )
    return encoder.eval()


def _tower_class(family: str):
    """(the transformers tower class, config settings it is loaded with)."""
    from transformers import CLIPVisionModel, SiglipVisionModel

    if family == "clip":
        return CLIPVisionModel, {}
    # The attention-pooling head is unused here; leaving it out keeps unused params away
    # from DDP and LoRA when the encoder is trained.
    return SiglipVisionModel, {"vision_use_head": False}


def _checked_vision_config(config, family: str, checkpoint_config):
    """The checkpoint's vision config, after checking it is this family's and fits the settings."""
    if checkpoint_config.model_type not in _MODEL_TYPES[family]:
        other = next((f"; that is type hf_{f}" for f, types in _MODEL_TYPES.items()
                      if checkpoint_config.model_type in types), "")
        raise AblateError(
            f"encoder {config.type}: {config.name_or_path!r} is a {checkpoint_config.model_type!r} checkpoint, "
            f"not {_LABELS[family]} (model_type {' or '.join(_MODEL_TYPES[family])}){other}"
        )
    vision = getattr(checkpoint_config, "vision_config", None) or checkpoint_config
    _check_against(config, vision)
    return vision


def _check_against(config, vision) -> None:
    """Settings that must agree with the checkpoint's vision config, checked before loading weights."""
    where = f"encoder {config.type}"
    checkpoint_size = int(vision.image_size)
    if config.image_size is not None and config.image_size != checkpoint_size:
        raise AblateError(
            f"{where}: image_size {config.image_size} does not match checkpoint "
            f"{config.name_or_path!r}, which takes {checkpoint_size}x{checkpoint_size} images; "
            f"remove image_size or choose a {config.image_size}px checkpoint"
        )
    num_states = vision.num_hidden_layers + 1  # embeddings + every layer
    for index in config.feature_layers:
        if not -num_states <= index < num_states:
            raise AblateError(
                f"{where}: feature_layer {index} is out of range for {config.name_or_path!r}, which has "
                f"{num_states} hidden states (use {-num_states}..{num_states - 1}; -1 = last layer)"
            )
