"""The recipe asks its data sources and its evaluator whether its answer format can work."""

from pathlib import Path

import pytest
import yaml

from ablate.errors import RecipeError
from ablate.recipe import load_recipe

MODEL = {
    "encoder": {"type": "hf_clip", "name_or_path": "zoo:tiny-clip"},
    "connector": {"type": "mlp", "depth": 2},
    "llm": {"type": "hf_causal_lm", "name_or_path": "zoo:tiny-llama"},
}
EASY_VQA = {"type": "easy_vqa", "split": "train", "style": "qa"}
STAGE = {"name": "align", "data": {"type": "inline", "sources": [{"source": EASY_VQA}]}, "template": "plain", "lr": 1.0e-3}


def load(tmp_path: Path, recipe: dict):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return load_recipe(path)


def test_an_answer_format_no_data_source_reads_is_rejected(tmp_path):
    recipe = {"name": "r", "model": MODEL, "answer_format": "QCM-A", "stages": [STAGE],
              "eval": {"data": {**EASY_VQA, "split": "test"}}}
    with pytest.raises(RecipeError) as info:
        load(tmp_path, recipe)
    text = str(info.value)
    assert "answer_format: QCM-A is set, but no data source of this recipe reads an answer format" in text
    assert "stages.0.data: inline, eval.data: easy_vqa" in text and "sources that do: scienceqa" in text
    recipe["eval"]["data"] = {"type": "scienceqa", "split": "test"}  # one reader is enough
    recipe["eval"]["evaluator"] = "scienceqa"
    assert load(tmp_path, recipe).answer_format.type == "QCM-A"


def test_a_reader_inside_a_mixture_counts(tmp_path):
    mixture = {"type": "inline", "sources": [{"source": EASY_VQA}, {"source": {"type": "scienceqa", "split": "train"}}]}
    recipe = {"name": "r", "model": MODEL, "answer_format": "QCM-A", "stages": [{**STAGE, "data": mixture}]}
    assert load(tmp_path, recipe).answer_format.type == "QCM-A"


def test_exact_match_needs_an_answer_pattern_for_formats_that_reason(tmp_path):
    evaluation = {"data": {"type": "scienceqa", "split": "test", "answer_format": "QCM-LEA"}, "evaluator": "exact_match",
                  "template": "vicuna_v1"}
    recipe = {"name": "r", "model": MODEL, "eval": evaluation}
    with pytest.raises(RecipeError, match="eval.evaluator: answer format QCM-LEA trains answers with more than"):
        load(tmp_path, recipe)
    evaluation["evaluator"] = {"type": "exact_match", "answer_pattern": "answer is (.+?)\\.?$"}
    assert load(tmp_path, recipe).eval.evaluator.answer_pattern
    evaluation["evaluator"], evaluation["data"]["answer_format"] = "exact_match", "llava15_short"  # bare answers
    assert load(tmp_path, recipe).eval.evaluator.type == "exact_match"


def test_an_evaluator_without_the_contract_is_named(tmp_path):
    from ablate.registry import ComponentConfig, registries

    class Bare:  # judges and scores, but declares nothing else
        def judge(self, record):
            return {**record, "correct": True}

        def score(self, records):
            return {"accuracy": 1.0}

    registries().evaluator.register("bare", ComponentConfig, lambda config: Bare())
    try:
        with pytest.raises(RecipeError) as info:
            load(tmp_path, {"name": "r", "model": MODEL, "eval": {
                "data": {"type": "scienceqa", "split": "test", "answer_format": "QCM-A"}, "evaluator": "bare"}})
    finally:
        registries().evaluator.unregister("bare")
    assert ("eval.evaluator: evaluator 'bare' built a Bare without check_answer_format, metric_prefix, "
            "benchmark_prefix") in str(info.value)
