"""ablate.eval.probe: exact scores on toy features, and one row per image from a zoo tower."""

from __future__ import annotations

import numpy as np
import pytest

from ablate.eval.probe import mean_pooled_features, probe_accuracy


def test_probe_separates_separable_features_and_fails_on_noise():
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"] * 40
    centres = {"a": [5, 0], "b": [0, 5], "c": [-5, -5]}
    features = np.array([centres[y] for y in labels]) + rng.normal(0, 0.1, (120, 2))
    assert probe_accuracy(features[:90], labels[:90], features[90:], labels[90:]) == 1.0
    # Test labels a and b swapped: only the c third is right.
    swapped = [{"a": "b", "b": "a"}.get(y, y) for y in labels[90:]]
    assert probe_accuracy(features[:90], labels[:90], features[90:], swapped) == pytest.approx(1 / 3)


def test_features_are_the_mean_of_the_encoders_tokens():
    import easy_vqa
    import torch
    from PIL import Image

    from ablate.registry import registries

    encoder = registries().encoder.get("hf_clip").build({"type": "hf_clip", "name_or_path": "zoo:tiny-clip"})
    paths = [str(p) for p in list(easy_vqa.get_test_image_paths().values())[:3]]
    features = mean_pooled_features(encoder, paths, batch=2)
    assert features.shape == (3, encoder.feature_dim)
    with Image.open(paths[0]) as image:
        pixels = encoder.image_processor(images=[image.convert("RGB")], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = encoder(pixels).mean(dim=1)[0].numpy()
    assert np.allclose(features[0], expected, atol=1e-6)
