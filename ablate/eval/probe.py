"""Linear probes on a frozen vision encoder's features: how much of an attribute (an easy-VQA
image's shape or colour) its features expose, as the test accuracy of a least-squares linear
classifier fitted on mean-pooled features.

    encoder = registries().encoder.get("hf_clip").build({"type": "hf_clip", "name_or_path": "zoo:tiny-clip-easyvqa"})
    train_x = mean_pooled_features(encoder, train_paths)
    probe_accuracy(train_x, train_labels, mean_pooled_features(encoder, test_paths), test_labels)

Used by `benchmarks/clip_probe.py` and the studies' `layer_probe` diagnostic.
"""

from __future__ import annotations

import numpy as np


def mean_pooled_features(encoder, paths: list[str], batch: int = 256) -> np.ndarray:
    """One row per image: the encoder's output tokens averaged (the encoder's layer and selection)."""
    import torch
    from PIL import Image

    out = []
    for start in range(0, len(paths), batch):
        images = []
        for path in paths[start:start + batch]:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        pixels = encoder.image_processor(images=images, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            out.append(encoder(pixels.to(encoder.dtype)).float().mean(dim=1).numpy())
    return np.concatenate(out)


def probe_accuracy(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray, test_y: list[str]) -> float:
    """Test accuracy of a least-squares linear probe (one-hot targets, a bias column) fitted on train."""
    classes = sorted(set(train_y))
    targets = np.eye(len(classes))[[classes.index(y) for y in train_y]]
    weights = np.linalg.lstsq(np.c_[train_x, np.ones(len(train_x))], targets, rcond=None)[0]
    predicted = (np.c_[test_x, np.ones(len(test_x))] @ weights).argmax(1)
    return float(np.mean([classes[p] == y for p, y in zip(predicted, test_y)]))
