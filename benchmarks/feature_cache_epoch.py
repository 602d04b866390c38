"""One epoch of data loading + forward, with and without the frozen-encoder feature cache.

Uses tiny_easyvqa's instruct stage (conversation style, one sample per image) on the first
N easy-VQA training images, its model (tiny CLIP + MLP + tiny Llama) and batch size. Each
epoch runs the stage's DataLoader through the collator and a forward pass (no backward, so the
encoder's share stays visible); hooks time the encoder's own calls. Variants:

    plain   the collator returns pixel_values; the model runs the encoder every batch
    cold    the collator reads a FeatureCache that starts empty (encodes misses, stores them)
    warm    the same cache again: every image is a hit, the encoder never runs

Epochs alternate (plain, warm, plain, warm, ...) so load from other processes hits both alike;
medians are reported. The cache lives in a temporary folder.

    python benchmarks/feature_cache_epoch.py               # 200 images, 3 repeats
    python benchmarks/feature_cache_epoch.py --images 64 --repeats 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from ablate.data.collate import VLMCollator
    from ablate.features.cache import FeatureCache

    torch.set_num_threads(args.threads)
    vlm, stage, dataset = _instruct_stage(args.images)
    epoch = _epoch_timer(vlm, stage, dataset)
    plain = VLMCollator(tokenizer=vlm.tokenizer, image_processor=vlm.image_processor)
    with tempfile.TemporaryDirectory() as root:
        cache = FeatureCache(root, vlm.encoder)
        cached = VLMCollator(tokenizer=vlm.tokenizer, image_processor=vlm.image_processor,
                             batch_feature_lookup=cache.batch_lookup)
        epoch(plain)  # warm-up: imports, allocator, first-call overheads
        cold = epoch(cached)
        assert cache.counts() == {"hits": 0, "misses": len(dataset)}, cache.counts()
        runs: dict[str, list[tuple[float, float, float]]] = {"plain": [], "warm": []}
        for _ in range(args.repeats):
            runs["plain"].append(epoch(plain))
            runs["warm"].append(epoch(cached))
        disk_mb = sum(p.stat().st_size for p in Path(cache.directory).iterdir()) / 2**20

    print(f"{len(dataset)} samples / {args.images} images, batch {stage.batch_size}, "
          f"{args.threads} thread(s), median of {args.repeats}; cache on disk {disk_mb:.1f} MiB")
    _print_rows({"plain": _median(runs["plain"]), "cold": cold, "warm": _median(runs["warm"])})


def _instruct_stage(images: int):
    """tiny_easyvqa's model and instruct stage on the first `images` images: (vlm, stage, dataset)."""
    from ablate.model.build import build_vlm
    from ablate.model.trainable import apply_trainable
    from ablate.recipe.loading import load_recipe
    from ablate.registry import registries
    from ablate.run.execute import tokenize

    recipe = load_recipe(REPO / "recipes" / "tiny_easyvqa.yaml", [f"stages.1.data.sources.0.source.images_limit={images}"])
    stage = recipe.stages[1]
    vlm = build_vlm(recipe.model)
    apply_trainable(vlm, stage.trainable)
    regs = registries()
    mixture = regs.mixture.get(stage.data.type).build(stage.data, answer_format=None)
    template = regs.template.get(stage.template.type).build(stage.template)
    dataset = tokenize(mixture, template, vlm.tokenizer, recipe, stage)
    vlm.max_length = stage.max_length
    return vlm, stage, dataset


def _epoch_timer(vlm, stage, dataset):
    """epoch(collator) -> seconds (in the DataLoader + collator, in forward, in the encoder) for
    one pass over the data; hooks time the encoder wherever it is called from (what a warm cache removes)."""
    import torch
    from torch.utils.data import DataLoader

    encoder_s, started = [0.0], []

    def encoder_starts(*_):
        started.append(time.perf_counter())

    def encoder_ends(*_):
        encoder_s[0] += time.perf_counter() - started.pop()

    vlm.encoder.register_forward_pre_hook(encoder_starts)
    vlm.encoder.register_forward_hook(encoder_ends)

    def epoch(collator) -> tuple[float, float, float]:
        loader = DataLoader(dataset, batch_size=stage.batch_size, collate_fn=collator, shuffle=False)
        load_s = forward_s = encoder_s[0] = 0.0
        it = iter(loader)
        with torch.no_grad():
            while True:
                t0 = time.perf_counter()
                try:
                    batch = next(it)
                except StopIteration:
                    break
                t1 = time.perf_counter()
                vlm(**batch)
                forward_s += time.perf_counter() - t1
                load_s += t1 - t0
        return load_s, forward_s, encoder_s[0]

    return epoch


def _print_rows(rows: dict[str, tuple[float, float, float]]) -> None:
    print(f"{'variant':8} {'load+collate s':>15} {'forward s':>10} {'epoch s':>8} {'in encoder s':>13}")
    for name, (load_s, forward_s, enc_s) in rows.items():
        print(f"{name:8} {load_s:15.2f} {forward_s:10.2f} {load_s + forward_s:8.2f} {enc_s:13.2f}")
    base = rows["plain"][0] + rows["plain"][1]
    for name in ("cold", "warm"):
        print(f"{name} epoch = {(rows[name][0] + rows[name][1]) / base:.2f} x plain")


def _median(runs: list[tuple[float, ...]]) -> tuple[float, ...]:
    return tuple(statistics.median(column) for column in zip(*runs))


if __name__ == "__main__":
    main()
