"""Plugin encoders and LLMs that break their contracts are named where it shows, and plugin model
blocks that lack the built-ins' fields (name_or_path, dtype, cache_key) still plan, run and export."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from vlm_parts import ENC_DIM, LLM_DIM, LinearConnector, TinyClipEncoder, tiny_llm, tiny_tokenizer

from ablate.components.contracts import LoadedLLM, encoder_problem, llm_problem
from ablate.errors import AblateError, PluginError
from ablate.registry import ComponentConfig, registries


class SeedConfig(ComponentConfig):
    seed: int = 0


class FaultyEncoder(TinyClipEncoder):
    """The tiny CLIP tower returning one kind of wrong output."""

    def __init__(self, fault: str):
        super().__init__()
        self.fault = fault

    def forward(self, pixel_values):
        features = super().forward(pixel_values)
        return {"tuple": lambda: (features,), "width": lambda: features[..., :-1],
                "tokens": lambda: features[:, 1:], "int": lambda: features.long(),
                "device": lambda: features.to("meta")}[self.fault]()


@pytest.fixture
def plugin_entries():
    """Entries registered as a plugin's (so errors name it); removed afterwards."""
    added = []

    def register(kind: str, name: str, builder, config=SeedConfig):
        registries()[kind].register(name, config, builder, plugin="ablate-plug")
        added.append((kind, name))
        return registries()[kind].get(name)

    yield register
    for kind, name in added:
        registries()[kind].unregister(name)


@pytest.mark.parametrize("fault, what", [
    ("tuple", "returned a tuple, not a tensor"),
    ("width", "returned features of shape [2, 16, 7], not [images, num_tokens, feature_dim] = [2, 16, 8]"),
    ("tokens", "returned features of shape [2, 15, 8]"),
    ("int", "returned torch.int64 features, not floating point"),
    ("device", "returned features on meta, not on the device of its input (cpu)"),
])
def test_encoder_output_breaking_the_contract_is_named_before_the_connector(plugin_entries, fault, what):
    from ablate.model.vlm import VisionLanguageModel

    entry = plugin_entries("encoder", "faulty_tower", lambda config: FaultyEncoder(fault))
    encoder = entry.build({})
    vlm = VisionLanguageModel(encoder, LinearConnector(ENC_DIM, LLM_DIM, 16), tiny_llm(), tokenizer=tiny_tokenizer(),
                              component_configs={"encoder": entry.make_config({})})
    with pytest.raises(AblateError) as info:
        vlm.encode_images(torch.zeros(2, 3, 32, 32))
    assert str(info.value).startswith("encoder 'faulty_tower' (plugin ablate-plug) "), str(info.value)
    assert what in str(info.value)


def test_encoder_without_cache_key_builds_and_the_run_says_it_is_not_cached(plugin_entries):
    from ablate.run.runner import _uncached_notes

    def build(config):
        encoder = TinyClipEncoder()
        del encoder.cache_key
        return encoder

    encoder = plugin_entries("encoder", "keyless_tower", build).build({})
    assert encoder_problem(encoder) is None
    vlm = SimpleNamespace(encoder=encoder, component_label=lambda name: "encoder 'keyless_tower' (plugin ablate-plug)")
    stage = SimpleNamespace(trainable=SimpleNamespace(encoder="frozen"))
    recipe = SimpleNamespace(stages=[stage], data=SimpleNamespace(feature_cache=True))
    assert _uncached_notes(recipe, vlm) == [("feature cache: off, encoder 'keyless_tower' (plugin ablate-plug) has no "
                                             "cache_key (what its features depend on), so every batch runs the encoder")]
    recipe.data.feature_cache = False
    assert _uncached_notes(recipe, vlm) == []


def test_llm_without_a_tokenizer_is_named_when_the_model_is_built(plugin_entries):
    from ablate.model.build import build_vlm

    plugin_entries("encoder", "plug_tower", lambda config: TinyClipEncoder())
    plugin_entries("connector", "plug_linear", lambda config, in_dim, out_dim, num_input_tokens:
                   LinearConnector(in_dim, out_dim, num_input_tokens))
    plugin_entries("llm", "plug_lm", lambda config: LoadedLLM(tiny_llm(), None))
    section = SimpleNamespace(encoder={"type": "plug_tower"}, connector={"type": "plug_linear"}, llm={"type": "plug_lm"})
    with pytest.raises(PluginError, match=r"model\.llm: llm 'plug_lm' \(plugin ablate-plug\): it gave no tokenizer"):
        build_vlm(section)


def test_llm_that_is_not_a_transformers_model_breaks_the_contract():
    class BareLM(nn.Module):
        def get_input_embeddings(self):
            return nn.Embedding(4, 4)

    assert "not a transformers causal LM (no generate, config)" in llm_problem(LoadedLLM(BareLM(), None))
    assert llm_problem(LoadedLLM(tiny_llm(), None)) is None


class ScratchLMConfig(ComponentConfig):
    layers: int = 2  # no name_or_path, no dtype: the LLM is built from these fields


def test_plugin_model_blocks_without_checkpoint_fields_are_named_by_type():
    from ablate.plan.estimate import _model_line, load_tokenizer_if_present
    from ablate.run.hf_llava.export import _checked_dtype
    from ablate.run.hf_llava.support import UnsupportedExportError, llava_layout

    llm = ScratchLMConfig(type="scratch_lm")
    model = SimpleNamespace(encoder=SimpleNamespace(type="hf_clip", name_or_path="zoo:tiny-clip"),
                            connector=SimpleNamespace(type="linear", depth=1), llm=llm)
    shapes = SimpleNamespace(encoder_positions=16, visual_tokens=16)
    assert _model_line(SimpleNamespace(model=model), shapes) == (
        "zoo:tiny-clip (16 positions per image) -> linear -> scratch_lm: 16 visual tokens per image")
    assert load_tokenizer_if_present(llm)[0] is None
    recipe = SimpleNamespace(model=model)
    assert _checked_dtype(None, recipe) == "float32"
    gpt2 = SimpleNamespace(llm=SimpleNamespace(config=SimpleNamespace(model_type="gpt2"), dtype=torch.bfloat16))
    assert _checked_dtype(None, recipe, gpt2) == "bfloat16"
    with pytest.raises(UnsupportedExportError, match=r"llm 'scratch_lm' \(model_type 'gpt2'\) has no exact"), \
            pytest.MonkeyPatch.context() as patch:
        patch.setattr("ablate.run.hf_llava.support.check_recipe", lambda recipe: None)
        llava_layout(recipe, gpt2)


def test_lora_all_linear_on_an_encoder_without_linear_layers_names_its_layers():
    from ablate.model.trainable import TrainableError, apply_trainable
    from ablate.model.vlm import VisionLanguageModel

    class ConvTower(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv2d(3, ENC_DIM, 8, stride=8)
            self.num_tokens, self.feature_dim, self.image_size, self.image_processor = 16, ENC_DIM, 32, None

        def forward(self, pixel_values):
            return self.proj(pixel_values).flatten(2).transpose(1, 2)

    vlm = VisionLanguageModel(ConvTower(), LinearConnector(ENC_DIM, LLM_DIM, 16), tiny_llm(), tokenizer=tiny_tokenizer())
    trainable = {"encoder": {"lora": {"r": 2}}, "connector": "full", "llm": "frozen"}
    with pytest.raises(TrainableError, match=r"ConvTower has no Linear layer for target_modules all-linear; list the "
                                             r"layers to adapt in target_modules such as proj, or train it full"):
        apply_trainable(vlm, trainable)
    apply_trainable(vlm, {**trainable, "encoder": {"lora": {"r": 2, "target_modules": ["proj"]}}})
    assert vlm.parameter_counts()["encoder"]["trainable"] > 0
