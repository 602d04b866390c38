"""The eval section's two harnesses: ablate's own and lmms-eval (eval.harness, tasks, include_path, judge)."""

from pathlib import Path

import pytest

from ablate.errors import RecipeError
from ablate.recipe import load_recipe

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "recipes" / "tiny_easyvqa.yaml"


def _problems(tmp_path, *overrides: str) -> dict[str, str]:
    with pytest.raises(RecipeError) as caught:
        load_recipe(TINY, list(overrides))
    return {p.path: p.message for p in caught.value.problems}


def test_a_recipes_harness_switches_to_lmms_eval_by_overrides():
    recipe = load_recipe(TINY, ["eval.harness=lmms_eval", "eval.tasks=[gqa, mme]", "eval.include_path=tasks",
                                "eval.judge={model: gpt-4-0613, endpoint: 'https://api.openai.com/v1'}"])
    ev = recipe.eval
    assert (ev.harness, ev.tasks, ev.include_path) == ("lmms_eval", ["gqa", "mme"], ["tasks"])
    assert (ev.judge.model, ev.judge.endpoint, ev.judge.api_key_env) == ("gpt-4-0613", "https://api.openai.com/v1",
                                                                          "OPENAI_API_KEY")
    assert ev.data.type == "easy_vqa"  # kept (unused) so that the switch needs no other override
    assert load_recipe(TINY).eval.harness == "ablate"


@pytest.mark.parametrize("overrides, message", [
    (["eval.tasks=[gqa]"], "eval.tasks applies to harness lmms_eval only; this eval uses harness ablate "
                           "(set eval.harness: lmms_eval)"),
    (["eval.judge={model: m, endpoint: 'http://localhost:8000/v1'}"], "eval.judge applies to harness lmms_eval only"),
    (["eval.harness=lmms_eval"], "eval.tasks is required with harness lmms_eval"),
    (["eval.harness=lmms_eval", "eval.tasks=[gqa]", "eval.each_epoch=true"],
     "eval.each_epoch applies to harness ablate only; this eval uses harness lmms_eval"),
    (["eval.data=null"], "eval.data is required with harness ablate"),
])
def test_fields_of_the_other_harness_are_named(tmp_path, overrides, message):
    problems = _problems(tmp_path, *overrides)
    assert list(problems) == ["eval"] and message in problems["eval"]


@pytest.mark.parametrize("override, path, message", [
    ("eval.tasks=[]", "eval.tasks", "at least 1 item"),
    ("eval.tasks=[gqa, mme, gqa]", "eval.tasks", "tasks must be unique; repeated: gqa"),
    ("eval.judge={model: m, endpoint: api.openai.com}", "eval.judge.endpoint", "should match pattern"),
    ("eval.judge={endpoint: 'https://x/v1'}", "eval.judge.model", "required field is missing"),
    ("eval.harness=lmms", "eval.harness", "'ablate' or 'lmms_eval'"),
])
def test_bad_lmms_fields_are_named(tmp_path, override, path, message):
    problems = _problems(tmp_path, "eval.harness=lmms_eval", "eval.tasks=[gqa]", override)
    assert path in problems and message in problems[path], problems
