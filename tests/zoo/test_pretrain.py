"""The contrastively pretrained zoo CLIP, built here with a few steps instead of the real 600."""

import dataclasses
import json

import pytest
import torch

from ablate import zoo
from ablate.zoo.pretrain import DistinctCaptionBatches

SHORT = {"steps": 3, "lr": 1e-3, "batch_size": 6}


@pytest.fixture
def short_spec(monkeypatch):
    spec = dataclasses.replace(zoo.ZOO["tiny-clip-easyvqa"], pretrain=SHORT)
    monkeypatch.setitem(zoo.ZOO, "tiny-clip-easyvqa", spec)
    return spec


def test_batches_hold_distinct_captions_and_repeat_for_a_seed():
    captions = [i % 5 for i in range(40)]
    pixels = torch.arange(40.0).view(40, 1)
    stream = DistinctCaptionBatches(pixels, captions, num_captions=5, batch_size=4, seed=7)
    items = [item for _, item in zip(range(40), stream)]
    for start in range(0, 40, 4):
        block = items[start:start + 4]
        assert len({item["caption"] for item in block}) == 4
        assert all(captions[int(item["pixel_values"])] == item["caption"] for item in block)
    again = [item["caption"] for _, item in zip(range(40), stream)]
    assert again == [item["caption"] for item in items]


def test_batch_size_is_capped_by_the_number_of_captions():
    stream = DistinctCaptionBatches(torch.zeros(6, 1), [0, 1, 2, 0, 1, 2], num_captions=3, batch_size=24, seed=0)
    assert stream.batch_size == 3


def test_pretrained_entry_is_a_full_clip_checkpoint(tmp_path, short_spec):
    path = zoo.build("tiny-clip-easyvqa", dest=tmp_path / "clip")
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "clip"
    assert config["vision_config"]["hidden_size"] == zoo.TINY_CLIP["hidden_size"]
    assert (path / "tokenizer.json").exists() and (path / "preprocessor_config.json").exists()
    assert not (path / ".trainer").exists()
    assert json.loads((path / zoo.SPEC_FILE).read_text())["pretrain"] == SHORT


def test_pretraining_changes_the_seeded_tower_and_is_deterministic(tmp_path, short_spec):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    a = zoo.build("tiny-clip-easyvqa", dest=tmp_path / "a")
    b = zoo.build("tiny-clip-easyvqa", dest=tmp_path / "b")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    trained = CLIPVisionModel.from_pretrained(a)
    torch.manual_seed(short_spec.seed)
    untrained = CLIPVisionModel(CLIPVisionConfig(**zoo.TINY_CLIP))
    patch = lambda model: next(v for k, v in model.state_dict().items() if k.endswith("patch_embedding.weight"))
    assert not torch.equal(patch(trained), patch(untrained))


def test_hf_clip_encoder_loads_the_pretrained_entry(tmp_path, short_spec):
    from ablate.registry import registries

    path = zoo.build("tiny-clip-easyvqa", dest=tmp_path / "clip")
    config = {"type": "hf_clip", "name_or_path": str(path), "feature_layer": -2}
    encoder = registries().encoder.get("hf_clip").build(config)
    with torch.no_grad():
        features = encoder(torch.randn(2, 3, 64, 64))
    assert features.shape == (2, 64, zoo.TINY_CLIP["hidden_size"])
