"""Batch collation for training (right padding) and generation (left padding).

Rows are tokenized samples: {"input_ids": [...], "labels": [...], "image": path | PIL image | None,
"id": str, ...}. Images become `pixel_values` [K, 3, H, W] for the K rows that have one, in row
order, which is the order VisionLanguageModel matches them to IMAGE_TOKEN_INDEX placeholders;
`image_aspect_ratio` (square, pad, resize: `ablate.data.aspect_ratio`) says how they are prepared.
With a `feature_lookup` (one image at a time) or a `batch_feature_lookup` (the batch's images at
once, so a cache can encode its misses together), precomputed encoder features
`image_features` [K, N, D] replace them.

A training batch names the rows it left out (those the template could not encode, under
`on_bad_sample: skip`) under SKIPPED_IDS, for VLMTrainer to count; the model never sees it.

The pad id in `input_ids` only has to be a valid token id: the model drops padding by the
attention mask before embedding.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import torch

from ablate.components.contracts import IGNORE_INDEX
from ablate.data.aspect_ratio import checked_aspect_ratio, pixel_values
from ablate.errors import DataError

# The batch key under which the training collator names the rows it left out (VLMTrainer counts them).
SKIPPED_IDS = "skipped_ids"
# (sample id, image path) -> encoder features [num_tokens, feature_dim] for that image.
FeatureLookup = Callable[[str, str], torch.Tensor]
# (sample ids, images as given in the rows) -> features [K, num_tokens, feature_dim].
BatchFeatureLookup = Callable[[list[str], list[Any]], torch.Tensor]


def pad_sequences(
    sequences: Sequence[Sequence[int]], pad_value: int, side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(padded [B, L] long tensor, attention mask [B, L]) with padding on `side`."""
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    width = max((len(s) for s in sequences), default=0)
    out = torch.full((len(sequences), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        if not len(seq):
            continue
        cols = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        out[i, cols] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[i, cols] = 1
    return out, mask


def left_pad(sequences: Sequence[Sequence[int]], pad_value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompts for batched generation: (input_ids, attention_mask)."""
    return pad_sequences(sequences, pad_value, "left")


class VLMCollator:
    """Training collator: right-padded input_ids/attention_mask/labels plus the batch's images."""

    padding_side = "right"

    def __init__(
        self,
        tokenizer: Any = None,
        image_processor: Any = None,
        *,
        pad_token_id: int | None = None,
        image_aspect_ratio: str = "square",
        feature_lookup: FeatureLookup | None = None,
        batch_feature_lookup: BatchFeatureLookup | None = None,
    ):
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.pad_token_id = _pad_id(tokenizer) if pad_token_id is None else pad_token_id
        self.image_aspect_ratio = checked_aspect_ratio(image_aspect_ratio)
        self.feature_lookup = feature_lookup
        self.batch_feature_lookup = batch_feature_lookup

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        skipped = [str(row.get("id")) for row in rows if row.get("error")]
        rows = encodable(rows)
        input_ids, attention_mask = pad_sequences([r["input_ids"] for r in rows], self.pad_token_id, self.padding_side)
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if rows and "labels" in rows[0]:
            for row in rows:
                if len(row["labels"]) != len(row["input_ids"]):
                    raise DataError(f"sample {row.get('id')!r}: labels and input_ids differ in length")
            batch["labels"], _ = pad_sequences([r["labels"] for r in rows], IGNORE_INDEX, self.padding_side)
        batch.update(self.images(rows))
        if skipped:
            batch[SKIPPED_IDS] = skipped
        return batch

    def images(self, rows: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """{"pixel_values": [K,3,H,W]} or {"image_features": [K,N,D]} for rows with an image; {} if none."""
        with_image = [r for r in rows if r.get("image") is not None]
        if not with_image:
            return {}
        if self.image_processor is None and self.feature_lookup is None and self.batch_feature_lookup is None:
            raise DataError(f"sample {with_image[0].get('id')!r} has an image but the collator has no image_processor")
        if self.batch_feature_lookup is not None:
            feats = self.batch_feature_lookup([str(r.get("id")) for r in with_image], [r["image"] for r in with_image])
            return {"image_features": torch.as_tensor(feats)}
        if self.feature_lookup is not None:
            feats = [self.feature_lookup(str(r.get("id")), _image_key(r["image"])) for r in with_image]
            return {"image_features": torch.stack([torch.as_tensor(f) for f in feats])}
        images = [self._load(r) for r in with_image]
        return {"pixel_values": pixel_values(images, self.image_processor, self.image_aspect_ratio)}

    def _load(self, row: dict[str, Any]):
        from PIL import Image

        from ablate.data.images import load_image

        image = row["image"]
        if isinstance(image, Image.Image):
            return image.convert("RGB")
        return load_image(str(image), str(row.get("id")))


def encodable(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows without those the template could not encode (on_bad_sample: skip; see
    ablate.data.pipeline), each named in a SkippedSampleWarning."""
    kept = [row for row in rows if not row.get("error")]
    for row in rows:
        if row.get("error"):
            warnings.warn(f"sample {row.get('id')!r} skipped (on_bad_sample: skip): {row['error']}",
                          SkippedSampleWarning, stacklevel=2)
    if rows and not kept:
        raise DataError(f"every sample of a batch was skipped; first: {rows[0].get('id')!r}: {rows[0]['error']}")
    return kept


class SkippedSampleWarning(UserWarning):
    """A training sample the template could not encode was left out of its batch."""


class EvalCollator(VLMCollator):
    """Generation collator: left-padded prompts, images, and the rows' ids under "ids"."""

    padding_side = "left"

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        input_ids, attention_mask = left_pad([r["input_ids"] for r in rows], self.pad_token_id)
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        batch.update(self.images(rows))
        batch["ids"] = [r.get("id") for r in rows]
        return batch


def _pad_id(tokenizer: Any) -> int:
    for attr in ("pad_token_id", "unk_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            return int(value)
    return 0


def _image_key(image: Any) -> str:
    return image if isinstance(image, str) else str(getattr(image, "filename", "") or image)
