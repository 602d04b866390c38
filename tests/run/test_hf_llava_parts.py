"""hf-llava export of the other model layouts Llava expresses exactly (SigLIP, CLS kept, several
feature layers, linear connector, Mistral/Qwen2 LLMs, Vicuna's SentencePiece tokenizers), and a
named refusal for each part it cannot express. Untrained models: only the mapping is tested."""

from __future__ import annotations

import copy
import random
import shutil
from pathlib import Path

import pytest
import torch

import tiny_run
from llava_equivalence import assert_same_forward
from ablate.run.hf_llava import export_llava
from ablate.run.hf_llava.support import UnsupportedExportError, check_recipe, llava_layout
from ablate.templates import VICUNA_V1_SYSTEM

CONVERSATION = [{"from": "human", "value": "What is it?\n<image>"}, {"from": "gpt", "value": "A circle."},
                {"from": "human", "value": " Is it red?"}]


def recipe_for(root: Path, *, template: str = "vicuna_v1", aspect: str = "square", **model):
    data = tiny_run.recipe(root, [tiny_run.stage("s", template=template, image_aspect_ratio=aspect)], eval=False)
    data["model"].update(copy.deepcopy(model))
    return tiny_run.load(data)


def exported_pair(recipe, out: Path, dtype: str | None = None):
    """(ablate model, its export loaded by transformers, the export's processor)."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from ablate.model.build import build_vlm

    torch.manual_seed(0)  # fresh connector weights
    vlm = build_vlm(recipe.model).eval()
    export_llava(vlm, recipe, out, dtype=dtype)
    return vlm, LlavaForConditionalGeneration.from_pretrained(out).eval(), AutoProcessor.from_pretrained(out)


def image():
    from PIL import Image

    return Image.new("RGB", (96, 64), (30, 60, 220))


def causal_lm_folder(root: Path, model_type: str) -> Path:
    """A tiny random `model_type` causal LM with the zoo Llama's tokenizer; Qwen2's ties its
    input and output embeddings, as the small Qwen2 models do."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from ablate.zoo import build

    llama = build("tiny-llama")
    config = AutoConfig.for_model(model_type, vocab_size=AutoConfig.from_pretrained(llama).vocab_size, hidden_size=64,
                                  intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                                  tie_word_embeddings=model_type == "qwen2")
    torch.manual_seed(0)
    folder = root / model_type
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(llama / name, folder / name)
    return folder


@pytest.mark.parametrize("encoder, connector, llm_type, aspect, strategy", [
    ({"type": "hf_siglip", "name_or_path": "zoo:tiny-siglip", "feature_layer": -1}, {"type": "linear"},
     "mistral", "pad", "full"),
    ({"type": "hf_clip", "name_or_path": "zoo:tiny-clip", "feature_layer": [-3, -1], "select": "cls_patch"},
     {"type": "mlp", "depth": 2, "activation": "relu"}, "qwen2", "resize", "full"),
])
def test_exact_layouts_give_ablates_logits(tmp_path, encoder, connector, llm_type, aspect, strategy):
    llm = {"type": "hf_causal_lm", "name_or_path": str(causal_lm_folder(tmp_path, llm_type))}
    recipe = recipe_for(tmp_path, aspect=aspect, encoder=encoder, connector=connector, llm=llm)
    vlm, model, processor = exported_pair(recipe, tmp_path / "llava")
    assert model.config.vision_feature_select_strategy == strategy
    assert model.config.image_seq_length == vlm.connector.num_output_tokens
    assert_same_forward(vlm, llava_layout(recipe, vlm).template, model, processor, CONVERSATION, image(), aspect)


def test_the_dtype_option_casts_every_weight(tmp_path):
    from safetensors import safe_open

    vlm, model, _ = exported_pair(recipe_for(tmp_path), tmp_path / "llava", dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and model.config.dtype == torch.bfloat16
    with safe_open(tmp_path / "llava" / "model.safetensors", "pt") as weights:
        assert {weights.get_slice(name).get_dtype() for name in weights.keys()} == {"BF16"}
    assert vlm.dtype == torch.float32  # ablate's model is left as it was


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory):
    """Trained on Vicuna conversations, so "USER" after "</s>" has no word start, as in Llama's vocabulary."""
    from ablate.zoo.tokenizer import train_sentencepiece

    rng = random.Random(0)
    words = "what is it this a red blue circle square shape colour yes no there".split()
    turns = [" ".join(rng.sample(words, 4)) for _ in range(100)]
    corpus = [f"{VICUNA_V1_SYSTEM} USER: {rng.choice(turns)}? ASSISTANT: {rng.choice(turns)}.</s>USER: "
              f"{rng.choice(turns)}? ASSISTANT: {rng.choice(turns)}.</s>" for _ in range(300)]
    return train_sentencepiece(corpus, tmp_path_factory.mktemp("sp") / "vicuna.model")


@pytest.mark.parametrize("version", ["v1.5", "v1.3"])  # tokenizer_config "legacy": false; no "legacy" (= true)
def test_vicuna_sentencepiece_tokenizers_export(tmp_path, sentencepiece_model, version):
    """Only tokenizer.model in the LLM folder: the export's tokenizer.json keeps ablate's splitting
    (legacy and not), for the generation prompt and the plain template alike."""
    from ablate.zoo.hub_layouts import write_vicuna_like

    folder = write_vicuna_like(tmp_path / "vicuna", sentencepiece_model, version=version)
    llm = {"type": "hf_causal_lm", "name_or_path": str(folder)}
    for template in ("vicuna_v1", "plain"):
        recipe = recipe_for(tmp_path, template=template, llm=llm)
        vlm, model, processor = exported_pair(recipe, tmp_path / f"llava-{template}")
        conversation = CONVERSATION if template == "vicuna_v1" else CONVERSATION[:1]
        assert_same_forward(vlm, llava_layout(recipe, vlm).template, model, processor, conversation, image(), "square")


@pytest.mark.parametrize("connector, named", [
    ({"type": "qformer", "num_queries": 8}, "connector 'qformer'"),
    ({"type": "resampler", "num_queries": 8, "num_heads": 4}, "connector 'resampler'"),
    ({"type": "identity"}, "connector 'identity'"),
    ({"type": "mlp", "depth": 3}, "connector mlp with depth 3"),
])
def test_connectors_llava_cannot_express_are_named(tmp_path, connector, named):
    with pytest.raises(UnsupportedExportError, match=f"{named} has no exact counterpart"):
        check_recipe(recipe_for(tmp_path, connector=connector))


def _meta_vlm(recipe):
    from ablate.model.build import component_on_meta, vlm_on_meta

    model = recipe.model
    return vlm_on_meta(model, component_on_meta("encoder", model.encoder), component_on_meta("llm", model.llm))


def test_an_mlp_narrower_than_the_llm_is_named(tmp_path):
    recipe = recipe_for(tmp_path, connector={"type": "mlp", "depth": 2, "hidden_dim": 64})
    with pytest.raises(UnsupportedExportError, match=r"connector mlp with hidden_dim 64 .* LLM width \(256\)"):
        llava_layout(recipe, _meta_vlm(recipe))


def test_an_llm_outside_the_llama_family_is_named(tmp_path):
    from transformers import GPT2Config

    GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=1169).save_pretrained(tmp_path / "gpt2")
    recipe = recipe_for(tmp_path, llm={"type": "hf_causal_lm", "name_or_path": str(tmp_path / "gpt2")})
    with pytest.raises(UnsupportedExportError, match=r"llm '.*gpt2' \(model_type 'gpt2'\) has no exact counterpart"):
        llava_layout(recipe, _meta_vlm(recipe))
