"""`ablate study NAME --scale paper --rehearse`: the paper recipes unchanged but for paths, steps,
eval.limit and where results go; every paper-scale cell of all six studies runs on the kit."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from ablate.errors import RecipeError
from ablate.recipe.loading import load_recipe, recipe_from_dict
from ablate.study.rehearsal import EVAL_LIMIT, MAX_STEPS, Rehearsal
from ablate.study.rehearsal.judge import ENV, stand_in_judge

REPO = Path(__file__).resolve().parents[2]
STUDIES = ("clip_layer", "connector", "data_types", "llm_scale", "scienceqa_format", "skip_pretraining")
PAPER_RECIPES = sorted(p.name for p in (REPO / "recipes").glob("*.yaml") if not p.name.startswith(("tiny_", "small_")))
# What a rehearsal may change: checkpoints, data files and folders, steps, eval.limit, filing.
CHANGEABLE = re.compile(r"^(model\..*name_or_path|model\.init_connector|stages\.\d+\.data\..*"
                        r"|stages\.\d+\.max_steps|eval\.data\..*|eval\.limit|output_dir|tracking\.experiment)$")


def leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, path + (str(key),))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, path + (str(index),))
    else:
        yield ".".join(path), node


@pytest.mark.parametrize("name", PAPER_RECIPES)
def test_a_rehearsal_changes_only_paths_steps_eval_limit_and_filing(rehearsal_kit, name):
    paper = load_recipe(REPO / "recipes" / name)
    rehearsed = Rehearsal(rehearsal_kit, "study").recipe(paper)
    before, after = dict(leaves(paper.resolved())), dict(leaves(rehearsed.resolved()))
    assert set(before) == set(after)
    changed = {path for path in before if before[path] != after[path]}
    assert {path for path in changed if not CHANGEABLE.match(path)} == set()
    assert all(stage.max_steps == MAX_STEPS for stage in rehearsed.stages)
    assert rehearsed.eval is None or rehearsed.eval.limit == EVAL_LIMIT
    assert (rehearsed.output_dir, rehearsed.tracking.experiment) == (
        "runs/rehearsal/study", paper.tracking.experiment + "-rehearsal")
    moved = [after[p] for p in changed if p not in ("output_dir", "tracking.experiment") and isinstance(after[p], str)]
    assert moved and all(value.startswith(str(rehearsal_kit.root)) and Path(value).exists() for value in moved)


def test_llava_1_5_maps_onto_the_kit_entry_by_entry(rehearsal_kit):
    rehearsal = Rehearsal(rehearsal_kit, "connector")
    rehearsal.recipe(load_recipe(REPO / "recipes" / "llava_v1_5_13b.yaml"))
    data, hub = rehearsal_kit.data, rehearsal_kit.checkpoint
    assert {path: new for (path, _), new in rehearsal.changes.items()} == {
        "model.encoder.name_or_path": str(hub("openai/clip-vit-large-patch14-336")),
        "model.llm.name_or_path": str(hub("lmsys/vicuna-13b-v1.5")),
        "stages.pretrain.data.source.path": str(data("LLaVA-Pretrain/blip_laion_cc_sbu_558k.json")),
        "stages.pretrain.data.source.image_root": str(data("LLaVA-Pretrain/images")),
        "stages.finetune.data.path": str(data("llava_v1_5_mix665k.json")),
        "stages.finetune.data.image_root": str(rehearsal_kit.root / "data"),
        "stages.*.max_steps": "2",
        "output_dir": "runs/rehearsal/connector",
        "tracking.experiment": "llava_v1_5-rehearsal",
    }


def test_what_the_kit_cannot_stand_in_for_is_named_together(rehearsal_kit):
    data = load_recipe(REPO / "recipes" / "llava_v1_13b_scienceqa.yaml").resolved()
    data["model"]["llm"]["name_or_path"] = "acme/vicuna-70b"
    data["model"]["init_connector"] = "/mnt/images"  # every image folder of the kit ends so
    data["eval"]["data"]["root"] = "/mnt/ScienceQA-v2"
    with pytest.raises(RecipeError) as caught:
        Rehearsal(rehearsal_kit, "s").recipe(recipe_from_dict(data))
    problems = {p.path: p.message for p in caught.value.problems}
    assert set(problems) == {"model.llm.name_or_path", "model.init_connector", "eval.data.root"}
    assert "has no stand-in for 'acme/vicuna-70b'" in problems["model.llm.name_or_path"]
    assert "lmsys/vicuna-13b-v1.3" in problems["model.llm.name_or_path"]  # what the kit holds instead
    assert problems["model.init_connector"].startswith("'/mnt/images' could be any of the kit's data/")


def test_a_stage_the_kit_cannot_fill_one_batch_of_is_named(rehearsal_kit):
    from ablate.study.rehearsal.notes import small_data_notes

    paper = load_recipe(REPO / "recipes" / "llava_v1_13b_scienceqa.yaml")
    rehearsed = Rehearsal(rehearsal_kit, "s").recipe(paper)
    assert small_data_notes([rehearsed]) == []  # 32 training problems: two batches of 16
    data = rehearsed.resolved()
    data["stages"][-1]["batch_size"] = 64
    assert small_data_notes([recipe_from_dict(data)]) == [
        "stage finetune (single): the kit gives 32 samples, fewer than one batch of 64; its 2 steps train on "
        "smaller batches than the recipe's"]


def test_lmms_eval_tasks_rehearse_on_stand_ins_that_take_their_names(rehearsal_kit, monkeypatch):
    """The connector study's paper cells score lmms-eval's mme, gqa and mmvet: the rehearsal puts the
    kit's stand-ins first in eval.include_path and points the pinned judge at the stand-in judge."""
    from ablate.run.lmms_harness import task_manager
    from ablate.study.cells import cell_recipe, expand_cells, seeds_for
    from ablate.study.schema import load_study

    study = load_study(REPO / "studies" / "connector.yaml")
    paper = cell_recipe(study, "paper", expand_cells(study, "paper", seeds_for(study, "paper"))[0])
    monkeypatch.setenv(ENV, "http://127.0.0.1:9/v1")
    rehearsed = Rehearsal(rehearsal_kit, "connector").recipe(paper)
    before, after = dict(leaves(paper.resolved())), dict(leaves(rehearsed.resolved()))
    changed = {path for path in set(before) | set(after) if before.get(path) != after.get(path)}
    assert {path for path in changed if not CHANGEABLE.match(path)} == {"eval.include_path.0", "eval.judge.endpoint"}
    assert rehearsed.eval.judge.endpoint == "http://127.0.0.1:9/v1" and rehearsed.eval.limit == EVAL_LIMIT
    folder = Path(rehearsed.eval.include_path[0])
    index = task_manager(rehearsed.eval.tasks, rehearsed.eval.include_path).task_index
    assert {task: Path(index[task]["yaml_path"]) for task in ("mme", "gqa", "mmvet")} == {
        task: folder / task / f"{task}.yaml" for task in ("mme", "gqa", "mmvet")}
    docs = json.loads((folder / "mme" / "mme.json").read_text())
    assert docs[0]["question_id"] == docs[1]["question_id"] and Path(docs[0]["image"]).is_file()  # an MME pair


def test_what_the_kit_cannot_rehearse_of_lmms_eval_is_named(rehearsal_kit, monkeypatch):
    data = load_recipe(REPO / "recipes" / "llava_v1_5_13b.yaml").resolved()
    data["eval"] = {"harness": "lmms_eval", "tasks": ["gqa", "textvqa_val"],
                    "judge": {"model": "gpt-4-0613", "endpoint": "https://api.openai.com/v1"}}
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(RecipeError) as caught:
        Rehearsal(rehearsal_kit, "s").recipe(recipe_from_dict(data))
    problems = {p.path: p.message for p in caught.value.problems}
    assert problems["eval.tasks"] == ("the rehearsal kit has no stand-in for lmms-eval task 'textvqa_val'; it holds "
                                      "mme, gqa, mmvet")
    assert problems["eval.judge.endpoint"].startswith(f"no stand-in judge is running ({ENV} is unset)")


def test_the_stand_in_judge_answers_the_real_judge(monkeypatch):
    from ablate.registry import registries

    monkeypatch.delenv(ENV, raising=False)
    with stand_in_judge() as url:
        assert os.environ[ENV] == url
        judge = registries().evaluator.get("gpt4_relative_score").build({"cache": False})
        record = judge.judge({"id": "1", "prompt": "<image>\nWhat colour?", "prediction": "Red.",
                              "answer": "It is red.", "meta": {"category": "conv"}})
        assert record["judge_scores"] == [0.7, 0.6] and not record["judge_failed"]
        bad = urllib.request.Request(f"{url}/chat/completions", data=b'{"model": "m"}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad)
        assert refused.value.code == 400
    assert ENV not in os.environ


def rehearse(study: str, cwd: Path) -> subprocess.CompletedProcess:
    """`ablate study STUDY --scale paper --rehearse` as a user runs it, in `cwd`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ablate.cli", "study", study, "--scale", "paper", "--rehearse"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)


def test_a_failing_cell_is_reported_with_its_error(tmp_path, empty_mlflow_db, rehearsal_kit):
    """The 13B stage-1 projector in a 7B model: the cell fails with the shapes, the rehearsal exits non-zero."""
    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    study = {
        "description": "A 7B model started from the 13B projector.",
        "scales": {"paper": {"base": str(REPO / "recipes" / "llava_v1_13b_scienceqa.yaml"), "seeds": 1}},
        "axes": [{"name": "llm", "path": "model.llm.name_or_path",
                  "arms": [{"label": "7B", "value": "lmsys/vicuna-7b-v1.3", "set": {
                      "model.init_connector": "checkpoints/llava-pretrain-vicuna-13b-v1.3/mm_projector.bin"}}]}],
        "baseline": "7B",
    }
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "mismatch.yaml").write_text(yaml.safe_dump(study))
    proc = rehearse("mismatch", tmp_path)
    assert proc.returncode != 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "file has shape [64, 32], connector expects [48, 32]" in " ".join((proc.stdout + proc.stderr).split())


@pytest.mark.slow
def test_every_paper_scale_cell_of_the_six_studies_rehearses(tmp_path, empty_mlflow_db, rehearsal_kit):
    """The issue's check: each of the six studies passes at paper scale on the kit, here all in one
    `ablate study all --scale paper --rehearse` (one process imports torch and DeepSpeed once)."""
    shutil.copy(empty_mlflow_db, tmp_path / "mlflow.db")
    proc = rehearse("all", tmp_path)
    output = proc.stdout + proc.stderr
    failed = [study for study in STUDIES if f"rehearsal of {study} at paper scale: passed" not in output]
    assert proc.returncode == 0 and not failed, f"exit {proc.returncode}; not passed: {failed}\n" + "\n\n".join(
        output[start:][:4000] for start in (output.find(f"rehearsal cells of {study}") for study in failed) if start >= 0
    ) + output[-3000:]
    assert f"rehearsals: {', '.join(f'{study} passed' for study in STUDIES)}" in " ".join(output.split())


def test_all_names_every_study_only_to_check_or_rehearse(capsys):
    from ablate.cli import main

    assert main(["study", "all", "--scale", "paper"]) == 2
    assert "'all' names every study only with --check or --rehearse" in capsys.readouterr().err
