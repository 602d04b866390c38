"""Stage options the README promises, checked on the Trainer a stage really builds."""

from __future__ import annotations

import pytest
import torch

import tiny_run
from stage_parts import stage_parts
from test_seeded_losses import ALIGN_LOSSES

FULL = {"encoder": "frozen", "connector": "full", "llm": "full"}


def test_connector_lr_gives_the_connector_its_own_param_group(tmp_path):
    parts = stage_parts(tmp_path, tiny_run.stage("s", trainable=FULL, lr=1e-3, connector_lr=5e-3, weight_decay=0.1))
    optimizer = parts.trainer(tmp_path / "w").create_optimizer()
    named = {id(p): n for n, p in parts.vlm.named_parameters()}
    by_lr: dict[float, set[str]] = {}
    for group in optimizer.param_groups:
        by_lr.setdefault(group["lr"], set()).update(named[id(p)] for p in group["params"])
    trainable = {n for n, p in parts.vlm.named_parameters() if p.requires_grad}
    assert set(by_lr) == {5e-3, 1e-3}
    assert by_lr[5e-3] == {n for n in trainable if n.startswith("connector.")} == {
        "connector.0.weight", "connector.0.bias", "connector.2.weight", "connector.2.bias"}
    assert by_lr[1e-3] == {n for n in trainable if n.startswith("llm.")} and by_lr[1e-3]
    # weight decay still skips biases and norms, in both lr groups
    decayed = {named[id(p)] for g in optimizer.param_groups if g["weight_decay"] == 0.1 for p in g["params"]}
    assert "connector.0.weight" in decayed and "connector.0.bias" not in decayed
    assert not any(n.endswith("norm.weight") or n.endswith(".bias") for n in decayed)


def test_without_connector_lr_every_group_uses_lr(tmp_path):
    parts = stage_parts(tmp_path, tiny_run.stage("s", trainable=FULL, lr=1e-3))
    optimizer = parts.trainer(tmp_path / "w").create_optimizer()
    assert {g["lr"] for g in optimizer.param_groups} == {1e-3}


def _sampled_lengths(parts, workdir) -> list[int]:
    """The length column of every sample, in the order the stage's Trainer would train on them."""
    lengths = parts.dataset["length"]
    return [lengths[i] for i in parts.trainer(workdir).get_train_dataloader().batch_sampler.sampler]


def test_group_by_length_batches_similar_lengths(tmp_path):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    stage = tiny_run.stage("s", tiny_run.easy_vqa("qa", images=4), template="vicuna_v1", batch_size=4)
    grouped = stage_parts(tmp_path, {**stage, "group_by_length": True})
    lengths = grouped.dataset["length"]  # LLaVA's estimate: the words of the turns, + 128 for the image
    assert len(lengths) == 38 and sorted(set(lengths)) == [143, 144, 145, 146, 147, 148]
    assert isinstance(grouped.trainer(tmp_path / "w").get_train_dataloader().batch_sampler.sampler, LengthGroupedSampler)
    # Its "megabatches" of min(38 // (4 * 4), 50) = 2 batches are sorted longest first, so each
    # batch holds neighbours in length; the longest sample of all is swapped to the very front
    # (to fail early on memory), so a megabatch is sorted after its first element.
    grouped_order = _sampled_lengths(grouped, tmp_path / "w")
    megabatches = [grouped_order[i:i + 8] for i in range(0, 38, 8)]
    assert all(m[1:] == sorted(m[1:], reverse=True) for m in megabatches) and grouped_order[0] == max(lengths)
    assert sorted(grouped_order) == sorted(lengths)
    shuffled = _sampled_lengths(stage_parts(tmp_path / "plain", stage), tmp_path / "w2")
    assert sorted(shuffled) == sorted(lengths)
    assert not all(m[1:] == sorted(m[1:], reverse=True) for m in (shuffled[i:i + 8] for i in range(0, 38, 8)))


def test_gradient_checkpointing_recomputes_the_llm_layers_and_keeps_the_losses(tmp_path):
    parts = stage_parts(tmp_path, tiny_run.stage("align", gradient_checkpointing=True))
    # transformers checkpoints a decoder layer's `forward`, so what runs inside it runs again in
    # backward (torch recomputes without module hooks: count the calls themselves)
    mlp, calls = parts.vlm.llm.model.layers[0].mlp, []
    forward = mlp.forward
    mlp.forward = lambda *args, **kwargs: calls.append(1) or forward(*args, **kwargs)
    result = parts.train(tmp_path / "w")
    assert parts.vlm.llm.is_activation_checkpointing
    assert len(calls) == 2 * 3  # 3 steps, each a forward and its recomputation (without checkpointing: 3)
    assert result.metrics["final_loss"] == pytest.approx(ALIGN_LOSSES[-1], abs=1e-4)
    assert result.metrics["mean_loss"] == pytest.approx(sum(ALIGN_LOSSES) / 3, abs=1e-4)


@pytest.fixture
def built_zoo():
    """The tiny checkpoints built up front: building one reseeds torch, so runs that compare
    with each other (or with pinned losses) must not build one in between."""
    from ablate.zoo import build_all

    build_all(["tiny-clip", "tiny-llama"])


def _first_update(parts, workdir):
    """(connector weights after one step minus before, the pre-clip gradient norm of that step)."""
    before = {n: p.detach().clone() for n, p in parts.vlm.connector.named_parameters()}
    trainer = parts.trainer(workdir)
    trainer.train()
    delta = {n: p.detach() - before[n] for n, p in parts.vlm.connector.named_parameters()}
    return delta, trainer.state.log_history[0]["grad_norm"]


def test_max_grad_norm_scales_the_update_exactly_and_null_does_not_clip(tmp_path, built_zoo):
    # Plain SGD, so an update is -lr x gradient: clipping shows up as an exact scale factor (a
    # large lr keeps the updates well above float32's resolution of the weights).
    stage = tiny_run.stage("s", optimizer="sgd", lr=10.0, max_steps=1, batch_size=4)
    free, norm = _first_update(stage_parts(tmp_path / "a", {**stage, "max_grad_norm": None}), tmp_path / "wa")
    assert norm > 2.0
    clipped, same_norm = _first_update(stage_parts(tmp_path / "b", {**stage, "max_grad_norm": 1.0}), tmp_path / "wb")
    assert same_norm == pytest.approx(norm, rel=1e-6)  # the Trainer logs the norm before clipping
    for name in free:  # torch's clip_grad_norm_: factor max_norm / (norm + 1e-6)
        assert torch.allclose(clipped[name], free[name] / (norm + 1e-6), rtol=1e-3, atol=1e-6), name
    # A norm over the gradient's leaves it whole: the same step as no clipping.
    loose, _ = _first_update(stage_parts(tmp_path / "c", {**stage, "max_grad_norm": 1e6}), tmp_path / "wc")
    assert all(torch.equal(loose[name], free[name]) for name in free)


def test_a_two_step_run_with_a_tiny_max_grad_norm_changes_the_second_loss(tmp_path, built_zoo):
    stage = tiny_run.stage("align", max_steps=2)
    result = stage_parts(tmp_path, {**stage, "max_grad_norm": 1e-4}).train(tmp_path / "w")
    # The first loss comes before any update; with the default norm (1.0) the second would be
    # ALIGN_LOSSES[1]. AdamW's step hardly depends on the gradient's scale, so a tiny norm slows
    # it only through eps: less progress, a higher second loss.
    assert result.metrics["mean_loss"] * 2 - result.metrics["final_loss"] == pytest.approx(ALIGN_LOSSES[0], abs=1e-4)
    assert result.metrics["final_loss"] == pytest.approx(6.642675, abs=1e-4)
    assert result.metrics["final_loss"] > ALIGN_LOSSES[1] + 0.01


def test_max_grad_norm_zero_and_null_are_one_setting(tmp_path):
    from ablate.train.stage import training_arguments

    zero = stage_parts(tmp_path, tiny_run.stage("s", max_grad_norm=0)).stage
    assert zero.max_grad_norm is None
    assert training_arguments(zero, 1, tmp_path / "w", None).max_grad_norm == 0.0
    assert training_arguments(stage_parts(tmp_path / "d", tiny_run.stage("s")).stage, 1, tmp_path / "w",
                              None).max_grad_norm == 1.0  # the default: the tiny recipes' measured runs


def test_tf32_is_passed_where_the_gpu_has_it_and_noted_where_not(tmp_path, monkeypatch):
    import transformers.training_args

    import ablate.train.stage as stage_module
    from ablate.train.stage import stage_notes, training_arguments

    stage = stage_parts(tmp_path, tiny_run.stage("s", tf32=True)).stage
    args = training_arguments(stage, 1, tmp_path / "w", None)  # this CPU has no TF32: no crash
    assert args.tf32 is None
    assert stage_notes(stage) == ["tf32 ignored: no TF32 here (it needs CUDA on an Ampere or newer GPU)"]
    assert stage_notes(stage.model_copy(update={"tf32": False})) == []
    # Where transformers finds TF32, the stage asks for it (and transformers switches it on).
    enabled = []
    monkeypatch.setattr(stage_module, "tf32_available", lambda: True)
    monkeypatch.setattr(transformers.training_args, "is_torch_tf32_available", lambda: True)
    monkeypatch.setattr(transformers.training_args, "enable_tf32", enabled.append)
    assert training_arguments(stage, 1, tmp_path / "w", None).tf32 is True and enabled == [True]
    assert stage_notes(stage) == []
