"""The real checkpoints' configs the kit shrinks: one source (ablate.zoo.hub_layouts) for both."""

from __future__ import annotations

import pytest

from ablate.zoo.hub_layouts import vicuna_config
from ablate.zoo.kit.checkpoints import LLM_SHAPES, full_size_config

SHAPE_KEYS = {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
              "vocab_size"}


@pytest.mark.parametrize("repo, shape", [
    ("lmsys/vicuna-13b-v1.5", (5120, 13824, 40, 40, 40, 32000)),
    ("lmsys/vicuna-13b-v1.3", (5120, 13824, 40, 40, 40, 32000)),
    ("lmsys/vicuna-7b-v1.5", (4096, 11008, 32, 32, 32, 32000)),
])
def test_vicunas_at_full_size(repo, shape):
    config = full_size_config(repo)
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "vocab_size")
    assert tuple(config[k] for k in keys) == shape
    # The kit writes the same config with only the shape shrunk.
    size, version = repo.split("-")[1], repo.split("-")[-1]
    shrunk = vicuna_config(version, 800, LLM_SHAPES[size])
    assert {k: v for k, v in shrunk.items() if k not in SHAPE_KEYS} == {k: v for k, v in config.items()
                                                                        if k not in SHAPE_KEYS}


@pytest.mark.parametrize("repo, image_size", [("openai/clip-vit-large-patch14-336", 336),
                                               ("openai/clip-vit-large-patch14", 224)])
def test_clip_l_at_full_size(repo, image_size):
    vision = full_size_config(repo)["vision_config"]
    assert (vision["hidden_size"], vision["num_hidden_layers"], vision["intermediate_size"],
            vision["num_attention_heads"], vision["image_size"], vision["patch_size"]) == (
        1024, 24, 4096, 16, image_size, 14)


def test_repos_the_kit_does_not_stand_in_for():
    assert full_size_config("lmsys/vicuna-33b-v1.3") is None
