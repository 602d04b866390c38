"""`packing` and `loss` in a real stage, and the Trainer's token count taken after the splice."""

from __future__ import annotations

import pytest
import torch

import tiny_run
from stage_parts import stage_parts
from test_modality_sampler import mixed_llava_json

LORA = {"encoder": "frozen", "connector": "full", "llm": {"lora": {"r": 4, "lora_dropout": 0.0}}}


def _trained(root, **fields):
    """(final loss, mean loss, every weight) after 3 SGD steps on image and text-only samples, drawn
    by LLaVA's modality sampler, LoRA on the LLM, its layers checkpointed."""
    stage = tiny_run.stage("s", mixed_llava_json(root / "data"), template="vicuna_v1", batch_size=4, trainable=LORA,
                           group_by_modality_length=True, gradient_checkpointing=True, optimizer="sgd", lr=0.5,
                           scheduler="constant", **fields)
    parts = stage_parts(root, stage)
    result = parts.train(root / "w")
    weights = {k: v.detach().clone() for k, v in parts.vlm.state_dict().items()}
    return result.metrics["final_loss"], result.metrics["mean_loss"], weights, parts.vlm


@pytest.fixture
def built_zoo():
    """The tiny checkpoints built up front: building one reseeds torch, so the first of the two
    stages compared would otherwise start from another connector than the second."""
    from ablate.zoo import build_all

    build_all(["tiny-clip", "tiny-llama"])


def test_a_packed_stage_trains_as_the_padded_one(tmp_path, built_zoo):
    final, mean, weights, padded = _trained(tmp_path / "padded", loss="plain")
    packed_final, packed_mean, packed_weights, packed = _trained(tmp_path / "packed", packing=True)
    assert (padded.packing, padded.loss_mode) == (False, "plain")
    assert (packed.packing, packed.loss_mode) == (True, "chunked")  # loss auto, on a CPU
    assert packed_final == pytest.approx(final, abs=1e-5) and packed_mean == pytest.approx(mean, abs=1e-5)
    assert weights.keys() == packed_weights.keys()
    assert max(float((weights[k] - packed_weights[k]).abs().max()) for k in weights) < 1e-5
    changed = [k for k in weights if "lora_B" in k and weights[k].abs().max() > 0]
    assert changed  # the LoRA adapters trained (lora_B starts at zero)


def test_num_items_in_batch_counts_the_labels_left_after_the_splice(tmp_path):
    """Cut at max_length after its visual tokens are inserted, the longest sample loses label
    tokens that the collator's labels still hold; the Trainer's count must not include them."""
    parts = stage_parts(tmp_path, tiny_run.stage("s", tiny_run.easy_vqa("qa", images=2), template="vicuna_v1",
                                                 batch_size=4))
    trainer = parts.trainer(tmp_path / "w")
    batch = next(iter(trainer.get_train_dataloader()))
    visual = parts.vlm.connector.num_output_tokens
    parts.vlm.max_length = int(batch["attention_mask"].sum(1).max()) + visual - 1 - 3
    with torch.no_grad():
        _, _, seen = parts.vlm.embed_inputs(batch["input_ids"], batch["attention_mask"], batch["labels"],
                                            batch["pixel_values"])
    scored = int(seen[..., 1:].ne(-100).sum())
    assert scored < int(batch["labels"][..., 1:].ne(-100).sum())  # what the Trainer alone would count
    assert int(trainer._get_num_items_in_batch([batch], torch.device("cpu"))) == scored
