"""The kit's checkpoints: the paper recipes' hub repositories, file for file, shrunk to 2 layers.

Under the kit's `hub/<org>/<name>/`, written by `ablate.zoo.hub_layouts` (random weights):

    openai/clip-vit-large-patch14(-336)   CLIP-L/14 at 224 and 336 px, vision width 32 (real: 1024)
    lmsys/vicuna-{7b,13b}-v1.{3,5}        tokenizer.model only (no tokenizer.json), .bin shards;
                                          7B width 48, 13B width 64 (real: 4096, 5120), so a
                                          projector of one size does not fit the other, as at full scale
    liuhaotian/llava-pretrain-vicuna-{7b,13b}-v1.3
                                          LLaVA's stage-1 projector release: mm_projector.bin, a torch
                                          state dict `model.mm_projector.weight/.bias` (fp16) for CLIP-L
                                          width -> the Vicuna's width, and the config.json beside it

Every Vicuna shares one SentencePiece `tokenizer.model`, trained on the kit's texts, as the
real ones share Llama's.
"""

from __future__ import annotations

import json
from pathlib import Path

from ablate.zoo.hub_layouts import TINY_TOWER

VISION_WIDTH = TINY_TOWER["hidden_size"]
LLM_SHAPES = {  # 2 layers; the widths differ per size as 4096 and 5120 do
    "7b": dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4),
    "13b": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4),
}
SHARDS = {"7b": 2, "13b": 3}  # as lmsys shards them
VICUNAS = {f"lmsys/vicuna-{size}-{version}": (size, version) for size in LLM_SHAPES for version in ("v1.3", "v1.5")}
CLIPS = {"openai/clip-vit-large-patch14": 224, "openai/clip-vit-large-patch14-336": 336}
PROJECTORS = {f"liuhaotian/llava-pretrain-vicuna-{size}-v1.3": size for size in LLM_SHAPES}
TOKENIZER_VOCAB = 800


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
    for seed, (repo, size) in enumerate(sorted(PROJECTORS.items())):
        write_projector(hub / repo, LLM_SHAPES[size]["hidden_size"], seed=seed)


def write_projector(folder: Path, llm_width: int, *, seed: int = 0) -> Path:
    """A LLaVA v1 stage-1 projector release: a linear CLIP-L -> LLM map in mm_projector.bin."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    state = {"model.mm_projector.weight": (torch.randn(llm_width, VISION_WIDTH, generator=generator) * 0.02).half(),
             "model.mm_projector.bias": torch.zeros(llm_width, dtype=torch.float16)}
    torch.save(state, folder / "mm_projector.bin")
    config = {"architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava", "hidden_size": llm_width,
              "mm_hidden_size": VISION_WIDTH, "mm_vision_tower": "openai/clip-vit-large-patch14",
              "mm_vision_select_layer": -2, "mm_use_im_start_end": False, "torch_dtype": "float16"}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder
