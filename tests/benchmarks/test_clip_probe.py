"""benchmarks/clip_probe.py: the package's probe (tests/eval/test_probe.py) on a zoo tower."""

from __future__ import annotations

from bench_scripts import load_script


import pytest


@pytest.fixture(scope="module")
def probe():
    return load_script("clip_probe")


def test_the_script_uses_the_packages_probe(probe):
    from ablate.eval import probe as package

    assert probe.probe_accuracy is package.probe_accuracy and probe.encode is package.mean_pooled_features


def test_encode_mean_pools_one_row_per_image(probe):
    import easy_vqa

    from ablate.registry import registries

    encoder = registries().encoder.get("hf_clip").build({"type": "hf_clip", "name_or_path": "zoo:tiny-clip"})
    paths = [str(p) for p in list(easy_vqa.get_test_image_paths().values())[:5]]
    features = probe.encode(encoder, paths, batch=2)
    assert features.shape == (5, encoder.feature_dim)
