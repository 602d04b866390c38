"""`group_by_modality_length`: the Trainer a stage builds draws LLaVA's modality-grouped order, and
its DataLoader, sharded over ranks as accelerate shards it, keeps every step to one modality."""

from __future__ import annotations

import json
from pathlib import Path

import tiny_run
from stage_parts import stage_parts

IMAGES, TEXTS = 13, 7


def mixed_llava_json(root: Path) -> dict:
    """13 image records and 7 text-only ones (one opens with a gpt turn, one ends with a question)."""
    from PIL import Image

    (root / "images").mkdir(parents=True)
    records = []
    for i in range(IMAGES):
        Image.new("RGB", (32, 32), (20 * i, 0, 0)).save(root / "images" / f"{i}.png")
        words = " ".join(["more"] * i)
        records.append({"id": f"img{i}", "image": f"{i}.png", "conversations": [
            {"from": "human", "value": f"<image>\nWhat is here? {words}"}, {"from": "gpt", "value": "A red square."}]})
    for i in range(TEXTS):
        turns = [{"from": "human", "value": "Name a colour" + " please" * i}, {"from": "gpt", "value": "Green."}]
        if i == 0:
            turns.insert(0, {"from": "gpt", "value": "Hello!"})
        if i == 1:
            turns.append({"from": "human", "value": "Thanks"})
        records.append({"id": f"text{i}", "conversations": turns})
    (root / "mix.json").write_text(json.dumps(records))
    return {"type": "llava_json", "path": str(root / "mix.json"), "image_root": str(root / "images")}


def modality_stage(root: Path, **fields) -> dict:
    return tiny_run.stage("s", mixed_llava_json(root / "data"), template="vicuna_v1", batch_size=2,
                          group_by_modality_length=True, **fields)


def _has_image(parts) -> list[bool]:
    return [image is not None for image in parts.dataset["image"]]


def test_the_trainer_samples_by_modality(tmp_path):
    from ablate.train.sampler import ModalityLengthGroupedSampler, modality_grouped_indices

    import torch

    parts = stage_parts(tmp_path, modality_stage(tmp_path, grad_accum=2))
    loader = parts.trainer(tmp_path / "w").get_train_dataloader()
    sampler = loader.batch_sampler.sampler
    assert isinstance(sampler, ModalityLengthGroupedSampler)
    assert (sampler.batch_size, sampler.world_size, sampler.seed) == (2, 2, 42)  # megabatch: 2 x 1 rank x 2 steps
    assert sampler.lengths == [abs(n) for n in parts.dataset["modality_length"]] and sum(sampler.has_image) == IMAGES
    order = modality_grouped_indices(sampler.lengths, sampler.has_image, 2, 2, torch.Generator().manual_seed(42))
    assert [i for batch in loader.batch_sampler for i in batch] == order
    # the batches the Trainer trains on: image-token rows and text rows never meet before the
    # last two megabatches of 4 (1 image, 3 text samples set aside)
    flags = [bool((row == -200).any()) for batch in loader for row in batch["input_ids"]]
    assert flags == [_has_image(parts)[i] for i in order]
    assert all(len(set(flags[k:k + 4])) == 1 for k in range(0, len(flags) - 4, 4))
    # the Trainer sets each epoch on the DataLoader, which passes it on: a new order per epoch
    loader.set_epoch(1)
    assert sampler.epoch == 1 and [i for batch in loader.batch_sampler for i in batch] != order


def test_each_rank_steps_on_one_modality(tmp_path):
    """Under DDP accelerate deals the DataLoader's batches to the ranks in turn: with two ranks
    the megabatch holds both ranks' batches of a step, so each step is one modality everywhere."""
    from accelerate.data_loader import prepare_data_loader
    from torch.utils.data import DataLoader

    from ablate.train.sampler import ModalityLengthGroupedSampler

    parts = stage_parts(tmp_path, modality_stage(tmp_path))
    lengths, has_image = [abs(n) for n in parts.dataset["modality_length"]], _has_image(parts)

    def rank_batches(rank: int) -> list[list[int]]:
        sampler = ModalityLengthGroupedSampler(lengths, has_image, batch_size=2, world_size=2, seed=42)
        loader = prepare_data_loader(DataLoader(range(IMAGES + TEXTS), batch_size=2, sampler=sampler),
                                     num_processes=2, process_index=rank)
        return [batch.tolist() for batch in loader]

    steps = [[i for batch in step for i in batch] for step in zip(rank_batches(0), rank_batches(1))]
    assert len(steps) == 5 and sorted(i for step in steps for i in step) == list(range(IMAGES + TEXTS))
    # 12 image samples make 3 megabatches of 2 ranks x 2, 4 text samples 1; they come first
    assert all(len({has_image[i] for i in step}) == 1 for step in steps[:4])
    assert sum(has_image[i] for step in steps[:4] for i in step) == 12
    # the leftover step: the last image sample and the last 3 text samples
    assert sorted(has_image[i] for i in steps[4]) == [False, False, False, True]
