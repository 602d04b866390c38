"""How many training batches mix text-only and image samples, per sampler, on a mix665k-shaped set.

LLaVA-1.5 trains mix665k (about 6% text-only ShareGPT) with `group_by_modality_length`. Text-
length grouping (`group_by_length`: transformers' LengthGroupedSampler over token counts, the
image counted as its one placeholder token) puts text-only and image samples of similar length in
one batch; LLaVA's sampler (`ablate.train.sampler`) keeps them apart except in the last batches.

The length list is generated, not read: one record per mix665k source with its record count
(LLaVA-1.5's mixture table) and a log-normal word count around a typical size of that source's
records (a guess at the shape, not a measurement); tokens are about 1.3 per word plus the
vicuna_v1 system prompt and roles, cut at 2048. Batches are per device, LLaVA-1.5's finetune
settings by default: 16 per device, 8 GPUs, no accumulation.

    python benchmarks/modality_batches.py
    python benchmarks/modality_batches.py --scale 0.1 --seed 1
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# source: (records, has an image, median words, log-normal sigma)
MIX665K = {
    "llava_instruct_158k": (157_712, True, 150, 0.6),
    "sharegpt": (40_688, False, 600, 1.0),
    "vqav2": (83_000, True, 60, 0.5),
    "gqa": (72_000, True, 80, 0.5),
    "okvqa": (9_000, True, 25, 0.4),
    "ocrvqa": (80_000, True, 70, 0.4),
    "a_okvqa": (66_000, True, 40, 0.4),
    "textcaps": (22_000, True, 25, 0.3),
    "refcoco": (48_000, True, 60, 0.5),
    "vg": (86_000, True, 70, 0.5),
}
PROMPT_TOKENS = 40  # vicuna_v1's system prompt and role names, roughly
MAX_TOKENS = 2048


def mix665k_shaped(scale: float = 1.0, seed: int = 0) -> tuple[list[int], list[int], list[bool]]:
    """(words per record, tokens per record as group_by_length sees them, has an image), shuffled."""
    rng = random.Random(seed)
    rows = []
    for count, has_image, median, sigma in MIX665K.values():
        for _ in range(round(count * scale)):
            words = max(1, round(rng.lognormvariate(0, sigma) * median))
            tokens = min(MAX_TOKENS, PROMPT_TOKENS + round(1.3 * words) + int(has_image))
            rows.append((words, tokens, has_image))
    rng.shuffle(rows)
    words, tokens, has_image = (list(column) for column in zip(*rows))
    return words, tokens, has_image


def mixed_share(order: list[int], has_image: list[bool], batch_size: int) -> tuple[int, int]:
    """(batches holding both modalities, batches) when `order` is cut into per-device batches."""
    batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    mixed = sum(1 for batch in batches if len({has_image[i] for i in batch}) == 2)
    return mixed, len(batches)


def measure(scale: float = 1.0, seed: int = 0, batch_size: int = 16, world_size: int = 8,
            grad_accum: int = 1) -> dict[str, tuple[int, int, float]]:
    """{sampler: (mixed batches, batches, seconds to draw the order)} for one epoch."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from ablate.train.sampler import ModalityLengthGroupedSampler

    words, tokens, has_image = mix665k_shaped(scale, seed)
    torch.manual_seed(seed)  # transformers' sampler draws from torch's global generator
    samplers = {
        "random": torch.utils.data.RandomSampler(range(len(words)), generator=torch.Generator().manual_seed(seed)),
        "group_by_length (tokens, image = 1)": LengthGroupedSampler(batch_size * grad_accum, lengths=tokens),
        "group_by_modality_length (LLaVA)": ModalityLengthGroupedSampler(
            words, has_image, batch_size=batch_size, world_size=world_size * grad_accum, seed=seed),
    }
    results = {}
    for name, sampler in samplers.items():
        start = time.perf_counter()
        order = list(sampler)
        seconds = time.perf_counter() - start
        results[name] = (*mixed_share(order, has_image, batch_size), seconds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="share of mix665k's record counts (1: 664,400)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16, help="per device")
    parser.add_argument("--world-size", type=int, default=8)
    parser.add_argument("--grad-accum", type=int, default=1)
    args = parser.parse_args()
    results = measure(args.scale, args.seed, args.batch_size, args.world_size, args.grad_accum)
    for name, (mixed, batches, seconds) in results.items():
        print(f"{name:38s} {mixed:6d} of {batches} batches mix modalities ({100 * mixed / batches:.3f}%), "
              f"order drawn in {seconds:.1f} s")
    mixed, batches, _ = results["group_by_modality_length (LLaVA)"]
    print(f"group_by_modality_length: {100 * mixed / batches:.3f}% mixed batches (goal < 1%): "
          f"{'met' if mixed / batches < 0.01 else 'NOT met'}")


if __name__ == "__main__":
    main()
