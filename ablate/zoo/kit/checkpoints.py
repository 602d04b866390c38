"""The kit's checkpoints: the paper recipes' hub repositories, file for file, shrunk to 2 layers.

Under the kit's `hub/<org>/<name>/`, written by `ablate.zoo.hub_layouts` (random weights):

    openai/clip-vit-large-patch14(-336)   CLIP-L/14 at 224 and 336 px, vision width 32 (real: 1024)
    lmsys/vicuna-{7b,13b}-v1.{3,5}        tokenizer.model only (no tokenizer.json), .bin shards;
                                          7B width 48, 13B width 64 (real: 4096, 5120), so a
                                          projector of one size does not fit the other, as at full scale
    liuhaotian/llava-pretrain-vicuna-{7b,13b}-v1.3
                                          LLaVA's stage-1 projector releases: mm_projector.bin, a torch
                                          state dict `model.mm_projector.weight/.bias` (fp16) of a linear
                                          map from CLIP-L's width to the Vicuna's, and the config.json beside it
    liuhaotian/llava-v1.5-mlp2x-336px-pretrain-vicuna-{7b,13b}-v1.5
                                          LLaVA-1.5's: the same for its two-layer GELU MLP
                                          (`model.mm_projector.0.*`, `model.mm_projector.2.*`)

Every Vicuna shares one SentencePiece `tokenizer.model`, trained on the kit's texts, as the
real ones share Llama's.

`full_size_config(repo)` gives the config.json of the real checkpoint a kit repo stands in for
(`ablate plan` builds it on the meta device where the real checkpoint is not on the machine).
"""

from __future__ import annotations

import json
from pathlib import Path

from typing import Any

from ablate.zoo.hub_layouts import TINY_TOWER

VISION_WIDTH = TINY_TOWER["hidden_size"]
LLM_SHAPES = {  # 2 layers; the widths differ per size as the real ones (hub_layouts.VICUNA_SHAPES) do
    "7b": dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4),
    "13b": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4),
}
SHARDS = {"7b": 2, "13b": 3}  # as lmsys shards them
VICUNAS = {f"lmsys/vicuna-{size}-{version}": (size, version) for size in LLM_SHAPES for version in ("v1.3", "v1.5")}
CLIPS = {"openai/clip-vit-large-patch14": 224, "openai/clip-vit-large-patch14-336": 336}
# repo -> (LLM size, LLaVA's mm_projector_type, the vision tower it was trained on)
PROJECTORS = {
    **{f"liuhaotian/llava-pretrain-vicuna-{size}-v1.3": (size, "linear", "openai/clip-vit-large-patch14")
       for size in LLM_SHAPES},
    **{f"liuhaotian/llava-v1.5-mlp2x-336px-pretrain-vicuna-{size}-v1.5": (size, "mlp2x_gelu",
                                                                          "openai/clip-vit-large-patch14-336")
       for size in LLM_SHAPES},
}
TOKENIZER_VOCAB = 800


def full_size_config(repo: str) -> dict[str, Any] | None:
    """The config.json of the real `repo` (a Vicuna or CLIP ViT-L/14 the kit stands in for, at full
    size: the kit writes the same config shrunk); None for any other repo."""
    from ablate.zoo.hub_layouts import (
        CLIP_L_PROJECTION, CLIP_L_TEXT, CLIP_L_VISION, LLAMA_VOCAB, VICUNA_SHAPES, clip_l_config, vicuna_config,
    )

    if repo in VICUNAS:
        size, version = VICUNAS[repo]
        return vicuna_config(version, LLAMA_VOCAB, VICUNA_SHAPES[size])
    if repo in CLIPS:
        config = clip_l_config(CLIPS[repo], vision=CLIP_L_VISION, text=CLIP_L_TEXT, projection_dim=CLIP_L_PROJECTION)
        return config.to_dict()
    return None


def write_checkpoints(hub: Path, corpus: list[str]) -> None:
    """Every checkpoint of the kit into `hub` (the tokenizer is trained on `corpus`)."""
    from ablate.zoo.hub_layouts import write_clip_l_like, write_vicuna_like
    from ablate.zoo.tokenizer import train_sentencepiece

    spm = train_sentencepiece(corpus, hub / ".tokenizer" / "tokenizer.model", vocab_size=TOKENIZER_VOCAB)
    for seed, (repo, (size, version)) in enumerate(sorted(VICUNAS.items())):
        write_vicuna_like(hub / repo, spm, version=version, shards=SHARDS[size], seed=seed, **LLM_SHAPES[size])
    spm.unlink()
    spm.parent.rmdir()
    for seed, (repo, image_size) in enumerate(sorted(CLIPS.items())):
        write_clip_l_like(hub / repo, image_size=image_size, seed=seed)
    for seed, (repo, (size, kind, tower)) in enumerate(sorted(PROJECTORS.items())):
        write_projector(hub / repo, LLM_SHAPES[size]["hidden_size"], kind, tower, seed=seed)


def write_projector(folder: Path, llm_width: int, kind: str, tower: str, *, seed: int = 0) -> Path:
    """A LLaVA stage-1 projector release: mm_projector.bin (fp16 state dict under LLaVA's key
    prefix) for a `linear` or `mlp2x_gelu` projector from CLIP-L's width to `llm_width`."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    widths = [VISION_WIDTH, llm_width] if kind == "linear" else [VISION_WIDTH, llm_width, llm_width]
    prefixes = ["model.mm_projector."] if kind == "linear" else ["model.mm_projector.0.", "model.mm_projector.2."]
    state = {}
    for prefix, (width_in, width_out) in zip(prefixes, zip(widths, widths[1:])):
        state[prefix + "weight"] = (torch.randn(width_out, width_in, generator=generator) * 0.02).half()
        state[prefix + "bias"] = torch.zeros(width_out, dtype=torch.float16)
    torch.save(state, folder / "mm_projector.bin")
    config = {"architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava", "hidden_size": llm_width,
              "mm_hidden_size": VISION_WIDTH, "mm_projector_type": kind, "mm_vision_tower": tower,
              "mm_vision_select_layer": -2, "mm_use_im_start_end": False, "torch_dtype": "float16"}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder
