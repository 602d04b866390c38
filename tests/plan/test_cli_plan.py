"""`ablate plan`: the JSON schema, the calibration against LLaVA-1.5's published hours, studies,
and bad input (exit 2, one message)."""

from __future__ import annotations

import pytest

from plan_helpers import REPO, cli, cli_json, tiny_recipe, write

STAGE_KEYS = {"name", "params_total", "params_trainable", "visual_tokens", "flops_per_sample", "memory_per_gpu_gib",
              "gpu_hours"}
LLAVA_15 = str(REPO / "recipes" / "llava_v1_5_13b.yaml")


def assert_stage_schema(stage: dict) -> None:
    assert STAGE_KEYS <= set(stage)
    assert isinstance(stage["name"], str)
    for key in STAGE_KEYS - {"name"}:
        assert isinstance(stage[key], (int, float)) and stage[key] > 0, (key, stage[key])


def test_recipe_json_schema(tiny_zoo, tmp_path, capsys):
    plan = cli_json(capsys, "plan", write(tmp_path / "tiny.yaml", tiny_recipe()), "--gpu", "h100-80g", "--gpus", "2")
    assert [s["name"] for s in plan["stages"]] == ["align", "instruct"]
    for stage in plan["stages"]:
        assert_stage_schema(stage)
        assert stage["visual_tokens"] == 64  # zoo:tiny-clip: 64 px, patch 8
        assert set(stage["length_distribution"]) == {"min", "median", "p95", "max"}
    assert plan["gpu_hours_total"] == pytest.approx(sum(s["gpu_hours"] for s in plan["stages"]), rel=1e-3)
    assert plan["stages"][1]["samples"] == 2 * plan["stages"][1]["records"]  # 2 epochs


def test_llava_v1_5_13b_lands_within_35_percent_of_the_published_hours(capsys):
    plan = cli_json(capsys, "plan", LLAVA_15, "--gpu", "a100-80g", "--gpus", "8")
    pretrain, finetune = plan["stages"]
    assert pretrain["published"]["hours"] == 5.5 and finetune["published"]["hours"] == 20
    for stage in (pretrain, finetune):
        assert stage["mfu"] == 0.3  # one stated MFU for all stages
        assert stage["published"]["ratio"] == pytest.approx(stage["gpu_hours"] / stage["published"]["hours"])
        assert 0.65 <= stage["published"]["ratio"] <= 1.35, stage["published"]
    seven = cli_json(capsys, "plan", LLAVA_15, "-s", "model.llm.name_or_path=lmsys/vicuna-7b-v1.5")
    assert seven["stages"][0]["published"]["hours"] == 3.5
    assert 0.65 <= seven["stages"][0]["published"]["ratio"] <= 1.35


def test_the_text_prints_the_ratio_and_says_where_configs_came_from(capsys):
    code, out = cli(capsys, "plan", LLAVA_15)
    flat = " ".join(out.split())
    assert code == 0, out
    assert "config from the rehearsal kit: real checkpoint not present" in flat
    assert "data files not present" in flat
    assert "estimate/published" in flat and "MFU 0.3" in flat


def test_study_cells_share_stages_counted_once(capsys):
    plan = cli_json(capsys, "plan", "scienceqa_format")
    assert [cell["name"] for cell in plan["cells"]] == ["reasoning-first · seed 42", "answer-first · seed 42"]
    for cell in plan["cells"]:
        for stage in cell["stages"]:
            assert_stage_schema(stage)
        assert cell["gpu_hours_total"] == pytest.approx(sum(s["gpu_hours"] for s in cell["stages"]), rel=1e-3)
    # Stage 1 reads no answer format: both arms train the same one, once.
    assert plan["cells"][1]["stages"][0]["shared_with"] == "reasoning-first · seed 42"
    first, second = (cell["gpu_hours_total"] for cell in plan["cells"])
    shared = plan["cells"][0]["stages"][0]["gpu_hours"]
    assert plan["gpu_hours_total"] == pytest.approx(first + second - shared, rel=1e-3)
    assert plan["gpu_hours_without_reuse"] == pytest.approx(first + second, rel=1e-3)


@pytest.mark.parametrize("args, words", [
    (["recipes/missing.yaml"], ["no recipe or study file 'recipes/missing.yaml'"]),
    ([LLAVA_15, "--gpu", "h100"], ["unknown --gpu 'h100'", "h100-80g"]),
    ([LLAVA_15, "--gpus", "0"], ["--gpus", "from 1 to 100,000", "got 0"]),
    ([LLAVA_15, "--mfu", "0"], ["--mfu", "(0, 1]"]),
    ([LLAVA_15, "--mfu", "1.5"], ["--mfu", "(0, 1]", "1.5"]),
    (["connector", "-s", "seed=1"], ["-s overrides recipe fields", "connector is a study"]),
])
def test_bad_input_exits_2_with_one_message(capsys, args, words):
    code, out = cli(capsys, "plan", *args)
    flat = " ".join(out.split())
    assert code == 2, out
    assert "Traceback" not in out and flat.count("error:") == 1
    for word in words:
        assert word in flat


def test_a_checkpoint_neither_here_nor_in_the_kit_is_named(tmp_path, capsys):
    data = tiny_recipe()
    data["model"]["llm"]["name_or_path"] = "someone/unknown-llm"
    code, out = cli(capsys, "plan", write(tmp_path / "r.yaml", data))
    assert code == 2 and "someone/unknown-llm" in out and "Traceback" not in out


def test_a_lora_target_that_does_not_exist_names_the_stage(tmp_path, capsys):
    data = tiny_recipe()
    data["stages"][1]["trainable"]["llm"] = {"lora": {"target_modules": ["no_such_layer"]}}
    code, out = cli(capsys, "plan", write(tmp_path / "r.yaml", data))
    assert code == 2 and "stages.instruct.trainable.llm.lora" in " ".join(out.split()), out
