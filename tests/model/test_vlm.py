"""The splice, forward/loss, generation and Trainer-facing attributes of VisionLanguageModel."""

from __future__ import annotations

import pytest
import torch

from ablate.components.contracts import IMAGE_TOKEN_INDEX as I  # noqa: E741
from ablate.data.collate import left_pad, pad_sequences
from ablate.errors import DataError

from vlm_parts import ENC_DIM, LLM_DIM

N = -100  # IGNORE_INDEX

# Three samples: an image mid-sequence, text only, two images.
IDS = [[5, 6, I, 7, 8], [5, 9, 10], [5, I, 11, I, 12, 13]]
LABELS = [[N, N, N, 7, 8], [N, 9, 10], [N, N, N, N, 12, 13]]


def batch(side="right"):
    input_ids, mask = pad_sequences(IDS, 0, side)
    labels, _ = pad_sequences(LABELS, N, side)
    return input_ids, mask, labels


def features():
    torch.manual_seed(3)
    return torch.randn(3, 2, ENC_DIM)  # 3 images, 2 features each -> 2 visual tokens each


def expected_rows(vlm, feats):
    """The hand-written splice: token embeddings and connector outputs in order."""
    E = vlm.llm.get_input_embeddings().weight.detach()
    V = vlm.connector(feats).detach()
    return [
        [E[5], E[6], V[0, 0], V[0, 1], E[7], E[8]],
        [E[5], E[9], E[10]],
        [E[5], V[1, 0], V[1, 1], E[11], V[2, 0], V[2, 1], E[12], E[13]],
    ]


def stack(rows, width, side="right"):
    zero = torch.zeros(LLM_DIM)
    out = []
    for row in rows:
        row = row[:width]
        pad = [zero] * (width - len(row))
        out.append(torch.stack(row + pad if side == "right" else pad + row))
    return torch.stack(out)


def test_splice_matches_hand_made_concatenation(vlm):
    input_ids, mask, labels = batch()
    with torch.no_grad():
        embeds, new_mask, new_labels = vlm.embed_inputs(input_ids, mask, labels, image_features=features())
        expected = stack(expected_rows(vlm, features()), 8)
    assert torch.equal(embeds, expected)
    assert new_labels.tolist() == [
        [N, N, N, N, 7, 8, N, N],
        [N, 9, 10, N, N, N, N, N],
        [N, N, N, N, N, N, 12, 13],
    ]
    assert new_mask.tolist() == [
        [1, 1, 1, 1, 1, 1, 0, 0],
        [1, 1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 1, 1],
    ]


def test_truncation_happens_after_visual_tokens_are_inserted(vlm):
    input_ids, mask, labels = batch()
    vlm.max_length = 5
    with torch.no_grad():
        embeds, new_mask, new_labels = vlm.embed_inputs(input_ids, mask, labels, image_features=features())
        expected = stack(expected_rows(vlm, features()), 5)
    assert torch.equal(embeds, expected)
    assert new_labels.tolist() == [[N, N, N, N, 7], [N, 9, 10, N, N], [N, N, N, N, N]]
    assert new_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


def test_left_padding_for_generation_and_any_input_padding(vlm):
    input_ids, mask, labels = batch(side="left")  # input padding is dropped whatever its side
    with torch.no_grad():
        embeds, new_mask, new_labels = vlm.embed_inputs(
            input_ids, mask, labels, image_features=features(), padding_side="left"
        )
        expected = stack(expected_rows(vlm, features()), 8, side="left")
    assert torch.equal(embeds, expected)
    assert new_mask.tolist() == [
        [0, 0, 1, 1, 1, 1, 1, 1],
        [0, 0, 0, 0, 0, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1],
    ]
    assert new_labels.tolist() == [
        [N, N, N, N, N, N, 7, 8],
        [N, N, N, N, N, N, 9, 10],
        [N, N, N, N, N, N, 12, 13],
    ]


def test_pixel_values_run_the_encoder_then_the_connector(vlm):
    torch.manual_seed(4)
    pixels = torch.randn(3, 3, 32, 32)
    input_ids, mask, labels = batch()
    with torch.no_grad():
        from_pixels = vlm.embed_inputs(input_ids, mask, labels, pixel_values=pixels)[0]
        feats = vlm.encoder(pixels)
        from_features = vlm.embed_inputs(input_ids, mask, labels, image_features=feats)[0]
        tokens = vlm.connector(feats)
    assert feats.shape == (3, 16, ENC_DIM)
    assert from_pixels.shape == (3, 6 - 2 + 2 * 16, LLM_DIM)  # sample C: 4 text tokens, 2 x 16 visual
    assert torch.equal(from_pixels, from_features)
    assert torch.equal(from_pixels[2, 1:17], tokens[1])  # sample C's first image, 16 tokens
    assert torch.equal(from_pixels[2, 18:34], tokens[2])


def test_images_must_match_placeholders(vlm):
    input_ids, mask, labels = batch()
    with pytest.raises(DataError, match="3 image placeholder"):
        vlm(input_ids, mask, labels, image_features=features()[:2])
    with pytest.raises(DataError, match="0 image"):
        vlm(input_ids, mask, labels)


def test_forward_loss_is_the_llm_loss_on_spliced_embeddings(vlm):
    input_ids, mask, labels = batch()
    with torch.no_grad():
        out = vlm(input_ids, mask, labels, image_features=features())
        expected = stack(expected_rows(vlm, features()), 8)
        ref = vlm.llm(
            inputs_embeds=expected,
            attention_mask=torch.tensor([[1] * 6 + [0] * 2, [1] * 3 + [0] * 5, [1] * 8]),
            labels=torch.tensor([[N, N, N, N, 7, 8, N, N], [N, 9, 10, N, N, N, N, N], [N] * 6 + [12, 13]]),
        )
        # Loss kwargs reach the LLM: summed over 6 label tokens, divided by the given count.
        scaled = vlm(input_ids, mask, labels, image_features=features(), num_items_in_batch=torch.tensor(12))
    assert out.logits.shape == (3, 8, 32)
    assert torch.equal(out.logits, ref.logits)
    assert torch.allclose(out.loss, ref.loss)
    assert torch.allclose(scaled.loss, ref.loss * 6 / 12)


def test_generate_equals_manual_argmax_loop(vlm):
    torch.manual_seed(5)
    pixels = torch.randn(1, 3, 32, 32)
    prompts = [[1, 5, I, 7], [1, 9, 10, 11, 12]]
    input_ids, mask = left_pad(prompts, 0)
    generated = vlm.generate(input_ids, mask, pixel_values=pixels, max_new_tokens=3)
    assert generated.shape == (2, 3)  # only the new tokens

    embed = vlm.llm.get_input_embeddings()
    manual = []
    with torch.no_grad():
        for i, prompt in enumerate(prompts):
            ids = torch.tensor([prompt])
            seq, _, _ = vlm.embed_inputs(ids, pixel_values=pixels if I in prompt else None)
            tokens = []
            for _ in range(3):
                token = vlm.llm(inputs_embeds=seq).logits[0, -1].argmax()
                tokens.append(int(token))
                seq = torch.cat([seq, embed(token)[None, None]], dim=1)
            manual.append(tokens)
    assert generated.tolist() == manual
    assert vlm.generate(input_ids, mask, pixel_values=pixels, max_new_tokens=3).tolist() == manual


@pytest.mark.parametrize("side", ["left", "right"])
def test_the_shared_prefix_stops_at_the_first_difference_or_image(side):
    from ablate.model.vlm import _shared_prefix

    def shared(prompts):
        ids, mask = pad_sequences(prompts, 0, side)
        return _shared_prefix(ids, mask.bool())

    assert shared([[1, 5, 6, 7], [1, 5, 6, 9, 9], [1, 5, 6]]) == 3
    assert shared([[1, 5, 6, I, 7], [1, 5, 6, I, 7]]) == 3  # each image's visual tokens are its own
    assert shared([[1, 5, 8], [2, 5, 8]]) == 0


def test_rows_sharing_a_prefix_score_what_each_scores_alone(vlm):
    torch.manual_seed(6)
    pixels = torch.randn(1, 3, 32, 32)
    prompts = [[1, 5, 6, 7, 9], [1, 5, 6, I, 10], [1, 5, 6, 7, 9, 11, 12]]
    input_ids, mask = left_pad(prompts, 0)
    steps = dict(max_new_tokens=3, output_scores=True, return_dict_in_generate=True)
    together = vlm.generate(input_ids, mask, pixel_values=pixels, **steps)
    for row, prompt in enumerate(prompts):
        alone = vlm.generate(torch.tensor([prompt]), pixel_values=pixels if I in prompt else None, **steps)
        assert together.sequences[row].tolist() == alone.sequences[0].tolist()
        for step_together, step_alone in zip(together.scores, alone.scores):
            assert torch.allclose(step_together[row], step_alone[0], atol=1e-5)


def test_trainer_facing_attributes(vlm):
    assert vlm.main_input_name == "input_ids"
    assert vlm.config is vlm.llm.config
    assert vlm.generation_config is vlm.llm.generation_config
    assert "LlamaDecoderLayer" in vlm._no_split_modules and "CLIPEncoderLayer" in vlm._no_split_modules
    total = sum(p.numel() for p in vlm.parameters())
    assert vlm.num_parameters() == total
    # nn.Embedding weights: the LLM's token table (32 x 16) and CLIP's position table (17 x 8).
    assert vlm.num_parameters(exclude_embeddings=True) == total - 32 * 16 - 17 * 8


def test_gradient_checkpointing_keeps_loss_and_grads(vlm):
    from ablate.model.trainable import apply_trainable
    from ablate.recipe.schema import StageTrainable

    apply_trainable(vlm, StageTrainable(encoder="frozen", connector="full", llm="full"))
    vlm.train()
    input_ids, mask, labels = batch()
    loss = vlm(input_ids, mask, labels, image_features=features()).loss
    loss.backward()
    grad = vlm.connector.weight.grad.clone()
    vlm.zero_grad()

    vlm.gradient_checkpointing_enable()
    assert vlm.llm.is_activation_checkpointing and vlm.is_activation_checkpointing
    assert not vlm.encoder.model.is_activation_checkpointing  # frozen: runs without grad anyway
    loss_gc = vlm(input_ids, mask, labels, image_features=features()).loss
    loss_gc.backward()
    assert torch.allclose(loss, loss_gc)
    assert torch.allclose(grad, vlm.connector.weight.grad, atol=1e-6)
    vlm.gradient_checkpointing_disable()
    assert not vlm.is_activation_checkpointing


def test_trains_with_transformers_trainer(vlm, tmp_path):
    from PIL import Image
    from transformers import Trainer, TrainingArguments

    from ablate.data.collate import VLMCollator
    from ablate.model.trainable import apply_trainable
    from ablate.recipe.schema import StageTrainable

    apply_trainable(vlm, StageTrainable())  # LLaVA pretraining: only the connector trains
    image = tmp_path / "red.png"
    Image.new("RGB", (40, 24), (255, 0, 0)).save(image)
    rows = [
        {"input_ids": [5, 6, I, 7, 8], "labels": [N, N, N, 7, 8], "image": str(image), "id": "a"},
        {"input_ids": [5, 9, 10], "labels": [N, 9, 10], "image": None, "id": "b"},
    ] * 2
    before = {name: p.detach().clone() for name, p in vlm.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=2, learning_rate=1e-2,
        remove_unused_columns=False, report_to="none", save_strategy="no", use_cpu=True,
    )
    collator = VLMCollator(vlm.tokenizer, vlm.image_processor)
    result = Trainer(model=vlm, args=args, train_dataset=rows, data_collator=collator).train()
    assert result.training_loss > 0
    changed = {name for name, p in vlm.named_parameters() if not torch.equal(p, before[name])}
    assert changed == {"connector.weight", "connector.bias"}
    assert not vlm.encoder.training  # frozen encoder stays in eval mode under Trainer's model.train()


def test_gradient_checkpointing_covers_a_trainable_encoder(vlm):
    from ablate.model.trainable import apply_trainable
    from ablate.recipe.schema import StageTrainable

    apply_trainable(vlm, StageTrainable(encoder="full", connector="full", llm="frozen"))
    vlm.gradient_checkpointing_enable()
    assert vlm.encoder.model.is_activation_checkpointing and vlm.llm.is_activation_checkpointing
    vlm.train()
    input_ids, mask, labels = batch()
    torch.manual_seed(6)
    vlm(input_ids, mask, labels, pixel_values=torch.randn(3, 3, 32, 32)).loss.backward()
    assert vlm.encoder.model.encoder.layers[0].mlp.fc1.weight.grad.abs().sum() > 0
    assert vlm.llm.lm_head.weight.grad is None
