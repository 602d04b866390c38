"""benchmarks/clip_probe.py: the probe scores exact values on toy features and runs on a zoo tower."""

from __future__ import annotations

from bench_scripts import load_script


import numpy as np
import pytest



@pytest.fixture(scope="module")
def probe():
    return load_script("clip_probe")


def test_probe_separates_separable_features_and_fails_on_noise(probe):
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"] * 40
    centres = {"a": [5, 0], "b": [0, 5], "c": [-5, -5]}
    features = np.array([centres[y] for y in labels]) + rng.normal(0, 0.1, (120, 2))
    assert probe.probe_accuracy(features[:90], labels[:90], features[90:], labels[90:]) == 1.0
    # Test labels a and b swapped: only the c third is right.
    swapped = [{"a": "b", "b": "a"}.get(y, y) for y in labels[90:]]
    assert probe.probe_accuracy(features[:90], labels[:90], features[90:], swapped) == pytest.approx(1 / 3)


def test_encode_mean_pools_one_row_per_image(probe):
    import easy_vqa

    from ablate.registry import registries

    encoder = registries().encoder.get("hf_clip").build({"type": "hf_clip", "name_or_path": "zoo:tiny-clip"})
    paths = [str(p) for p in list(easy_vqa.get_test_image_paths().values())[:5]]
    features = probe.encode(encoder, paths, batch=2)
    assert features.shape == (5, encoder.feature_dim)
