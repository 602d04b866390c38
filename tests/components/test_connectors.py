"""Built-in connectors: exact structure where a reference exists (LLaVA, BLIP-2), contract for all."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from ablate.components.connectors import configs
from ablate.errors import AblateError
from ablate.registry import registries
from ablate.testing import assert_connector_conforms

BUILTINS = ("identity", "linear", "mlp", "qformer", "resampler")


def build(name, config=None, in_dim=32, out_dim=48, num_input_tokens=16):
    return registries().connector.get(name).build(
        config, in_dim=in_dim, out_dim=out_dim, num_input_tokens=num_input_tokens
    )


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_builtins_are_registered():
    assert set(BUILTINS) <= set(registries().connector.names())


@pytest.mark.parametrize(
    "name, config, kwargs",
    [
        ("identity", None, {"out_dim": 32}),
        ("linear", None, {}),
        ("mlp", None, {}),
        ("mlp", {"depth": 3, "activation": "silu", "hidden_dim": 20}, {}),
        ("qformer", {"num_queries": 6, "hidden_size": 32, "num_layers": 3, "cross_attention_frequency": 2}, {}),
        ("resampler", {"num_queries": 5, "num_heads": 4}, {}),
        ("resampler", {"num_queries": 5, "num_heads": 2, "hidden_size": 24, "depth": 1}, {}),
    ],
)
def test_builtin_conforms(name, config, kwargs):
    report = assert_connector_conforms(name, config, **kwargs)
    assert report.num_trainable == report.num_parameters


def test_mlp_default_is_llava15_mlp2x_gelu():
    module = build("mlp", in_dim=32, out_dim=48)
    reference = nn.Sequential(nn.Linear(32, 48), nn.GELU(), nn.Linear(48, 48))
    assert [type(m) for m in module] == [nn.Linear, nn.GELU, nn.Linear]
    assert module[1].approximate == "none"  # exact erf GELU, as torch's nn.GELU() in LLaVA
    assert {k: v.shape for k, v in module.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }
    assert n_params(module) == n_params(reference) == 32 * 48 + 48 + 48 * 48 + 48
    module.load_state_dict(reference.state_dict())  # LLaVA mm_projector keys load as-is
    x = torch.randn(2, 16, 32)
    torch.testing.assert_close(module(x), reference(x), rtol=0, atol=0)
    assert module.num_output_tokens == 16


def test_mlp_depth_activation_and_hidden_dim():
    module = build("mlp", {"depth": 3, "activation": "relu", "hidden_dim": 64}, in_dim=32, out_dim=48)
    assert [type(m) for m in module] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert [(m.in_features, m.out_features) for m in module if isinstance(m, nn.Linear)] == [
        (32, 64), (64, 64), (64, 48)
    ]
    single = build("mlp", {"depth": 1})
    assert [type(m) for m in single] == [nn.Linear] and n_params(single) == 32 * 48 + 48


def test_mlp_rejects_hidden_dim_with_depth_1_and_unknown_activation():
    entry = registries().connector.get("mlp")
    with pytest.raises(ValidationError, match="hidden_dim has no effect with depth 1"):
        entry.make_config({"depth": 1, "hidden_dim": 8})
    with pytest.raises(ValidationError, match="activation"):
        entry.make_config({"activation": "swish"})
    with pytest.raises(ValidationError, match="depth"):
        entry.make_config({"depth": 0})


def test_linear_is_llava_v1_projector():
    module = build("linear", in_dim=32, out_dim=48)
    assert isinstance(module, nn.Linear) and set(module.state_dict()) == {"weight", "bias"}
    assert n_params(module) == 32 * 48 + 48
    x = torch.randn(2, 16, 32)
    torch.testing.assert_close(module(x), x @ module.weight.T + module.bias)


def test_identity_passes_features_and_rejects_width_mismatch():
    module = build("identity", in_dim=32, out_dim=32)
    x = torch.randn(2, 16, 32)
    assert module(x) is x and module.num_output_tokens == 16 and n_params(module) == 0
    with pytest.raises(AblateError, match=r"encoder gives 32 and the LLM expects 48"):
        build("identity", in_dim=32, out_dim=48)


def test_qformer_is_transformers_blip2_qformer():
    from transformers import Blip2QFormerConfig, Blip2QFormerModel

    config = {"num_queries": 7, "num_layers": 3, "hidden_size": 64, "num_heads": 4, "cross_attention_frequency": 2}
    module = build("qformer", config, in_dim=40, out_dim=48, num_input_tokens=16)
    assert isinstance(module.qformer, Blip2QFormerModel)
    qconfig = module.qformer.config
    assert (qconfig.encoder_hidden_size, qconfig.hidden_size, qconfig.num_hidden_layers) == (40, 64, 3)
    assert (qconfig.num_attention_heads, qconfig.intermediate_size) == (4, 256)
    # BLIP-2 puts cross-attention in layers whose index is a multiple of the frequency.
    assert [layer.has_cross_attention for layer in module.qformer.encoder.layer] == [True, False, True]
    reference = Blip2QFormerModel(Blip2QFormerConfig(
        hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=256,
        cross_attention_frequency=2, encoder_hidden_size=40,
    ))
    assert n_params(module) == n_params(reference) + 7 * 64 + (64 * 48 + 48)
    assert module.query_tokens.shape == (1, 7, 64)
    # The token count is num_queries whatever the number of input features.
    for n in (1, 16, 50):
        assert module(torch.randn(2, n, 40)).shape == (2, 7, 48)
    assert module.num_output_tokens == 7


def test_qformer_rejects_heads_not_dividing_width():
    with pytest.raises(ValidationError, match=r"num_heads \(3\) must divide hidden_size \(64\)"):
        registries().connector.get("qformer").make_config({"hidden_size": 64, "num_heads": 3})


def test_resampler_structure():
    module = build("resampler", {"num_queries": 9, "depth": 3, "num_heads": 4}, in_dim=32, out_dim=48)
    assert isinstance(module.input_projection, nn.Identity)  # Flamingo: latents at the encoder width
    assert len(module.layers) == 3
    assert all(isinstance(layer.attention, nn.MultiheadAttention) for layer in module.layers)
    assert module.latents.shape == (9, 32) and module.num_output_tokens == 9
    for n in (1, 16, 40):
        assert module(torch.randn(2, n, 32)).shape == (2, 9, 48)
    wide = build("resampler", {"num_heads": 4, "hidden_size": 64}, in_dim=32, out_dim=48)
    assert isinstance(wide.input_projection, nn.Linear) and wide.input_projection.out_features == 64


def test_resampler_heads_must_divide_encoder_width():
    with pytest.raises(AblateError, match=r"num_heads \(5\) must divide the latent width \(32, the encoder width\)"):
        build("resampler", {"num_heads": 5}, in_dim=32)


@pytest.mark.parametrize("name", BUILTINS)
def test_bad_sizes_name_the_connector(name):
    with pytest.raises(AblateError, match=rf"connector '{name}': num_input_tokens must be a positive int"):
        build(name, in_dim=32, out_dim=32, num_input_tokens=0)


@pytest.mark.parametrize("name", ["linear", "mlp", "qformer", "resampler"])
def test_bf16_features_into_fp32_connector_keep_bf16(name):
    module = build(name, {"num_queries": 4, "hidden_size": 32} if name == "qformer" else None)
    out = module(torch.randn(2, 16, 32, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.shape[-1] == 48


def test_every_config_field_is_described():
    for model in (configs.MLPConfig, configs.QFormerConfig, configs.ResamplerConfig):
        undocumented = [n for n, f in model.model_fields.items() if n != "type" and not f.description]
        assert not undocumented, f"{model.__name__}: {undocumented}"
    assert all(e.description for e in registries().connector if e.name in BUILTINS)


def test_importing_connectors_does_not_import_torch():
    code = "import sys, ablate.components.connectors; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
