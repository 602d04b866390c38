"""Checkpoints laid out file for file like the real hub repos load through ablate's loaders.

Vicuna (lmsys/vicuna-7b-v1.5, vicuna-13b-v1.3): `tokenizer.model` only, no `tokenizer.json`; its
tokenizer here is a SentencePiece model trained by this test. CLIP-L/336 and SigLIP so400m:
their real `preprocessor_config.json`. All shrunk to 2 small layers with random weights.
"""

from __future__ import annotations

import random

import pytest
import torch

from ablate.registry import registries
from ablate.templates import VicunaV1Template, tokenize_with_image
from ablate.zoo.hub_layouts import write_clip_l336_like, write_siglip_so400m_like, write_vicuna_like
from ablate.zoo.tokenizer import train_sentencepiece

WORDS = "the a blue red green circle square triangle shows what is this how many there shape colour image".split()
TEXTS = [
    "What is this?", " What is this?", " what is this", "  two  squares ", "\nWhat is this?", "a\n\nb", "12 345.6",
    "Émile's café 🍰", "▁What", "USER: the red circle ASSISTANT:", "",
]
VICUNA_FILES = {
    "v1.5": ["config.json", "generation_config.json", "pytorch_model-00001-of-00002.bin",
             "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json", "special_tokens_map.json",
             "tokenizer.model", "tokenizer_config.json"],
    "v1.3": ["config.json", "generation_config.json", "pytorch_model-00001-of-00003.bin",
             "pytorch_model-00002-of-00003.bin", "pytorch_model-00003-of-00003.bin",
             "pytorch_model.bin.index.json", "special_tokens_map.json", "tokenizer.model",
             "tokenizer_config.json"],
}


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
    rng = random.Random(0)
    corpus = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) + rng.choice(".?!") for _ in range(2000)]
    return train_sentencepiece(corpus, tmp_path_factory.mktemp("sp") / "tokenizer.model", vocab_size=500)


@pytest.fixture(scope="module")
def vicuna_dirs(sp_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("vicuna")
    return {
        "v1.5": write_vicuna_like(root / "vicuna-7b-v1.5", sp_model, version="v1.5", shards=2),
        "v1.3": write_vicuna_like(root / "vicuna-13b-v1.3", sp_model, version="v1.3", shards=3),
    }


@pytest.fixture(scope="module")
def tower_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("towers")
    return {"hf_clip": write_clip_l336_like(root / "clip-vit-large-patch14-336"),
            "hf_siglip": write_siglip_so400m_like(root / "siglip-so400m-patch14-384")}


def load_llm(folder):
    return registries().llm.get("hf_causal_lm").build({"name_or_path": str(folder)})


@pytest.mark.parametrize("version, legacy", [("v1.5", False), ("v1.3", True)])
def test_vicuna_layout_loads(vicuna_dirs, sp_model, version, legacy):
    import sentencepiece
    from transformers import LlamaTokenizer

    folder = vicuna_dirs[version]
    assert sorted(p.name for p in folder.iterdir()) == VICUNA_FILES[version]
    loaded = load_llm(folder)
    tokenizer, model = loaded.tokenizer, loaded.model
    assert isinstance(tokenizer, LlamaTokenizer) and tokenizer.is_fast
    assert tokenizer.legacy is legacy  # v1.3's config has no "legacy": the slow tokenizer's default
    vocab = sentencepiece.SentencePieceProcessor(model_file=str(sp_model)).get_piece_size()
    assert len(tokenizer) == model.config.vocab_size == vocab
    assert (tokenizer.pad_token, tokenizer.bos_token_id, tokenizer.eos_token_id) == ("<unk>", 1, 2)
    last_shard = torch.load(folder / VICUNA_FILES[version][-5], weights_only=True)
    assert model.dtype == torch.float32
    torch.testing.assert_close(model.lm_head.weight, last_shard["lm_head.weight"].float(), rtol=0, atol=0)


@pytest.mark.parametrize("version", ["v1.5", "v1.3"])
def test_vicuna_text_tokenizes_as_sentencepiece(vicuna_dirs, sp_model, version):
    """Plain text (no special tokens) is BOS + SentencePiece's own encoding, as in the slow
    tokenizer in either legacy mode; the leading-space cases go through tokenize_with_image."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(sp_model))
    tokenizer = load_llm(vicuna_dirs[version]).tokenizer
    for text in TEXTS:
        assert tokenize_with_image(text, tokenizer).ids == [1] + sp.encode(text), text
    assert sp.encode(" what", out_type=str) == ["▁", "▁what"]  # what the leading-space cases test


def test_only_legacy_gives_text_after_a_special_token_a_word_start(vicuna_dirs, sp_model):
    """The slow tokenizer's rule: legacy runs SentencePiece, dummy prefix and all, on every
    stretch between special tokens; non-legacy adds one "▁" at the start of the text only."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(sp_model))
    legacy = load_llm(vicuna_dirs["v1.3"]).tokenizer
    for text in ("red.</s>blue", "red.</s> blue", "red.</s>  blue"):
        before, after = text.split("</s>")
        assert legacy(text).input_ids == [1] + sp.encode(before) + [2] + sp.encode(after), text
    new = load_llm(vicuna_dirs["v1.5"]).tokenizer
    tokens = new.convert_ids_to_tokens(new("red.</s>blue").input_ids)
    assert tokens[: 2 + len(sp.encode("red."))][-1] == "</s>"
    assert "".join(tokens[tokens.index("</s>") + 1:]) == "blue"


@pytest.mark.parametrize("kind, size, tokens, processor", [
    ("hf_clip", 336, 576, "CLIPImageProcessor"), ("hf_siglip", 384, 729, "SiglipImageProcessor"),
])
def test_vision_layouts_load_with_their_real_image_processors(tower_dirs, kind, size, tokens, processor):
    from PIL import Image

    folder = tower_dirs[kind]
    weights = "pytorch_model.bin" if kind == "hf_clip" else "model.safetensors"
    assert sorted(p.name for p in folder.iterdir()) == sorted(["config.json", weights, "preprocessor_config.json"])
    encoder = registries().encoder.get(kind).build({"name_or_path": str(folder)})
    assert type(encoder.image_processor).__name__.removesuffix("Pil") == processor
    assert encoder.image_processor.resample == 3  # bicubic
    assert (encoder.image_size, encoder.num_tokens, encoder.feature_dim) == (size, tokens, 32)
    image = Image.new("RGB", (500, 300), (200, 30, 30))  # wider than tall: resize, then crop
    pixels = encoder.image_processor(images=image, return_tensors="pt").pixel_values
    assert pixels.shape == (1, 3, size, size)
    with torch.no_grad():
        assert encoder(pixels).shape == (1, tokens, 32)


@pytest.mark.parametrize("kind", ["hf_clip", "hf_siglip"])
def test_build_vlm_from_real_layouts_runs_forward(tower_dirs, vicuna_dirs, kind):
    from PIL import Image

    from ablate.model.build import build_vlm
    from ablate.recipe.schema import ModelSection

    section = ModelSection(
        encoder={"type": kind, "name_or_path": str(tower_dirs[kind])},
        connector={"type": "mlp", "depth": 2, "activation": "gelu"},
        llm={"type": "hf_causal_lm", "name_or_path": str(vicuna_dirs["v1.5"])},
    )
    vlm = build_vlm(section, max_length=2048).eval()
    conversation = [{"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": "A red square."}]
    ids, labels = VicunaV1Template().encode(conversation, vlm.tokenizer, max_length=2048)
    pixels = vlm.image_processor(images=Image.new("RGB", (400, 400), (200, 30, 30)), return_tensors="pt").pixel_values
    with torch.no_grad():
        out = vlm(input_ids=torch.tensor([ids]), labels=torch.tensor([labels]), pixel_values=pixels)
    visual = vlm.encoder.num_tokens
    assert out.logits.shape == (1, len(ids) - 1 + visual, vlm.llm.config.vocab_size)
    assert torch.isfinite(out.loss)
