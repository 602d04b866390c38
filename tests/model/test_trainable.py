"""Per-component frozen / full / LoRA state, gradients, parameter counts, LoRA merging."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ablate.components.contracts import IMAGE_TOKEN_INDEX as I  # noqa: E741
from ablate.errors import AblateError
from ablate.model.trainable import apply_trainable, merge_lora
from ablate.recipe.schema import StageTrainable

N = -100


def image_batch():
    torch.manual_seed(7)
    return {
        "input_ids": torch.tensor([[5, 6, I, 7, 8], [5, 9, 10, 0, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),
        "labels": torch.tensor([[N, N, N, 7, 8], [N, 9, 10, N, N]]),
        "pixel_values": torch.randn(1, 3, 32, 32),
    }


def backward(vlm):
    vlm.train()
    vlm.zero_grad(set_to_none=True)
    vlm(**image_batch()).loss.backward()


def grads(module):
    return {name: p.grad for name, p in module.named_parameters()}


def test_frozen_components_get_no_gradients(vlm):
    apply_trainable(vlm, StageTrainable(encoder="frozen", connector="full", llm="frozen"))
    backward(vlm)
    assert all(g is None for g in grads(vlm.encoder).values())
    assert all(g is None for g in grads(vlm.llm).values())
    assert all(g is not None and g.abs().sum() > 0 for g in grads(vlm.connector).values())
    assert not vlm.encoder.training and vlm.connector.training and vlm.llm.training


def test_full_components_get_gradients(vlm):
    apply_trainable(vlm, StageTrainable(encoder="full", connector="frozen", llm="full"))
    backward(vlm)
    assert all(g is None for g in grads(vlm.connector).values())
    assert vlm.encoder.model.encoder.layers[0].mlp.fc1.weight.grad.abs().sum() > 0
    assert vlm.llm.model.layers[0].mlp.up_proj.weight.grad.abs().sum() > 0
    assert vlm.encoder.training and not vlm.connector.training


def test_parameter_counts(vlm):
    apply_trainable(vlm, StageTrainable())  # encoder frozen, connector full, llm frozen
    counts = vlm.parameter_counts()
    connector = 8 * 16 + 16
    encoder = sum(p.numel() for p in vlm.encoder.parameters())
    llm = sum(p.numel() for p in vlm.llm.parameters())
    assert counts["connector"] == {"total": connector, "trainable": connector}
    assert counts["encoder"] == {"total": encoder, "trainable": 0}
    assert counts["llm"] == {"total": llm, "trainable": 0}
    assert counts["all"] == {"total": encoder + connector + llm, "trainable": connector}
    assert vlm.num_parameters(only_trainable=True) == connector


def lora_parameters(module):
    return {name for name, _ in module.named_parameters() if "lora_" in name}


def test_lora_trains_only_adapters(vlm):
    apply_trainable(vlm, StageTrainable(encoder="frozen", connector="full", llm={"lora": {"r": 4}}))
    trainable = {name for name, p in vlm.llm.named_parameters() if p.requires_grad}
    assert trainable and trainable == lora_parameters(vlm.llm)
    # all-linear on 2 Llama layers (hidden 16, MLP 32), lm_head excluded, r=4:
    # q,k,v,o: 4 x (4*16 + 16*4); gate, up: 2 x (4*16 + 32*4); down: 4*32 + 16*4.
    assert vlm.parameter_counts()["llm"]["trainable"] == 2 * (4 * 128 + 2 * 192 + 192)
    assert not any("lm_head.lora" in name for name in trainable)
    assert type(vlm.llm).__name__ == "LlamaForCausalLM"  # injected in place, not wrapped

    backward(vlm)
    for name, p in vlm.llm.named_parameters():
        assert (p.grad is not None) == (name in trainable), name
    assert vlm.connector.weight.grad is not None


def test_merge_lora_folds_adapters_into_weights(vlm):
    batch = image_batch()
    with torch.no_grad():
        plain = vlm(**batch).logits
    apply_trainable(vlm, StageTrainable(llm={"lora": {"r": 4, "lora_dropout": 0.0}}))
    torch.manual_seed(8)
    with torch.no_grad():
        for name, p in vlm.llm.named_parameters():
            if "lora_B" in name:  # peft starts B at zero; make the adapters matter
                p.normal_(std=0.5)
    vlm.eval()
    with torch.no_grad():
        adapted = vlm(**batch).logits
    assert not torch.allclose(adapted, plain, atol=1e-3)

    merge_lora(vlm)
    assert "llm" not in vlm.lora_tuners and not lora_parameters(vlm)
    assert type(vlm.llm.model.layers[0].self_attn.q_proj) is nn.Linear
    with torch.no_grad():
        merged = vlm(**batch).logits
    assert torch.allclose(merged, adapted, atol=1e-5)

    # A new stage can set the merged weights trainable, or add fresh adapters.
    apply_trainable(vlm, StageTrainable(llm="full"))
    assert all(p.requires_grad for p in vlm.llm.parameters())
    apply_trainable(vlm, StageTrainable(llm={"lora": {"r": 2}}))
    assert "llm" in vlm.lora_tuners and lora_parameters(vlm.llm)


def test_next_stage_merges_leftover_adapters(vlm):
    apply_trainable(vlm, StageTrainable(llm={"lora": {"r": 4}}, encoder={"lora": {"r": 2, "target_modules": ["fc1"]}}))
    assert "encoder" in vlm.lora_tuners and lora_parameters(vlm.encoder) == {
        "model.encoder.layers.0.mlp.fc1.lora_A.default.weight",
        "model.encoder.layers.0.mlp.fc1.lora_B.default.weight",
    }
    apply_trainable(vlm, StageTrainable(llm="full"))
    assert not vlm.lora_tuners and not lora_parameters(vlm)
    assert all(p.requires_grad for p in vlm.llm.parameters())


def test_bad_settings_are_clear_errors(vlm):
    with pytest.raises(AblateError, match="trainable.llm"):
        apply_trainable(vlm, {"encoder": "frozen", "connector": "full", "llm": "half"})
    with pytest.raises(AblateError, match="trainable.connector.lora"):
        apply_trainable(vlm, {"connector": {"lora": {"target_modules": ["nope"]}}})
