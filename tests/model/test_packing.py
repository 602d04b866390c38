"""Padding-free (packed) training batches: the same loss and gradients as padded ones.

The comparison fails when a boundary leaks, which the last tests show by breaking one on purpose.
"""

from __future__ import annotations

import pytest
import torch

from ablate.components.contracts import IMAGE_TOKEN_INDEX as I  # noqa: E741
from ablate.data.collate import pad_sequences

N = -100  # IGNORE_INDEX
# Text-only and image samples of many lengths (16 visual tokens per image); the last one is cut
# at max_length 40 after its image is spliced in.
IDS = [
    [1, 5, I, 7, 8, 9, 10],
    [1, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
    [1, 6, 7],
    [1, I, 11, 12, 13, I, 20, 21],
    [1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, I, 28, 29, 30],
]
PROMPT = [3, 4, 0, 3, 6]  # leading labels masked, as a template masks the prompt (not the third's)


def batch():
    labels = [[N] * p + ids[p:] for ids, p in zip(IDS, PROMPT)]
    labels = [[N if t == I else t for t in row] for row in labels]
    input_ids, mask = pad_sequences(IDS, 0)
    padded_labels, _ = pad_sequences(labels, N)
    torch.manual_seed(7)
    images = sum(row.count(I) for row in IDS)
    return dict(input_ids=input_ids, attention_mask=mask, labels=padded_labels,
                pixel_values=torch.randn(images, 3, 32, 32))


@pytest.fixture
def trainable_vlm(vlm):
    from ablate.model.trainable import apply_trainable

    apply_trainable(vlm, {"encoder": "frozen", "connector": "full", "llm": "full"})
    vlm.max_length = 40
    return vlm.train()


def scored_tokens(vlm, inputs) -> torch.Tensor:
    """What VLMTrainer passes as num_items_in_batch: labels scored after the splice."""
    from ablate.train.trainer import _shifted

    return _shifted(vlm.spliced_labels(inputs["input_ids"], inputs["attention_mask"], inputs["labels"])).ne(N).sum()


def loss_and_grads(vlm, packed: bool):
    vlm.packing = packed
    vlm.zero_grad(set_to_none=True)
    inputs = batch()
    loss = vlm(**inputs, num_items_in_batch=scored_tokens(vlm, inputs)).loss
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in vlm.named_parameters() if p.grad is not None}


def largest_difference(vlm) -> float:
    """Largest absolute difference, packed against padded, over the loss and every gradient."""
    loss, grads = loss_and_grads(vlm, packed=False)
    packed_loss, packed_grads = loss_and_grads(vlm, packed=True)
    assert grads.keys() == packed_grads.keys() and any(k.startswith("llm.") for k in grads)
    return max([abs(loss - packed_loss)] + [float((grads[k] - packed_grads[k]).abs().max()) for k in grads])


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_rows_give_the_padded_loss_and_gradients(trainable_vlm, attention):
    trainable_vlm.llm.set_attn_implementation(attention)
    assert largest_difference(trainable_vlm) <= 1e-5


def test_one_row_per_batch_as_for_flash_attention(trainable_vlm, monkeypatch):
    """flash-attention takes the whole batch as one row; SDPA reads the same boundaries from it."""
    monkeypatch.setattr("ablate.model.vlm.one_row_per_batch", lambda config: True)
    embeds, position_ids, labels = trainable_vlm.embed_packed(**batch())
    assert embeds.shape[0] == 1 and embeds.shape[1] == 22 + 12 + 3 + 38 + 40  # every spliced token, no padding
    assert largest_difference(trainable_vlm) <= 1e-5


def test_packed_layout_restarts_positions_and_masks_each_first_label(trainable_vlm):
    embeds, position_ids, labels = trainable_vlm.embed_packed(**batch())
    # First-fit decreasing into rows of the longest sample (40): [40], [38 + 2 padding], [22 + 12 + 3 + 3 padding]
    assert embeds.shape[:2] == position_ids.shape == labels.shape == (3, 40)
    assert position_ids[2].tolist() == list(range(22)) + list(range(12)) + list(range(3)) + [0, 1, 2]
    assert position_ids[1].tolist() == list(range(38)) + [0, 1]
    assert labels[2, [0, 22, 34]].tolist() == [N, N, N]  # where each sample starts (the third's was token 1)
    assert labels[2, 35:37].tolist() == [6, 7]
    assert labels[2, 37:].tolist() == [N] * 3 and not embeds[2, 37:].any()  # padding
    assert trainable_vlm.tokens_processed == 0
    trainable_vlm.packing = True
    trainable_vlm(**batch())
    assert trainable_vlm.tokens_processed == 115  # LLM tokens, not padding


def test_position_ids_that_run_on_across_samples_break_the_equality(trainable_vlm, monkeypatch):
    """Without restarts the samples of a row are one sequence to the attention: they see each other."""
    def running_on(rows, lengths):
        return torch.arange(rows.width).expand(rows.rows, -1)

    monkeypatch.setattr("ablate.model.vlm.packed_position_ids", running_on)
    assert largest_difference(trainable_vlm) > 1e-3


def test_unmasked_boundaries_break_the_equality(trainable_vlm, monkeypatch):
    """The third sample's first label is a token (no prompt): packed, without the boundary mask, it
    is scored as the prediction of the previous sample's last token."""
    monkeypatch.setattr("ablate.model.vlm.mask_sample_starts", lambda labels, rows, lengths: None)
    assert largest_difference(trainable_vlm) > 1e-3


def test_only_llms_that_mask_packed_samples_apart_are_packed(trainable_vlm, monkeypatch):
    from types import SimpleNamespace

    from ablate.errors import AblateError
    from ablate.train.stage import set_training_forward

    stage = SimpleNamespace(name="s", packing=True, loss="plain")
    set_training_forward(trainable_vlm, stage, None)
    assert trainable_vlm.packing and trainable_vlm.loss_mode == "plain"
    monkeypatch.setattr(trainable_vlm.llm.config, "model_type", "gpt2")  # masks from attention_mask alone
    with pytest.raises(AblateError, match=r"stages\.s\.packing: needs an LLM whose attention .* this one is 'gpt2'"):
        set_training_forward(trainable_vlm, stage, None)
