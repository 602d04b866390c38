"""The paper recipes carry LLaVA's training settings, each with the script it comes from."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

# recipe -> per stage (ZeRO stage, image_aspect_ratio, group_by_modality_length), and the scripts its notes cite
LLAVA = {
    "llava_v1_13b.yaml": ([(2, "square", False), (2, "square", False)], ["scripts/pretrain.sh", "scripts/finetune.sh"]),
    "llava_v1_7b.yaml": ([(2, "square", False), (2, "square", False)], ["scripts/pretrain.sh", "scripts/finetune.sh"]),
    "llava_v1_5_13b.yaml": ([(2, "square", False), (3, "pad", True)],
                            ["scripts/v1_5/pretrain.sh", "scripts/v1_5/finetune.sh"]),
    "llava_v1_5_13b_lora.yaml": ([(2, "square", False), (3, "pad", True)],
                                 ["scripts/v1_5/pretrain.sh", "scripts/v1_5/finetune_lora.sh"]),
    "llava_v1_13b_scienceqa.yaml": ([(2, "square", False)], ["scripts/finetune_sqa.sh"]),
    "llava_v1_13b_pretrain_scienceqa.yaml": ([(2, "square", False), (2, "square", False)],
                                             ["scripts/pretrain.sh", "scripts/finetune_sqa.sh"]),
}


@pytest.mark.parametrize("name", sorted(LLAVA))
def test_paper_recipes_use_llava_script_settings(name):
    from ablate.recipe.deepspeed import zero_stage
    from ablate.train.stage import deepspeed_settings

    expected, scripts = LLAVA[name]
    recipe = load_recipe(RECIPES / name)
    got = [(zero_stage(deepspeed_settings(s, RECIPES)), s.image_aspect_ratio, s.group_by_modality_length)
           for s in recipe.stages]
    assert not any(s.group_by_length for s in recipe.stages)  # LLaVA groups by modality, or not at all
    assert got == expected
    for stage in recipe.stages:  # every LLaVA script: --tf32 True, --dataloader_num_workers 4, no clipping
        assert (stage.tf32, stage.dataloader_workers, stage.max_grad_norm) == (True, 4, None)
        assert deepspeed_settings(stage, RECIPES)["gradient_clipping"] == "auto"  # filled from max_grad_norm: 0
    assert recipe.eval_aspect_ratio() == expected[-1][1]  # eval prepares images as the model was tuned
    text = (RECIPES / name).read_text()
    assert all(script in text for script in scripts)


def test_llava_v1_5_lora_recipe_is_finetune_lora_sh():
    """scripts/v1_5/finetune_lora.sh: --lora_r 128 --lora_alpha 256 --mm_projector_lr 2e-5
    --learning_rate 2e-4 (LLaVA's lora_dropout 0.05, lora_bias none); the rest is finetune.sh's."""
    full, lora = (load_recipe(RECIPES / f"llava_v1_5_13b{s}.yaml") for s in ("", "_lora"))
    assert full.stages[0] == lora.stages[0]
    tuned = lora.stages[1]
    assert (tuned.trainable.encoder, tuned.trainable.connector) == ("frozen", "full")
    settings = tuned.trainable.llm.lora
    assert (settings.r, settings.lora_alpha, settings.lora_dropout, settings.target_modules, settings.bias) == (
        128, 256, 0.05, "all-linear", "none")
    assert (tuned.lr, tuned.connector_lr) == (2e-4, 2e-5)
    unchanged = {"trainable", "lr", "connector_lr"}
    assert tuned.model_dump(exclude=unchanged) == full.stages[1].model_dump(exclude=unchanged)


@pytest.mark.parametrize("name", ["llava_v1_13b_scienceqa.yaml", "llava_v1_13b_pretrain_scienceqa.yaml"])
def test_llava_v1_scienceqa_prompts_as_llava_evaluates_it(name):
    """Training renders conv_vicuna_v1 (finetune_sqa.sh --version v1); evaluation conv_llava_v1
    (sqa_eval_batch.sh --conv-mode llava_v1), which differs only in its system prompt."""
    from ablate.registry import registries
    from ablate.run.evaluation import eval_template

    recipe = load_recipe(RECIPES / name)
    turns = [{"from": "human", "value": "Which is a mammal?\n<image>"}, {"from": "gpt", "value": "The answer is A."}]
    human = ("A chat between a curious human and an artificial intelligence assistant. "
             "The assistant gives helpful, detailed, and polite answers to the human's questions.")
    assert eval_template(recipe).render_prompt(turns) == f"{human} USER: <image>\nWhich is a mammal? ASSISTANT:"
    stage = recipe.stages[-1].template
    trained = registries().template.get(stage.type).build(stage).render(turns)
    assert trained == (human.replace("human", "user") + " USER: <image>\nWhich is a mammal? ASSISTANT: "
                       "The answer is A.</s>")


def test_tiny_recipes_keep_their_measured_settings():
    for name in ("tiny_easyvqa.yaml", "tiny_scienceqa.yaml"):
        for stage in load_recipe(RECIPES / name).stages:
            assert (stage.max_grad_norm, stage.tf32, stage.image_aspect_ratio) == (1.0, False, "square")


def test_bad_image_aspect_ratio_names_the_field(tmp_path):
    from ablate.errors import RecipeError

    with pytest.raises(RecipeError, match=r"stages\.0\.image_aspect_ratio \(-s stages\.0\.image_aspect_ratio=crop\): "
                                          r"Input should be 'square', 'pad' or 'resize' \(got 'crop'\)"):
        load_recipe(RECIPES / "tiny_easyvqa.yaml", ["stages.0.image_aspect_ratio=crop"])
    with pytest.raises(RecipeError, match=r"stages\.0\.max_grad_norm .*: Input should be greater than or equal to 0"):
        load_recipe(RECIPES / "tiny_easyvqa.yaml", ["stages.0.max_grad_norm=-1"])
    pad = load_recipe(RECIPES / "tiny_easyvqa.yaml", ["stages.1.image_aspect_ratio=pad"])
    assert pad.eval_aspect_ratio() == "pad"
    assert load_recipe(RECIPES / "tiny_easyvqa.yaml", ["stages.1.image_aspect_ratio=pad",
                                                      "eval.image_aspect_ratio=resize"]).eval_aspect_ratio() == "resize"
