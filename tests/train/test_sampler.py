"""LLaVA's modality-length-grouped order (ablate.train.sampler), step by step and on a mixture."""

from __future__ import annotations

import random

import pytest
import torch

from ablate.train.sampler import (
    ModalityLengthGroupedSampler,
    balanced_chunks,
    length_grouped_indices,
    modality_grouped_indices,
)


def draw(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_balanced_chunks_deal_the_longest_to_the_lightest_chunk():
    lengths = [9, 8, 5, 4, 3, 1]
    # 9 -> A; 8 -> B; 5 -> B (8 < 9); 4 -> A (9 < 13); 3 -> A (13 = 13, the first); A is full: 1 -> B
    assert balanced_chunks([0, 1, 2, 3, 4, 5], lengths, 2) == [[0, 3, 4], [1, 2, 5]]
    # a count that does not divide: every other index
    assert balanced_chunks([0, 1, 2, 3, 4], lengths, 2) == [[0, 2, 4], [1, 3]]


def test_length_grouped_indices_step_by_step():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4]
    assert torch.randperm(8, generator=draw(0)).tolist() == [4, 0, 7, 3, 2, 5, 1, 6]  # torch's draw, pinned
    # megabatches of 2 x 2: [4, 0, 7, 3] by length 7 5 4 3 -> chunks [4, 3] (10) and [0, 7] (9);
    # [2, 5, 1, 6] -> 2 6 5 1 (9 8 2 1) -> [2, 1] and [6, 5]
    assert length_grouped_indices(lengths, batch_size=2, world_size=2, generator=draw(0)) == [4, 3, 0, 7, 2, 1, 6, 5]


def test_modality_grouped_indices_step_by_step():
    lengths = [3, 10, 4, 7, 1, 9, 2, 6, 5, 8, 11, 12]
    has_image = [True, True, False, True, False, True, True, False, True, True, False, True]
    # images 0 1 3 5 6 8 9 11 and texts 2 4 7 10, in megabatches of 2: four of images, two of
    # texts. The last of each, [1, 9] and [2, 4], go last together in index order; the other four
    # are shuffled, each longest first.
    assert modality_grouped_indices(lengths, has_image, batch_size=2, world_size=1, generator=draw(0)) == [
        11, 5, 10, 7, 3, 8, 0, 6, 1, 2, 4, 9]


def mixture(n: int, text_share: float, seed: int = 0) -> tuple[list[int], list[bool]]:
    rng = random.Random(seed)
    has_image = [rng.random() >= text_share for _ in range(n)]
    return [rng.randint(5, 400) for _ in range(n)], has_image


@pytest.mark.parametrize("n, batch_size, world_size", [(1000, 4, 2), (997, 3, 5), (64, 4, 2)])
def test_every_batch_but_the_leftover_holds_one_modality(n, batch_size, world_size):
    lengths, has_image = mixture(n, 0.1)
    order = modality_grouped_indices(lengths, has_image, batch_size, world_size, draw(3))
    assert sorted(order) == list(range(n))
    megabatch = batch_size * world_size
    images = sum(has_image)
    leftover = (images - 1) % megabatch + 1 + (n - images - 1) % megabatch + 1  # each modality's last megabatch
    head, tail = order[:-leftover], order[-leftover:]
    assert tail == sorted(tail) and {has_image[i] for i in tail} == {True, False}
    assert len(head) % megabatch == 0
    for start in range(0, len(head), megabatch):
        part = head[start:start + megabatch]
        assert len({has_image[i] for i in part}) == 1
        # dealt to world_size per-device batches of one megabatch, each of similar total length
        batches = [part[k:k + batch_size] for k in range(0, megabatch, batch_size)]
        assert sorted(i for b in batches for i in b) == sorted(part)
        totals = [sum(lengths[i] for i in b) for b in batches]
        assert max(totals) - min(totals) <= max(lengths[i] for i in part)


def test_one_modality_is_plain_length_grouping():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4]
    for flag in (True, False):
        assert modality_grouped_indices(lengths, [flag] * 8, 2, 2, draw(0)) == [4, 3, 0, 7, 2, 1, 6, 5]


def test_sampler_is_deterministic_per_seed_and_epoch():
    lengths, has_image = mixture(500, 0.06)
    sampler = ModalityLengthGroupedSampler(lengths, has_image, batch_size=4, world_size=2, seed=7)
    first = list(sampler)
    assert len(sampler) == 500 and list(sampler) == first
    assert first == modality_grouped_indices(lengths, has_image, 4, 2, draw(7))
    assert list(ModalityLengthGroupedSampler(lengths, has_image, batch_size=4, world_size=2, seed=7)) == first
    assert list(ModalityLengthGroupedSampler(lengths, has_image, batch_size=4, world_size=2, seed=8)) != first
    sampler.set_epoch(1)
    assert list(sampler) == modality_grouped_indices(lengths, has_image, 4, 2, draw(8)) != first


def test_lengths_and_flags_must_match():
    with pytest.raises(ValueError, match="3 lengths for 2 samples"):
        ModalityLengthGroupedSampler([1, 2, 3], [True, False], batch_size=1, world_size=1, seed=0)
