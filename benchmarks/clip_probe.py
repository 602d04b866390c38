"""How much shape and colour a frozen zoo CLIP exposes: linear probes on its features.

Loads a zoo entry through ablate's `hf_clip` encoder (the recipe's code path), encodes easy-VQA
train images (probe fit) and test images (probe score), mean-pools the selected layer's patch
features and fits a least-squares linear probe per attribute. Prints test accuracy per entry
and the ratio of pretrained to untrained.

    python benchmarks/clip_probe.py                              # tiny-clip vs tiny-clip-easyvqa
    python benchmarks/clip_probe.py --entries tiny-clip-easyvqa --feature-layer -1
"""

from __future__ import annotations

import argparse
import time

from ablate.eval.probe import mean_pooled_features as encode  # the probe itself lives in the package
from ablate.eval.probe import probe_accuracy

__all__ = ["encode", "probe_accuracy", "main"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", nargs="+", default=["tiny-clip", "tiny-clip-easyvqa"])
    parser.add_argument("--feature-layer", type=int, default=-2)
    parser.add_argument("--train-images", type=int, default=2000, help="images the probe is fitted on")
    args = parser.parse_args()

    from transformers.utils import logging as hf_logging

    from ablate.data.sources.easyvqa import EasyVQAConfig, build_easy_vqa
    from ablate.registry import registries

    hf_logging.disable_progress_bar()

    def captions(split: str):
        return list(build_easy_vqa(EasyVQAConfig(type="easy_vqa", split=split, style="caption")).samples())

    train, test = captions("train")[: args.train_images], captions("test")
    results = {}
    for entry in args.entries:
        t0 = time.perf_counter()
        encoder = registries().encoder.get("hf_clip").build(
            {"type": "hf_clip", "name_or_path": f"zoo:{entry}", "feature_layer": args.feature_layer})
        train_x, test_x = encode(encoder, [s["image"] for s in train]), encode(encoder, [s["image"] for s in test])
        results[entry] = {
            attr: probe_accuracy(train_x, [s["meta"][attr] for s in train], test_x, [s["meta"][attr] for s in test])
            for attr in ("shape", "color")
        }
        print(f"{entry:<20} layer {args.feature_layer}: shape {results[entry]['shape']:.3f}  "
              f"colour {results[entry]['color']:.3f}  ({len(test)} test images, {time.perf_counter() - t0:.0f}s "
              "incl. any zoo build)", flush=True)
    if len(results) == 2:
        (a, ra), (b, rb) = results.items()
        print(f"ratio {b}/{a}: shape {rb['shape'] / ra['shape']:.2f}, colour {rb['color'] / ra['color']:.2f}")


if __name__ == "__main__":
    main()
