"""`--scale small`: zoo models about 10x the tiny ones, and every study runnable with them.

The real small scale is for one GPU (minutes); here its zoo entries are built with two
pretraining steps and one cell of a study runs two steps a stage on CPU, through the same code."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ablate import zoo

STUDIES = ("clip_layer", "connector", "data_types", "llm_scale", "scienceqa_format", "skip_pretraining")


def parameters(name: str) -> int:
    from transformers import CLIPVisionModel, LlamaForCausalLM

    model_class = LlamaForCausalLM if zoo.get_spec(name).family == "llama" else CLIPVisionModel
    with torch.device("meta"):
        return sum(p.numel() for p in model_class(zoo.spec_config(name)).parameters())


def test_small_zoo_models_are_about_ten_times_the_tiny_ones():
    assert parameters("small-llama-easyvqa") == 41_156_480  # with the zoo tokenizer's 1,169 tokens
    assert parameters("small-llama-easyvqa") / parameters("tiny-llama-easyvqa") == pytest.approx(10.94, abs=0.01)
    assert parameters("small-clip-easyvqa") / parameters("tiny-clip-easyvqa") == pytest.approx(9.05, abs=0.01)
    # the 13B stand-in to the 7B one, as tiny-llama-large-easyvqa to tiny-llama-easyvqa (2.59)
    assert parameters("small-llama-large-easyvqa") / parameters("small-llama-easyvqa") == pytest.approx(2.74, abs=0.01)
    assert parameters("tiny-llama-large-easyvqa") / parameters("tiny-llama-easyvqa") == pytest.approx(2.59, abs=0.01)


def test_zoo_build_takes_a_size():
    assert zoo.entries_of_size("small") == ["small-clip-easyvqa", "small-llama-easyvqa", "small-llama-large-easyvqa"]
    assert "tiny-llama-easyvqa" in zoo.entries_of_size("tiny") and not any(
        n.startswith("small") for n in zoo.entries_of_size("tiny"))
    # an entry no shipped recipe loads is built when named, not with its size
    assert zoo.ZOO["tiny-llama-easyvqa-recall"].on_request
    assert "tiny-llama-easyvqa-recall" not in zoo.entries_of_size("tiny")


def test_zoo_build_tiny_builds_every_entry_the_tiny_studies_load():
    from ablate.study.discovery import available
    from ablate.study.runner import prepare_study

    loaded = {name for study in available() for recipe in prepare_study(study, "tiny", seeds=1).recipes.values()
              for name in zoo.zoo_names(recipe.model)}
    assert "tiny-llama-easyvqa-copy" in loaded and loaded <= set(zoo.entries_of_size("tiny"))


@pytest.mark.parametrize("study", STUDIES)
def test_every_study_checks_at_small_scale(study):
    from ablate.study.preflight import check_study_file
    from ablate.study.schema import load_study
    from ablate.study.discovery import find_study

    result = check_study_file(load_study(find_study(study)), "small", 1)
    assert result.problems == 0 and len(result.cells) == len(load_study(find_study(study)).arm_names())


@pytest.mark.slow
def test_a_small_cell_runs_two_steps_a_stage_on_cpu(tmp_path, monkeypatch):
    from ablate.recipe.loading import recipe_from_dict
    from ablate.run.runner import run_recipe
    from ablate.study.runner import prepare_study

    monkeypatch.setenv("ABLATE_HOME", str(tmp_path / "home"))
    for name in ("small-clip-easyvqa", "small-llama-easyvqa"):  # two pretraining steps, not thousands
        spec = zoo.ZOO[name]
        monkeypatch.setitem(zoo.ZOO, name, dataclasses.replace(spec, pretrain={**spec.pretrain, "steps": 2, "batch_size": 4}))
    prepared = prepare_study("skip_pretraining", "small", seeds=1)
    data = next(iter(prepared.recipes.values())).resolved()
    for stage in data["stages"]:
        stage.update(max_steps=2, batch_size=2)
        for source in stage["data"]["sources"]:
            source["source"]["images_limit"] = 4
    data["eval"].update(limit=2)
    data["eval"]["data"]["images_limit"] = 1
    data.update(output_dir=str(tmp_path / "runs"))
    data["tracking"].update(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = run_recipe(recipe_from_dict(data, runnable=True))
    assert [(s.name, s.steps) for s in result.stages] == [("align", 2), ("instruct", 2)]
    assert 0.0 <= result.eval_metrics["accuracy"] <= 1.0
    assert result.parameter_counts["llm"]["total"] > 9 * parameters("tiny-llama-easyvqa")
