"""Stage options the README promises, checked on the Trainer a stage really builds."""

from __future__ import annotations

import pytest

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
