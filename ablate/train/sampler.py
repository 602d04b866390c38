"""LLaVA's `group_by_modality_length` sampler: text-only and image batches apart, each length-grouped.

LLaVA-1.5 trains mix665k with it (scripts/v1_5/finetune.sh). The order of one epoch:

1. The image samples and the text-only samples are each put in length-grouped order
   (`length_grouped_indices`), one torch generator drawing for both.
2. Each order is cut into megabatches of `world_size x batch_size`. The last megabatch of each
   modality (complete or not) is set aside; the other megabatches of both modalities are
   shuffled together.
3. The two set-aside megabatches, merged in index order, go last: only there can a per-device
   batch hold both modalities.

Length-grouped order: a random permutation cut into megabatches, each sorted longest first
and dealt into `world_size` chunks of equal size and similar total length.

The lengths are LLaVA's estimate, the words of every turn of the record (`ablate.data.pipeline`).
With one modality only, both LLaVA and this sampler fall back to plain length grouping; LLaVA
then sorts a text-only set by its negative lengths (shortest first), here by the word counts
themselves (longest first, as for every other megabatch): the order is a random draw either way.
`world_size` is LLaVA's: ranks x gradient accumulation steps, so one megabatch is one optimizer
step of per-device batches. transformers' LengthGroupedSampler has neither the modality split
nor the balanced chunks, so it cannot stand in.
"""

from __future__ import annotations

from typing import Sequence

import torch


def balanced_chunks(indices: list[int], lengths: Sequence[int], chunks: int) -> list[list[int]]:
    """Deal `indices` (longest first) into `chunks` lists of equal size: each index goes to the
    chunk with the smallest total length that is not yet full. When the count does not divide,
    every `chunks`-th index instead (as LLaVA does for a short last megabatch)."""
    if len(indices) % chunks:
        return [indices[start::chunks] for start in range(chunks)]
    size = len(indices) // chunks
    dealt: list[list[int]] = [[] for _ in range(chunks)]
    totals = [0.0] * chunks
    for index in indices:
        smallest = totals.index(min(totals))
        dealt[smallest].append(index)
        totals[smallest] += lengths[index]
        if len(dealt[smallest]) == size:
            totals[smallest] = float("inf")  # full: never the smallest again
    return dealt


def length_grouped_indices(lengths: Sequence[int], batch_size: int, world_size: int,
                           generator: torch.Generator) -> list[int]:
    """A permutation of range(len(lengths)) in which each megabatch of `world_size x batch_size`
    is sorted by length and split into `world_size` batches of similar total length."""
    megabatch = world_size * batch_size
    order = torch.randperm(len(lengths), generator=generator).tolist()
    out: list[int] = []
    for start in range(0, len(order), megabatch):
        longest_first = sorted(order[start:start + megabatch], key=lengths.__getitem__, reverse=True)
        for chunk in balanced_chunks(longest_first, lengths, world_size):
            out.extend(chunk)
    return out


def modality_grouped_indices(lengths: Sequence[int], has_image: Sequence[bool], batch_size: int, world_size: int,
                             generator: torch.Generator) -> list[int]:
    """LLaVA's modality-length-grouped order of one epoch (see the module docstring)."""
    image = [i for i, flag in enumerate(has_image) if flag]
    text = [i for i, flag in enumerate(has_image) if not flag]
    if not image or not text:  # one modality: plain length grouping
        return length_grouped_indices(lengths, batch_size, world_size, generator)
    megabatch = world_size * batch_size
    parts = []  # per modality: its length-grouped order, cut into megabatches
    for members in (image, text):
        order = [members[k] for k in length_grouped_indices([lengths[i] for i in members], batch_size, world_size,
                                                            generator)]
        parts.append([order[start:start + megabatch] for start in range(0, len(order), megabatch)])
    (*image_full, image_last), (*text_full, text_last) = parts
    complete = image_full + text_full
    shuffled = [complete[k] for k in torch.randperm(len(complete), generator=generator).tolist()]
    return [i for part in shuffled for i in part] + sorted(image_last + text_last)


class ModalityLengthGroupedSampler(torch.utils.data.Sampler):
    """The indices of `modality_grouped_indices`, drawn anew each epoch from (seed, epoch).

    Every rank draws the same order (the Trainer's DataLoader then gives each rank its share of
    the batches), and a resumed epoch replays the interrupted one's order.
    """

    def __init__(self, lengths: Sequence[int], has_image: Sequence[bool], *, batch_size: int, world_size: int,
                 seed: int):
        if len(lengths) != len(has_image):
            raise ValueError(f"{len(lengths)} lengths for {len(has_image)} samples")
        self.lengths, self.has_image = list(lengths), list(has_image)
        self.batch_size, self.world_size, self.seed = batch_size, world_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(modality_grouped_indices(self.lengths, self.has_image, self.batch_size, self.world_size, generator))
