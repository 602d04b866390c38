"""build_vlm through the registries, and init_connector loading."""

from __future__ import annotations

import pytest
import torch
from vlm_parts import ENC_DIM, LLM_DIM, LinearConnector, TinyClipEncoder, tiny_llm, tiny_tokenizer

from ablate.components.contracts import LoadedLLM
from ablate.errors import AblateError
from ablate.model.build import build_vlm
from ablate.model.connector_weights import save_connector_weights
from ablate.recipe.schema import ModelSection
from ablate.registry import ComponentConfig, registries


class SeedConfig(ComponentConfig):
    seed: int = 0


def build_encoder(config):
    return TinyClipEncoder(seed=config.seed)


def build_connector(config, *, in_dim, out_dim, num_input_tokens):
    torch.manual_seed(config.seed)
    return LinearConnector(in_dim, out_dim, num_input_tokens)


LLM_CALLS = []


def build_llm(config, dtype=None):
    LLM_CALLS.append(dtype)
    model = tiny_llm(seed=config.seed)
    return LoadedLLM(model.to(dtype) if dtype is not None else model, tiny_tokenizer())


@pytest.fixture
def section():
    regs = registries()
    entries = [("encoder", build_encoder), ("connector", build_connector), ("llm", build_llm)]
    for kind, fn in entries:
        regs[kind].register(f"test_tiny_{kind}", SeedConfig, fn)
    LLM_CALLS.clear()

    def make(**extra):
        return ModelSection(
            encoder={"type": "test_tiny_encoder"},
            connector={"type": "test_tiny_connector", "seed": 3},
            llm={"type": "test_tiny_llm"},
            **extra,
        )

    yield make
    for kind, _ in entries:
        regs[kind].unregister(f"test_tiny_{kind}")


def test_build_assembles_components_with_matching_dims(section):
    vlm = build_vlm(section(), max_length=64)
    assert (vlm.connector.in_features, vlm.connector.out_features) == (ENC_DIM, LLM_DIM)
    assert vlm.max_length == 64
    assert vlm.tokenizer.pad_token_id == 0
    assert vlm.image_processor is vlm.encoder.image_processor
    assert vlm.component_configs["connector"].seed == 3
    assert LLM_CALLS == [None]


def test_dtype_casts_everything_and_reaches_builders_that_take_it(section):
    vlm = build_vlm(section(), dtype="bf16")
    assert {p.dtype for p in vlm.parameters()} == {torch.bfloat16}
    assert LLM_CALLS == [torch.bfloat16]
    with pytest.raises(AblateError, match="unknown dtype"):
        build_vlm(section(), dtype="fp8")


def reference_connector():
    torch.manual_seed(11)
    return LinearConnector(ENC_DIM, LLM_DIM, 16)


def test_init_connector_plain_file(section, tmp_path):
    ref = reference_connector()
    path = save_connector_weights(ref, tmp_path / "run")
    assert path.name == "connector.safetensors"
    for init in (path, tmp_path / "run"):
        vlm = build_vlm(section(init_connector=str(init)))
        assert torch.equal(vlm.connector.weight, ref.weight) and torch.equal(vlm.connector.bias, ref.bias)


def test_init_connector_llava_projector_bin(section, tmp_path):
    ref = reference_connector()
    torch.save({f"model.mm_projector.{k}": v for k, v in ref.state_dict().items()}, tmp_path / "mm_projector.bin")
    vlm = build_vlm(section(init_connector=str(tmp_path)))
    assert torch.equal(vlm.connector.weight, ref.weight)


def test_init_connector_from_latest_checkpoint_of_a_saved_model(section, tmp_path):
    from safetensors.torch import save_file

    ref = reference_connector()
    for step, seed_shift in ((5, 1.0), (10, 0.0)):
        state = {f"connector.{k}": v + seed_shift for k, v in ref.state_dict().items()}
        state["llm.lm_head.weight"] = torch.zeros(32, LLM_DIM)
        (tmp_path / f"checkpoint-{step}").mkdir()
        save_file(state, str(tmp_path / f"checkpoint-{step}" / "model.safetensors"))
    vlm = build_vlm(section(init_connector=str(tmp_path)))
    assert torch.equal(vlm.connector.weight, ref.weight)  # checkpoint-10, connector keys only


def test_init_connector_errors(section, tmp_path):
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(LLM_DIM, 4), "bias": torch.zeros(LLM_DIM)}, str(tmp_path / "c.safetensors"))
    with pytest.raises(AblateError, match=r"weight: file has shape \[16, 4\], connector expects \[16, 8\]"):
        build_vlm(section(init_connector=str(tmp_path / "c.safetensors")))
    save_file({"proj.weight": torch.zeros(LLM_DIM, ENC_DIM)}, str(tmp_path / "d.safetensors"))
    with pytest.raises(AblateError, match="missing weight") as err:
        build_vlm(section(init_connector=str(tmp_path / "d.safetensors")))
    assert "unexpected proj.weight" in str(err.value)
    with pytest.raises(AblateError, match="does not exist"):
        build_vlm(section(init_connector=str(tmp_path / "nowhere")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AblateError, match="no connector weights"):
        build_vlm(section(init_connector=str(tmp_path / "empty")))


def test_connector_file_problem_reads_shapes_only_and_names_each_misfit(tmp_path):
    from safetensors.torch import save_file

    from ablate.model.connector_weights import connector_file_problem

    with torch.device("meta"):  # the connector a check builds: no memory, nothing to load into
        connector = LinearConnector(ENC_DIM, LLM_DIM, 4)
    save_file({"weight": torch.zeros(LLM_DIM, ENC_DIM), "bias": torch.zeros(LLM_DIM)}, str(tmp_path / "ok.safetensors"))
    torch.save({"model.mm_projector.weight": torch.zeros(2 * LLM_DIM, ENC_DIM),
                "model.mm_projector.bias": torch.zeros(2 * LLM_DIM)}, tmp_path / "mm_projector.bin")
    assert connector_file_problem(connector, tmp_path / "ok.safetensors") is None
    problem = connector_file_problem(connector, tmp_path)
    assert "weight: file has shape [32, 8], connector expects [16, 8]" in problem
    assert "bias: file has shape [32], connector expects [16]" in problem
    assert "does not exist" in connector_file_problem(connector, tmp_path / "nowhere.bin")


def test_builders_without_meta_cannot_be_built_on_the_meta_device(section):
    from ablate.model.build import component_on_meta

    assert component_on_meta("encoder", section().encoder) is None
