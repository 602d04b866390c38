"""The chunked and fused loss paths: the plain loss and gradients, without full-vocabulary logits."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from torch.nn import functional as F

from ablate.errors import AblateError
from ablate.model import loss as loss_module
from ablate.model.loss import resolve_loss_mode

from test_packing import batch, scored_tokens


@pytest.fixture
def trainable_vlm(vlm):
    from ablate.model.trainable import apply_trainable

    apply_trainable(vlm, {"encoder": "frozen", "connector": "full", "llm": "full"})
    vlm.max_length = 40
    return vlm.train()


def loss_and_grads(vlm, mode: str, packed: bool = False, counted: bool = True):
    vlm.loss_mode, vlm.packing = mode, packed
    vlm.zero_grad(set_to_none=True)
    inputs = batch()
    kwargs = {"num_items_in_batch": scored_tokens(vlm, inputs)} if counted else {}
    out = vlm(**inputs, **kwargs)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in vlm.named_parameters() if p.grad is not None}


def assert_same(vlm, mode: str, tolerance: float, **options):
    plain, plain_grads = loss_and_grads(vlm, "plain", **{**options, "packed": False})
    other, grads = loss_and_grads(vlm, mode, **options)
    assert other.logits is None and plain.logits is not None
    assert abs(float(other.loss.detach()) - float(plain.loss.detach())) <= tolerance
    assert grads.keys() == plain_grads.keys()
    assert max(float((grads[k] - plain_grads[k]).abs().max()) for k in grads) <= tolerance


@pytest.mark.parametrize("counted", [True, False])
def test_chunked_loss_equals_the_plain_one(trainable_vlm, monkeypatch, counted):
    """Chunks of 3 rows (vocabulary 32): the 37 scored positions take 13 chunks."""
    monkeypatch.setattr(loss_module, "CHUNK_LOGITS", 3 * 32)
    head_rows = []
    trainable_vlm.llm.lm_head.register_forward_hook(lambda module, args, out: head_rows.append(out.shape[:-1].numel()))
    assert_same(trainable_vlm, "chunked", 1e-6, counted=counted)
    chunked_rows = head_rows[1:]  # after the plain forward's one call on every position
    assert head_rows[0] == 5 * 40
    # forward, then each chunk again in the backward: never more than 3 rows of logits at once
    assert max(chunked_rows) == 3 and sum(chunked_rows) == 2 * 37


def test_chunked_loss_on_packed_rows(trainable_vlm):
    assert_same(trainable_vlm, "chunked", 1e-5, packed=True)


def test_fused_path_calls_liger_with_the_scored_rows_and_the_head_weight(trainable_vlm, monkeypatch):
    """A stand-in for liger's function (its kernels need CUDA): the rows it gets and what it returns."""
    calls = []

    def fused(rows, weight, targets, bias=None, *, ignore_index, reduction):
        calls.append((rows.shape, weight is trainable_vlm.llm.lm_head.weight, ignore_index, reduction))
        return F.cross_entropy(rows @ weight.T, targets, reduction=reduction)

    functional = types.ModuleType("liger_kernel.transformers.functional")
    functional.liger_fused_linear_cross_entropy = fused
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers.functional", functional)
    assert_same(trainable_vlm, "fused", 1e-6)
    assert calls == [(torch.Size([37, 16]), True, -100, "sum")]


def test_auto_takes_the_best_path_the_machine_and_llm_allow(trainable_vlm, monkeypatch):
    llm = trainable_vlm.llm
    where = "stages.s.loss"
    assert resolve_loss_mode("auto", llm, cuda=False, partitioned=False, where=where) == "chunked"
    monkeypatch.setattr(loss_module, "liger_installed", lambda: True)
    assert resolve_loss_mode("auto", llm, cuda=True, partitioned=False, where=where) == "fused"
    assert resolve_loss_mode("auto", llm, cuda=True, partitioned=True, where=where) == "plain"
    assert resolve_loss_mode("plain", llm, cuda=True, partitioned=False, where=where) == "plain"
    monkeypatch.setattr(llm.config, "model_type", "cohere")  # scales its logits
    assert resolve_loss_mode("auto", llm, cuda=True, partitioned=False, where=where) == "plain"


def test_an_explicit_loss_that_cannot_run_names_the_field(trainable_vlm, monkeypatch):
    llm = trainable_vlm.llm
    monkeypatch.setattr(loss_module, "liger_installed", lambda: False)
    with pytest.raises(AblateError, match=r"stages\.s\.loss: loss 'fused' needs a CUDA GPU, liger-kernel"):
        resolve_loss_mode("fused", llm, cuda=True, partitioned=False, where="stages.s.loss")
    with pytest.raises(AblateError, match=r"stages\.s\.loss: loss 'chunked' cannot read a head weight that DeepSpeed"):
        resolve_loss_mode("chunked", llm, cuda=False, partitioned=True, where="stages.s.loss")
    monkeypatch.setattr(llm.config, "model_type", "gemma2")
    with pytest.raises(AblateError, match="this one is 'gemma2'; use loss: plain"):
        resolve_loss_mode("chunked", llm, cuda=False, partitioned=False, where="stages.s.loss")


def test_the_plan_counts_full_logits_only_where_the_loss_computes_them(trainable_vlm, monkeypatch):
    from ablate.model.loss import materialises_logits

    llm = trainable_vlm.llm
    where = "stages.s.loss"
    assert materialises_logits("plain", llm, partitioned=False, where=where)
    assert not materialises_logits("auto", llm, partitioned=False, where=where)
    assert not materialises_logits("fused", llm, partitioned=False, where=where)  # Liger is the GPU machine's
    assert materialises_logits("auto", llm, partitioned=True, where=where)  # ZeRO-3: auto falls back to plain
    with pytest.raises(AblateError, match=r"stages\.s\.loss: loss 'chunked' cannot read a head weight"):
        materialises_logits("chunked", llm, partitioned=True, where=where)
    monkeypatch.setattr(llm.config, "model_type", "gemma2")
    assert materialises_logits("auto", llm, partitioned=False, where=where)
