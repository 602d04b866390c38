"""Encoders and LLMs built on the meta device from a checkpoint's config.json alone: the shapes a
study's check needs, without reading weights (folders in the real hubs' layouts, or zoo specs)."""

from __future__ import annotations

import random

import pytest

from ablate.components.checkpoints import checkpoint_config
from ablate.errors import AblateError, MissingCheckpointError
from ablate.registry import registries
from ablate.zoo import is_built
from ablate.zoo.hub_layouts import TINY_TOWER, TINY_VICUNA, write_clip_l336_like, write_siglip_so400m_like
from ablate.zoo.hub_layouts import write_vicuna_like
from ablate.zoo.tokenizer import train_sentencepiece


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("meta")
    rng = random.Random(0)
    corpus = [" ".join(rng.choice("a red blue circle square is".split()) for _ in range(6)) for _ in range(200)]
    model = train_sentencepiece(corpus, root / "tokenizer.model", vocab_size=400)
    return {"hf_clip": write_clip_l336_like(root / "clip"), "hf_siglip": write_siglip_so400m_like(root / "siglip"),
            "vicuna": write_vicuna_like(root / "vicuna", model, version="v1.3", shards=1)}


@pytest.mark.parametrize("kind, tokens", [("hf_clip", 24 * 24), ("hf_siglip", 27 * 27)])
def test_vision_towers_on_meta_have_the_checkpoints_shapes(folders, kind, tokens):
    encoder = registries().encoder.get(kind).build({"name_or_path": str(folders[kind])}, meta=True)
    assert (encoder.feature_dim, encoder.num_tokens) == (TINY_TOWER["hidden_size"], tokens)
    assert {p.device.type for p in encoder.parameters()} == {"meta"}
    assert encoder.image_processor is None


def test_feature_layer_out_of_range_is_named_on_meta_too(folders):
    with pytest.raises(AblateError, match="feature_layer 5 is out of range"):
        registries().encoder.get("hf_clip").build({"name_or_path": str(folders["hf_clip"]), "feature_layer": 5},
                                                  meta=True)


def test_llm_on_meta_has_the_checkpoints_width_and_no_tokenizer(folders):
    loaded = registries().llm.get("hf_causal_lm").build({"name_or_path": str(folders["vicuna"])}, meta=True)
    assert loaded.model.get_input_embeddings().embedding_dim == TINY_VICUNA["hidden_size"]
    assert {p.device.type for p in loaded.model.parameters()} == {"meta"} and loaded.tokenizer is None


def test_an_unbuilt_zoo_entry_gives_its_spec_config_without_building(tmp_path, monkeypatch):
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path))  # a zoo where nothing is built
    config = checkpoint_config("encoder", "zoo:tiny-clip")
    assert (config.hidden_size, config.image_size, config.patch_size) == (128, 64, 8)
    assert not is_built("tiny-clip")


def test_a_checkpoint_that_is_nowhere_here_is_named(tmp_path):
    with pytest.raises(MissingCheckpointError, match="its config.json is not in the local Hugging Face cache"):
        checkpoint_config("llm", "lmsys/no-such-model")
    with pytest.raises(MissingCheckpointError, match="there is no folder"):
        checkpoint_config("llm", str(tmp_path / "absent"))
    with pytest.raises(MissingCheckpointError, match="unknown zoo model"):
        checkpoint_config("encoder", "zoo:tiny-clipp")


def test_an_encoder_on_meta_has_the_dtype_a_run_loads_it_in(folders):
    import torch

    config = {"name_or_path": str(folders["hf_clip"]), "dtype": "bfloat16"}
    encoder = registries().encoder.get("hf_clip").build(config, meta=True)
    assert {p.dtype for p in encoder.parameters()} == {torch.bfloat16}


def test_an_unbuilt_zoo_llama_has_the_vocabulary_its_build_will_have(tmp_path, monkeypatch):
    from transformers import AutoConfig

    from ablate.zoo import build

    monkeypatch.setenv("ABLATE_HOME", str(tmp_path))
    before = checkpoint_config("llm", "zoo:tiny-llama")
    built = AutoConfig.from_pretrained(build("tiny-llama"))
    assert before.vocab_size == built.vocab_size < 1536  # the trained tokenizer's, not its target size
