"""feature_cache_plan: cached features only while the encoder keeps its checkpoint weights."""

from __future__ import annotations

from pathlib import Path

import torch

from ablate.run.feature_plan import feature_cache_plan
from ablate.recipe.loading import load_recipe

TINY = Path(__file__).resolve().parents[2] / "recipes" / "tiny_easyvqa.yaml"


def test_frozen_encoder_everywhere_uses_the_cache_everywhere():
    assert feature_cache_plan(load_recipe(TINY)) == ([True, True], True)


def test_stages_after_the_encoder_trains_encode_afresh():
    recipe = load_recipe(TINY, ["stages.0.trainable.encoder=full"])
    assert feature_cache_plan(recipe) == ([False, False], False)
    recipe = load_recipe(TINY, ["stages.1.trainable.encoder={lora: {r: 4}}"])
    assert feature_cache_plan(recipe) == ([True, False], False)


def test_switched_off_means_no_cache_and_zero3_keeps_it():
    assert feature_cache_plan(load_recipe(TINY, ["data.feature_cache=false"])) == ([False, False], False)
    # ZeRO-3 stages store every image before their engine partitions the encoder (run.execute)
    zero3 = load_recipe(TINY, ["stages.1.deepspeed={zero_optimization: {stage: 3}}"])
    assert feature_cache_plan(zero3) == ([True, True], True)


class FlatEncoder(torch.nn.Module):
    """8x8 images -> 4 tokens of 48 numbers, counting calls (the encoder contract, no weights)."""

    cache_key, num_tokens, feature_dim = "flat-test", 4, 48

    def __init__(self):
        super().__init__()
        from transformers import CLIPImageProcessorPil

        self.image_processor = CLIPImageProcessorPil(size={"shortest_edge": 8}, crop_size={"height": 8, "width": 8})
        self.calls = 0

    def forward(self, pixel_values):
        self.calls += 1
        return pixel_values.reshape(pixel_values.shape[0], 4, 48)


def test_a_zero3_stage_stores_every_image_first_then_never_encodes(tmp_path):
    from types import SimpleNamespace

    from PIL import Image

    from ablate.data.aspect_ratio import pixel_values
    from ablate.features.cache import FeatureCache
    from ablate.run.execute import RunContext, _collator

    paths = []
    for i, size in enumerate([(8, 4), (4, 8), (6, 6)]):
        Image.new("RGB", size, (40 * i, 200, 0)).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    recipe = load_recipe(TINY, ["stages.1.deepspeed={zero_optimization: {stage: 3}}", "stages.1.image_aspect_ratio=pad"])
    encoder = FlatEncoder()
    caches = [FeatureCache(tmp_path / "c", encoder), FeatureCache(tmp_path / "c", encoder, image_aspect_ratio="pad")]
    vlm = SimpleNamespace(tokenizer=None, image_processor=encoder.image_processor, encoder=encoder)
    ctx = RunContext(recipe, vlm, None, None, None, None, False, caches, None)
    data = {"image": paths + [None, paths[0]]}

    # A plain one-process stage encodes as batches come.
    plain = _collator(ctx, 0, data)
    assert (plain.image_aspect_ratio, plain.batch_feature_lookup, len(caches[0])) == ("square", caches[0].batch_lookup, 0)
    # The ZeRO-3 stage: every image stored now, before its engine would partition the encoder.
    zero3 = _collator(ctx, 1, data)
    assert (zero3.image_aspect_ratio, zero3.batch_feature_lookup) == ("pad", caches[1].stored_lookup)
    assert len(caches[1]) == 3 and encoder.calls == 1
    rows = [{"id": str(i), "input_ids": [1], "labels": [1], "image": p} for i, p in enumerate(paths)]
    batch = zero3(rows)
    expected = encoder(pixel_values([Image.open(p).convert("RGB") for p in paths], encoder.image_processor, "pad"))
    assert torch.equal(batch["image_features"], expected) and encoder.calls == 2  # the 2nd call: `expected`
