"""Checkpoint folders laid out file for file like real hub repositories, shrunk, with random weights.

Loading code meets these exactly as it meets the real downloads: the same file names, the same
JSON (old-style configs and tokenizer settings included), only the sizes shrunk.

- `write_vicuna_like`: lmsys/vicuna-{7b,13b}-v1.{3,5}: `tokenizer.model` with no `tokenizer.json`,
  `tokenizer_config.json` naming the slow `LlamaTokenizer` (v1.5 says `"legacy": false`, v1.3
  says nothing), `special_tokens_map.json`, `generation_config.json`, weights in
  `pytorch_model-0000k-of-0000n.bin` shards with their index.
- `write_clip_l_like`: openai/clip-vit-large-patch14 (224 px) and clip-vit-large-patch14-336
  (`write_clip_l336_like`): a full CLIP (text and vision towers) and its
  `preprocessor_config.json` in the old feature-extractor form.
- `write_siglip_so400m_like`: google/siglip-so400m-patch14-384: a full SigLIP and its
  `SiglipImageProcessor` config.

The SentencePiece model comes from the caller (e.g. `ablate.zoo.tokenizer.train_sentencepiece`).

The real repositories' shapes (`VICUNA_SHAPES`, `CLIP_L_VISION`, ...) live here too, next to the
shrunk ones, so one config function gives both: the writers use the shrunk shapes, and
`ablate plan` builds the full-size models on the meta device from `vicuna_config` / `clip_l_config`
with the real ones (`ablate.zoo.kit.checkpoints.full_size_config`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

# ---- Vicuna --------------------------------------------------------------------------------

_ADDED = dict(lstrip=False, normalized=False, rstrip=False, single_word=False)
# What differs between the two Vicuna generations LLaVA uses (v1.3: LLaVA v1, v1.5: LLaVA-1.5).
VICUNA_VERSIONS: dict[str, dict[str, Any]] = {
    "v1.5": dict(legacy=False, model_max_length=4096, padding_side="right", transformers_version="4.31.0",
                 generation=dict(do_sample=True, max_length=4096, temperature=0.9, top_p=0.6)),
    "v1.3": dict(legacy=None, model_max_length=2048, padding_side=None, transformers_version="4.28.0.dev0",
                 generation=dict(_from_model_config=True)),
}
# The released Vicunas' config.json shapes (Llama-1/2 7B and 13B) and Llama's vocabulary.
VICUNA_SHAPES = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32),
    "13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                num_key_value_heads=40),
}
LLAMA_VOCAB = 32000
# Shrunk Llama shapes: 2 layers of small width; vocab_size comes from the tokenizer.model.
TINY_VICUNA = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=4)
_VERSION_DEFAULT = object()


def write_vicuna_like(
    folder: str | Path,
    tokenizer_model: str | Path,
    *,
    version: str = "v1.5",
    legacy: bool | None | object = _VERSION_DEFAULT,
    shards: int = 2,
    weights: str = "bin",
    seed: int = 0,
    **shape: int,
) -> Path:
    """A Vicuna-shaped checkpoint in `folder` using `tokenizer_model` as its `tokenizer.model`.

    `legacy`: the tokenizer_config.json value (None: no "legacy" key, as in v1.3); by default the
    version's. `weights`: "bin" (pytorch_model-*.bin shards, as lmsys released them) or
    "safetensors". `shape` overrides TINY_VICUNA.
    """
    import sentencepiece

    spec = VICUNA_VERSIONS[version]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tokenizer_model, folder / "tokenizer.model")
    vocab_size = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_model)).get_piece_size()
    _write_json(folder / "tokenizer_config.json", _vicuna_tokenizer_config(spec, legacy))
    special = {name: {"content": token, **_ADDED} for name, token in _SPECIALS.items()}
    _write_json(folder / "special_tokens_map.json", {**special, "pad_token": "<unk>"})
    ids = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0)
    _write_json(folder / "generation_config.json",
                {**ids, **spec["generation"], "transformers_version": spec["transformers_version"]})
    config = vicuna_config(version, vocab_size, {**TINY_VICUNA, **shape})
    _write_json(folder / "config.json", config)
    _write_weights(folder, _random_llama(config, seed), shards, weights)
    return folder


_SPECIALS = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def _vicuna_tokenizer_config(spec: dict[str, Any], legacy: Any) -> dict[str, Any]:
    legacy = spec["legacy"] if legacy is _VERSION_DEFAULT else legacy
    config: dict[str, Any] = {"add_bos_token": True, "add_eos_token": False}
    config.update({name: {"__type": "AddedToken", "content": token, **_ADDED} for name, token in _SPECIALS.items()})
    config.update(clean_up_tokenization_spaces=False, model_max_length=spec["model_max_length"], pad_token=None,
                  sp_model_kwargs={}, tokenizer_class="LlamaTokenizer")
    if legacy is not None:
        config["legacy"] = legacy
    if spec["padding_side"] is not None:
        config["padding_side"] = spec["padding_side"]
    return dict(sorted(config.items()))


def vicuna_config(version: str, vocab_size: int, shape: dict[str, int]) -> dict[str, Any]:
    """A Vicuna `version`'s config.json as the 4.28-4.31 era wrote it (torch_dtype, pretraining_tp,
    rope_scaling), with `shape` (VICUNA_SHAPES[size] for the real one)."""
    spec = VICUNA_VERSIONS[version]
    return dict(
        architectures=["LlamaForCausalLM"], bos_token_id=1, eos_token_id=2, hidden_act="silu",
        initializer_range=0.02, max_position_embeddings=spec["model_max_length"], model_type="llama",
        pad_token_id=0, pretraining_tp=1, rms_norm_eps=1e-05, rope_scaling=None, tie_word_embeddings=False,
        torch_dtype="float16", transformers_version=spec["transformers_version"], use_cache=True,
        vocab_size=vocab_size, **shape,
    )


def _random_llama(config: dict[str, Any], seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**config)).to(torch.float16)


# ---- vision towers -------------------------------------------------------------------------


def clip_l_preprocessor(size: int) -> dict[str, Any]:
    """openai/clip-vit-large-patch14(-336)/preprocessor_config.json, key for key: the two
    repos differ only in the size (224 or 336)."""
    return {
        "crop_size": size,
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "resample": 3,
        "size": size,
    }


CLIP_L336_PREPROCESSOR = clip_l_preprocessor(336)
# google/siglip-so400m-patch14-384/preprocessor_config.json, key for key.
SIGLIP_SO400M_PREPROCESSOR = {
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_processor_type": "SiglipImageProcessor",
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "SiglipProcessor",
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"height": 384, "width": 384},
}
# CLIP ViT-L/14's config.json (both resolutions): its vision and text towers and projection.
CLIP_L_VISION = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16)
CLIP_L_TEXT = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12)
CLIP_L_PROJECTION = 768
CLIP_L_PATCH = 14  # 336 px: 24 x 24 = 576 patches (+ CLS)
# The real towers' resolution and patch (336/14 = 24x24 patches; 384/14 -> 27x27), 2 small layers.
TINY_TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)


def write_clip_l_like(folder: str | Path, *, image_size: int = 224, weights: str = "bin", seed: int = 0) -> Path:
    """openai/clip-vit-large-patch14's layout (or -336's, with `image_size` 336): config.json of
    a full CLIPModel, one pytorch_model.bin, the old-style preprocessor_config.json."""
    from transformers import CLIPModel

    config = clip_l_config(image_size)
    return _write_tower(folder, CLIPModel, config, clip_l_preprocessor(image_size), weights, seed)


def clip_l_config(image_size: int, *, vision: dict[str, int] = TINY_TOWER, text: dict[str, int] = TINY_TOWER,
                  projection_dim: int = 16):
    """A CLIP ViT-L/14 CLIPConfig at `image_size`: shrunk by default, the real one with
    vision=CLIP_L_VISION, text=CLIP_L_TEXT, projection_dim=CLIP_L_PROJECTION."""
    from transformers import CLIPConfig

    return CLIPConfig(
        text_config=dict(text, vocab_size=49408, max_position_embeddings=77),
        vision_config=dict(vision, image_size=image_size, patch_size=CLIP_L_PATCH),
        projection_dim=projection_dim,
    )


def write_clip_l336_like(folder: str | Path, *, weights: str = "bin", seed: int = 0) -> Path:
    """openai/clip-vit-large-patch14-336's layout."""
    return write_clip_l_like(folder, image_size=336, weights=weights, seed=seed)


def write_siglip_so400m_like(folder: str | Path, *, weights: str = "safetensors", seed: int = 0) -> Path:
    """google/siglip-so400m-patch14-384's layout: config.json of a full SiglipModel, one
    model.safetensors, its preprocessor_config.json."""
    from transformers import SiglipConfig, SiglipModel, SiglipTextConfig

    # Built whole first: a partial dict is filled from defaults whose ids lie outside the vocab.
    text = SiglipTextConfig(**TINY_TOWER, vocab_size=32000, max_position_embeddings=64, pad_token_id=1,
                            bos_token_id=1, eos_token_id=1)
    config = SiglipConfig(text_config=text.to_dict(), vision_config=dict(TINY_TOWER, image_size=384, patch_size=14))
    return _write_tower(folder, SiglipModel, config, SIGLIP_SO400M_PREPROCESSOR, weights, seed)


def _write_tower(folder, model_class, config, preprocessor: dict[str, Any], weights: str, seed: int) -> Path:
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = model_class(config)
    model.config.save_pretrained(folder)
    _write_weights(folder, model, 1, weights)
    _write_json(folder / "preprocessor_config.json", preprocessor)
    return folder


# ---- files ---------------------------------------------------------------------------------


def _write_weights(folder: Path, model, shards: int, weights: str) -> None:
    """Weights under the hub's file names: `pytorch_model.bin` / `model.safetensors`, or
    `...-0000k-of-0000n...` shards with the index json that maps each tensor to its shard.
    Written by hand because transformers 5's save_pretrained no longer writes .bin files."""
    import torch
    from safetensors.torch import save_file

    if weights not in ("bin", "safetensors"):
        raise ValueError(f"weights must be 'bin' or 'safetensors', got {weights!r}")
    stem, ext = ("pytorch_model", "bin") if weights == "bin" else ("model", "safetensors")
    state = {name: tensor.detach().clone().contiguous() for name, tensor in model.state_dict().items()}
    names = list(state)
    per_shard = -(-len(names) // shards)
    weight_map = {}
    for k in range(shards):
        part = {name: state[name] for name in names[k * per_shard:(k + 1) * per_shard]}
        file = f"{stem}.{ext}" if shards == 1 else f"{stem}-{k + 1:05d}-of-{shards:05d}.{ext}"
        if weights == "bin":
            torch.save(part, folder / file)
        else:
            save_file(part, folder / file, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, file))
    if shards > 1:
        total = sum(t.numel() * t.element_size() for t in state.values())
        _write_json(folder / f"{stem}.{ext}.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map})


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n")
