"""ablate.testing: each check passes on a good connector and catches the fault it is for."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ablate.registry import ComponentConfig, Registry
from ablate.testing import assert_connector_conforms, check_connector

ALL_CHECKS = [
    "build", "shape/dtype float32", "gradients", "determinism", "batch independence", "state dict",
    "dtype bfloat16",
]


class Good(nn.Module):
    """A correct connector: mean-pool token pairs, then project."""

    def __init__(self, in_dim, out_dim, num_input_tokens):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)
        self.num_output_tokens = num_input_tokens // 2

    def forward(self, x):
        pairs = x.to(self.proj.weight.dtype).unflatten(1, (-1, 2)).mean(2)
        return self.proj(pairs).to(x.dtype)


class WrongTokenCount(Good):
    def forward(self, x):
        return super().forward(x)[:, :-1]  # one token short of num_output_tokens


class Detached(Good):
    def forward(self, x):
        return super().forward(x.detach())


class UnusedParameter(Good):
    def __init__(self, *args):
        super().__init__(*args)
        self.forgotten = nn.Linear(3, 3)


class AlwaysFloat32(Good):
    def forward(self, x):
        return self.proj(x.to(self.proj.weight.dtype).unflatten(1, (-1, 2)).mean(2)).float()


class DropoutInEval(Good):
    def forward(self, x):
        return nn.functional.dropout(super().forward(x), p=0.5, training=True)


class MixesBatch(Good):
    def forward(self, x):
        out = super().forward(x)
        return out + out.mean(0, keepdim=True)


class StateOutsideStateDict(Good):
    def __init__(self, *args):
        super().__init__(*args)
        self.offset = torch.randn(1)  # a plain attribute: not saved, differs between builds

    def forward(self, x):
        return super().forward(x) + self.offset.to(x.dtype)


class NoTokenAttribute(Good):
    def __init__(self, *args):
        super().__init__(*args)
        del self.num_output_tokens


def entry_for(module_cls, name="under_test"):
    registry = Registry("connector")

    def build(config, in_dim, out_dim, num_input_tokens):
        return module_cls(in_dim, out_dim, num_input_tokens)

    registry.register(name, ComponentConfig, build)
    return registry.get(name)


def test_good_connector_passes_every_check():
    report = check_connector(entry_for(Good), in_dim=8, out_dim=6, num_input_tokens=10, batch=3)
    assert report.ok and report.failures == []
    assert report.passed == ALL_CHECKS
    assert report.num_output_tokens == 5
    assert report.num_parameters == report.num_trainable == 8 * 6 + 6
    assert "conforms (7 checks" in str(report)
    assert assert_connector_conforms(entry_for(Good)).ok


def test_wrong_token_count_fails_with_clear_message():
    report = check_connector(entry_for(WrongTokenCount))
    assert not report.ok
    assert report.failures[0] == (
        "shape/dtype float32: output shape (2, 7, 48) != (2, 8, 48) [batch, num_output_tokens, out_dim]"
    )
    assert "dtype bfloat16" in " ".join(report.failures)  # the bf16 pass sees the same fault
    with pytest.raises(AssertionError, match=r"connector 'under_test'.*checks failed") as info:
        assert_connector_conforms(entry_for(WrongTokenCount))
    assert "output shape (2, 7, 48) != (2, 8, 48)" in str(info.value)


@pytest.mark.parametrize(
    "module_cls, check, message",
    [
        (Detached, "gradients", "no gradient reaches the input features"),
        (UnusedParameter, "gradients", "no gradient reaches 2 trainable parameter(s): forgotten.weight, forgotten.bias"),
        (AlwaysFloat32, "dtype bfloat16", "output dtype torch.float32 != input dtype torch.bfloat16"),
        # Randomness also breaks the comparisons that come after it.
        (DropoutInEval, "determinism, batch independence, state dict", "two eval-mode forwards of the same input differ"),
        (MixesBatch, "batch independence", "output changes when other items share its batch"),
        (StateOutsideStateDict, "state dict", "fresh build with the saved state dict gives different outputs"),
        (NoTokenAttribute, "num_output_tokens", "must be a positive int attribute, got None"),
    ],
)
def test_each_fault_is_caught_by_its_check(module_cls, check, message):
    report = check_connector(entry_for(module_cls))
    assert [f.split(":")[0] for f in report.failures] == check.split(", ")
    assert message in report.failures[0]
    assert not set(check.split(", ")) & set(report.passed)


def test_builder_that_raises_is_reported():
    registry = Registry("connector")

    def build(config, in_dim, out_dim, num_input_tokens):
        raise ValueError("no such width")

    registry.register("raises", ComponentConfig, build)
    report = check_connector(registry.get("raises"))
    assert report.failures == ["build: raised ValueError: no such width"] and report.passed == []


def test_lookup_by_name_uses_the_registries():
    report = check_connector("linear", in_dim=4, out_dim=4, num_input_tokens=3, batch=1)
    assert report.ok and report.num_output_tokens == 3
    assert "batch independence" not in report.passed  # needs batch > 1
