"""VLMCollator / EvalCollator: padding, images, image_aspect_ratio, feature lookup."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from vlm_parts import TinyClipEncoder, tiny_tokenizer

from ablate.components.contracts import IMAGE_TOKEN_INDEX as I  # noqa: E741
from ablate.data.aspect_ratio import expand_to_square
from ablate.data.collate import EvalCollator, VLMCollator, left_pad
from ablate.errors import DataError

N = -100


@pytest.fixture(scope="module")
def processor():
    return TinyClipEncoder().image_processor


@pytest.fixture
def rows(tmp_path):
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "wide.png")
    Image.new("L", (32, 32), 200).save(tmp_path / "gray.png")  # not RGB: converted
    return [
        {"id": "a", "input_ids": [5, 6, I, 7], "labels": [N, N, N, 7], "image": str(tmp_path / "wide.png")},
        {"id": "b", "input_ids": [5, 9], "labels": [N, 9], "image": None},
        {"id": "c", "input_ids": [I, 11, 12], "labels": [N, 11, 12], "image": str(tmp_path / "gray.png"), "x": 1},
    ]


def test_right_padding_and_pixel_values(rows, processor):
    batch = VLMCollator(tiny_tokenizer(), processor)(rows)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "pixel_values"}
    assert batch["input_ids"].tolist() == [[5, 6, I, 7], [5, 9, 0, 0], [I, 11, 12, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[N, N, N, 7], [N, 9, N, N], [N, 11, 12, N]]
    assert batch["pixel_values"].shape == (2, 3, 32, 32)  # the two rows with images, in order
    images = [Image.open(rows[0]["image"]).convert("RGB"), Image.open(rows[2]["image"]).convert("RGB")]
    assert torch.equal(batch["pixel_values"], processor(images, return_tensors="pt")["pixel_values"])


def test_text_only_batch_has_no_images(rows):
    batch = VLMCollator(tiny_tokenizer(), pad_token_id=3)([rows[1], rows[1]])
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].tolist() == [[5, 9], [5, 9]]


def test_pad_to_square_uses_the_processor_mean_colour(rows, processor):
    wide = Image.open(rows[0]["image"]).convert("RGB")
    square = expand_to_square(wide, (122, 116, 104))
    assert square.size == (40, 40)
    assert square.getpixel((0, 0)) == (122, 116, 104) and square.getpixel((0, 10)) == (255, 0, 0)
    assert square.getpixel((39, 29)) == (255, 0, 0) and square.getpixel((39, 30)) == (122, 116, 104)

    padded = VLMCollator(tiny_tokenizer(), processor, image_aspect_ratio="pad")(rows[:1])["pixel_values"]
    plain = VLMCollator(tiny_tokenizer(), processor)(rows[:1])["pixel_values"]
    # CLIP mean (0.481, 0.458, 0.408) * 255, truncated like LLaVA.
    assert torch.equal(padded, processor([square], return_tensors="pt")["pixel_values"])
    assert not torch.equal(padded, plain)
    eval_padded = EvalCollator(tiny_tokenizer(), processor, image_aspect_ratio="pad")(rows[:1])["pixel_values"]
    assert torch.equal(eval_padded, padded)


def test_feature_lookup_replaces_pixel_values(rows):
    calls = []

    def lookup(sample_id, path):
        calls.append((sample_id, path))
        return torch.full((4, 8), float(len(calls)))

    batch = VLMCollator(tiny_tokenizer(), feature_lookup=lookup)(rows)
    assert "pixel_values" not in batch
    assert batch["image_features"].shape == (2, 4, 8)
    assert batch["image_features"][:, 0, 0].tolist() == [1.0, 2.0]
    assert calls == [("a", rows[0]["image"]), ("c", rows[2]["image"])]


def test_eval_collator_left_pads_prompts(rows, processor):
    prompts = [{k: v for k, v in r.items() if k != "labels"} for r in rows]
    batch = EvalCollator(tiny_tokenizer(), processor)(prompts)
    assert batch["input_ids"].tolist() == [[5, 6, I, 7], [0, 0, 5, 9], [0, I, 11, 12]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [0, 0, 1, 1], [0, 1, 1, 1]]
    assert batch["ids"] == ["a", "b", "c"]
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert left_pad([[1], [2, 3]], 9)[0].tolist() == [[9, 1], [2, 3]]


def test_bad_rows_name_the_sample(rows, processor, tmp_path):
    collate = VLMCollator(tiny_tokenizer(), processor)
    missing = {**rows[0], "id": "lost", "image": str(tmp_path / "missing.png")}
    with pytest.raises(DataError, match=r"missing.png: sample 'lost': image file not found"):
        collate([missing])
    with pytest.raises(DataError, match="sample 'b': labels and input_ids differ"):
        collate([{**rows[1], "labels": [N]}])
    with pytest.raises(DataError, match="sample 'a' has an image but the collator has no image_processor"):
        VLMCollator(tiny_tokenizer())(rows)
