"""Contrastive pretraining for the zoo's CLIP: a tiny stand-in for OpenAI's CLIP checkpoint.

LLaVA freezes a *pretrained* CLIP. A randomly initialised tower keeps colour but not shape
(a linear probe on its patch features tells circle/rectangle/triangle apart 63% of the time,
benchmarks/clip_probe.py),
so a tiny recipe built on one cannot answer shape questions whatever the LLM does. This trains
the tower the way CLIP was trained, with the symmetric InfoNCE loss of `CLIPModel(return_loss=True)`
on image-caption pairs, here easy-VQA *train* images and their captions ("A blue circle.").

easy-VQA has few distinct captions, so a random batch holds many copies of each and the loss
pushes apart pairs that match. Batches are drawn so every caption in a batch is distinct, as
they nearly always are in CLIP's web-scale batches. Training runs on transformers' Trainer.
The saved folder is a full `CLIPModel` checkpoint (towers, projections, tokenizer, image
processor), the layout of `openai/clip-vit-*`, so encoders load it as they load the real one.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import IterableDataset

# The text tower only has to tell a few dozen short captions apart.
TEXT_TOWER = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=1, num_attention_heads=2,
                  max_position_embeddings=32)


@dataclass(frozen=True)
class PretrainSettings:
    steps: int = 600
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_ratio: float = 0.1
    batch_size: int = 24  # at most the number of distinct captions


class DistinctCaptionBatches(IterableDataset):
    """An endless, seeded stream whose every consecutive `batch_size` items have distinct captions."""

    def __init__(self, pixel_values: torch.Tensor, caption_ids: list[int], num_captions: int,
                 batch_size: int, seed: int):
        self.pixel_values = pixel_values
        self.caption_ids = torch.tensor(caption_ids)
        self.by_caption = [torch.nonzero(self.caption_ids == c).flatten() for c in range(num_captions)]
        self.batch_size = min(batch_size, num_captions)
        self.seed = seed

    def __iter__(self) -> Iterator[dict[str, Any]]:
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            captions = torch.randperm(len(self.by_caption), generator=generator)[: self.batch_size]
            for caption in captions.tolist():
                images = self.by_caption[caption]
                index = images[torch.randint(len(images), (1,), generator=generator)].item()
                yield {"pixel_values": self.pixel_values[index], "caption": caption}


def pretrain_clip(vision_config: dict[str, Any], settings: PretrainSettings, seed: int, out: Path,
                  image_processor, progress=None, label: str = "pretrain") -> None:
    """Train a CLIPModel with `vision_config` as its vision tower; save it with tokenizer into `out`."""
    from transformers import CLIPConfig, CLIPModel, set_seed

    from ablate.zoo.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    pixel_values, captions, caption_ids = _easy_vqa_pairs(image_processor)
    # CLIP's text tower pools at the first `eos_token_id`. Every caption gets at least one pad
    # after it and the tower pools there, which has seen the whole caption through the causal
    # mask. (With eos_token_id 2 transformers would take OpenAI's legacy highest-id rule instead.)
    text = tokenizer(captions, padding="longest", return_tensors="pt")
    pad = torch.full((len(captions), 1), tokenizer.pad_token_id)
    input_ids = torch.cat([text.input_ids, pad], dim=1)
    attention_mask = torch.cat([text.attention_mask, torch.zeros_like(pad)], dim=1)
    attention_mask[torch.arange(len(captions)), text.attention_mask.sum(1)] = 1

    config = CLIPConfig(
        vision_config=vision_config,
        text_config=dict(TEXT_TOWER, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.pad_token_id),
        projection_dim=vision_config.get("projection_dim", 128),
    )
    set_seed(seed)
    model = CLIPModel(config)

    def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
        ids = torch.tensor([item["caption"] for item in items])
        return {"pixel_values": torch.stack([item["pixel_values"] for item in items]),
                "input_ids": input_ids[ids], "attention_mask": attention_mask[ids], "return_loss": True}

    dataset = DistinctCaptionBatches(pixel_values, caption_ids, len(set(captions)), settings.batch_size, seed)
    train_and_save(model, tokenizer, dataset, settings, seed, out, progress, label, data_collator=collate,
                   remove_unused_columns=False)


def train_and_save(model, tokenizer, dataset, settings, seed: int, out: Path, progress=None, label: str = "pretrain",
                   **trainer_args: Any) -> None:
    """Pretrain `model` for `settings.steps` steps on transformers' Trainer (AdamW, cosine with warm-up),
    then save it and `tokenizer` into `out`. Extra keyword arguments go to TrainingArguments, except
    `data_collator`, which goes to the Trainer."""
    from transformers import PrinterCallback, Trainer, TrainingArguments

    from ablate.train.callbacks import RichProgressCallback

    collator = trainer_args.pop("data_collator", None)
    args = TrainingArguments(
        output_dir=str(out / ".trainer"), max_steps=settings.steps, per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.lr, weight_decay=settings.weight_decay,
        warmup_steps=int(settings.warmup_ratio * settings.steps), lr_scheduler_type="cosine", seed=seed,
        data_seed=seed, save_strategy="no", report_to=[], logging_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, use_cpu=not torch.cuda.is_available(), **trainer_args,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    trainer.remove_callback(PrinterCallback)  # no metrics dict on stdout while a zoo entry builds
    if progress is not None:
        trainer.add_callback(RichProgressCallback(f"{label} pretraining", progress))
    trainer.train()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    shutil.rmtree(out / ".trainer", ignore_errors=True)


def _easy_vqa_pairs(image_processor) -> tuple[torch.Tensor, list[str], list[int]]:
    """easy-VQA train images (preprocessed as the encoder will see them) and their captions."""
    from PIL import Image

    from ablate.data.sources.easyvqa import EasyVQAConfig, build_easy_vqa

    samples = list(build_easy_vqa(EasyVQAConfig(type="easy_vqa", split="train", style="caption")).samples())
    images = []
    for sample in samples:
        with Image.open(sample["image"]) as image:
            images.append(image.convert("RGB"))
    pixel_values = image_processor(images=images, return_tensors="pt")["pixel_values"]
    captions = [sample["conversations"][1]["value"] for sample in samples]
    ids = {caption: i for i, caption in enumerate(sorted(set(captions)))}
    return pixel_values, captions, [ids[caption] for caption in captions]

