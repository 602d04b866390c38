"""Parameter counts: the plan's (meta device, from config.json) against the real model's."""

from __future__ import annotations

from plan_helpers import cli_json, tiny_recipe, write

from ablate.model.build import build_vlm
from ablate.model.trainable import apply_trainable
from ablate.recipe.loading import recipe_from_dict


def test_counts_per_component_and_stage_equal_the_built_model(tiny_zoo, tmp_path, capsys):
    data = tiny_recipe()
    plan = cli_json(capsys, "plan", write(tmp_path / "tiny.yaml", data), "--gpus", "1")
    recipe = recipe_from_dict(data)
    real = build_vlm(recipe.model)
    for stage, planned in zip(recipe.stages, plan["stages"], strict=True):
        apply_trainable(real, stage.trainable)  # as a run does, LoRA merged before the next stage
        counts = real.parameter_counts()
        assert planned["params"] == {name: counts[name] for name in ("encoder", "connector", "llm")}
        assert planned["params_total"] == real.num_parameters()
        assert planned["params_trainable"] == real.num_parameters(only_trainable=True)
    assert plan["stages"][0]["params_trainable"] == counts["connector"]["total"]  # align: the connector alone
    assert 0 < plan["stages"][1]["params"]["llm"]["trainable"] < plan["stages"][1]["params"]["llm"]["total"]  # LoRA


def test_paper_checkpoints_absent_here_come_from_the_kit_at_full_size(capsys):
    plan = cli_json(capsys, "plan", "recipes/llava_v1_5_13b.yaml")
    notes = " ".join(plan["notes"])
    assert "openai/clip-vit-large-patch14-336: config from the rehearsal kit: real checkpoint not present" in notes
    assert "lmsys/vicuna-13b-v1.5: config from the rehearsal kit: real checkpoint not present" in notes
    params = plan["stages"][1]["params"]
    assert params["llm"]["total"] == 13_015_864_320  # Vicuna-13B (Llama-2-13B's shape)
    assert params["encoder"]["total"] == 303_507_456  # CLIP ViT-L/14-336's vision tower
    assert params["connector"] == {"total": 1024 * 5120 + 5120 + 5120 * 5120 + 5120, "trainable": 31_467_520}
    assert plan["stages"][0]["visual_tokens"] == (336 // 14) ** 2 == 576
