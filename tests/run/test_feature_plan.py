"""feature_cache_plan: cached features only while the encoder keeps its checkpoint weights."""

from __future__ import annotations

from pathlib import Path

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


def test_switched_off_or_zero3_means_no_cache():
    assert feature_cache_plan(load_recipe(TINY, ["data.feature_cache=false"])) == ([False, False], False)
    zero3 = load_recipe(TINY, ["stages.1.deepspeed={zero_optimization: {stage: 3}}"])
    assert feature_cache_plan(zero3) == ([False, False], False)
    zero2 = load_recipe(TINY, ["stages.1.deepspeed=zero2.json"])  # the shipped config, found by name
    assert feature_cache_plan(zero2) == ([True, True], True)
    missing = load_recipe(TINY, ["stages.1.deepspeed=missing.json"])  # left for training that stage to report
    assert feature_cache_plan(missing) == ([True, True], True)
