from pathlib import Path

import pytest
import yaml

from ablate.errors import AblateError, RecipeError
from ablate.recipe import load_recipe, recipe_hash
from ablate.recipe.yaml_source import apply_overrides, load_with_bases

MODEL = {
    "encoder": {"type": "hf_clip", "name_or_path": "zoo:tiny-clip"},
    "connector": {"type": "mlp", "depth": 2},
    "llm": {"type": "hf_causal_lm", "name_or_path": "zoo:tiny-llama"},
}
# A recipe needs stages or an eval with its own template to be runnable.
EVAL = {"data": {"type": "easy_vqa", "split": "test"}, "template": "plain"}


def write(tmp_path: Path, name: str, data) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_valid_recipe_resolves_component_configs(tmp_path):
    recipe = load_recipe(write(tmp_path, "r.yaml", {"name": "r", "model": MODEL, "eval": EVAL}))
    assert recipe.model.connector.type == "mlp"
    assert recipe.model.connector.depth == 2
    assert recipe.model.encoder.feature_layer == -2  # LLaVA's penultimate layer by default


def test_three_mistakes_are_reported_together_with_lines(tmp_path):
    text = """\
name: broken
seed: many
model:
  encoder:
    type: hf_clip
    name_or_path: zoo:tiny-clip
    feature_layr: -1
  connector:
    type: mpl
  llm: {type: hf_causal_lm, name_or_path: zoo:tiny-llama}
"""
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    problems = {p.path: p for p in info.value.problems}
    assert set(problems) == {"seed", "model.encoder.feature_layr", "model.connector.type"}
    assert "Did you mean 'mlp'" in problems["model.connector.type"].message
    assert problems["model.connector.type"].location == f"{path}:9"
    assert "Did you mean 'feature_layer'" in problems["model.encoder.feature_layr"].message
    assert problems["model.encoder.feature_layr"].location == f"{path}:7"
    assert "valid integer" in problems["seed"].message
    assert problems["seed"].location == f"{path}:2"
    rendered = str(info.value)
    assert rendered.startswith(f"{path}: 3 problems")


def test_nested_unknown_key_in_component_suggests_field(tmp_path):
    data = {"name": "r", "model": {**MODEL, "connector": {"type": "mlp", "dept": 3}}}
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, "r.yaml", data))
    (problem,) = info.value.problems
    assert problem.path == "model.connector.dept"
    assert "Did you mean 'depth'" in problem.message


def test_base_inheritance_deep_merges(tmp_path):
    write(tmp_path, "base.yaml", {"name": "base", "seed": 1, "model": MODEL, "eval": EVAL})
    child = write(tmp_path, "child.yaml", {"base": "base.yaml", "name": "child", "model": {"connector": {"type": "mlp", "depth": 3}}})
    recipe = load_recipe(child)
    assert (recipe.name, recipe.seed, recipe.model.connector.depth) == ("child", 1, 3)
    assert recipe.model.llm.name_or_path == "zoo:tiny-llama"


def test_base_cycle_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", {"base": "b.yaml", "name": "a"})
    write(tmp_path, "b.yaml", {"base": "a.yaml", "name": "b"})
    with pytest.raises(AblateError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")


def test_overrides_scalar_and_block(tmp_path):
    path = write(tmp_path, "r.yaml", {"name": "r", "model": MODEL, "eval": EVAL})
    recipe = load_recipe(path, ["model.connector.depth=3"])
    assert recipe.model.connector.depth == 3
    recipe = load_recipe(path, ["model.connector={type: qformer, num_queries: 16}"])
    assert recipe.model.connector.type == "qformer" and recipe.model.connector.num_queries == 16


def test_override_error_points_at_the_override(tmp_path):
    path = write(tmp_path, "r.yaml", {"name": "r", "model": MODEL, "eval": EVAL})
    with pytest.raises(RecipeError) as info:
        load_recipe(path, ["model.connector.depth=deep"])
    (problem,) = info.value.problems
    assert problem.location == "-s model.connector.depth=deep"


def test_override_list_items_by_index_and_name(tmp_path):
    data = {"name": "r", "stages": [{"name": "align", "lr": 1.0}, {"name": "tune", "lr": 2.0}]}
    src = apply_overrides(load_with_bases(write(tmp_path, "r.yaml", data)), ["stages.tune.lr=5", "stages.0.lr=4"])
    assert [s["lr"] for s in src.data["stages"]] == [4, 5]


def test_hash_is_stable_and_ignores_names(tmp_path):
    a = load_recipe(write(tmp_path, "a.yaml", {"name": "a", "model": MODEL, "eval": EVAL}))
    b = load_recipe(write(tmp_path, "b.yaml", {"name": "b", "description": "x", "model": MODEL, "eval": EVAL}))
    c = load_recipe(write(tmp_path, "c.yaml", {"name": "a", "model": MODEL, "eval": EVAL}), ["model.connector.depth=3"])
    assert recipe_hash(a) == recipe_hash(b) != recipe_hash(c)
    assert len(recipe_hash(a)) == 12


def test_invalid_yaml_reports_line(tmp_path):
    path = write(tmp_path, "r.yaml", "name: [unclosed\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.problems[0].location.startswith(str(path))


def test_base_component_with_new_type_is_replaced_not_merged(tmp_path):
    base = {"name": "base", "model": {**MODEL, "connector": {"type": "mlp", "depth": 3, "activation": "relu"}}, "eval": EVAL}
    write(tmp_path, "base.yaml", base)
    child = write(tmp_path, "child.yaml", {"base": "base.yaml", "model": {"connector": {"type": "qformer", "num_queries": 8}}})
    recipe = load_recipe(child)
    assert recipe.model.connector.type == "qformer" and recipe.model.connector.num_queries == 8


@pytest.mark.parametrize("where", ["recipe", "source"])
def test_option_text_answers_need_choice_matching_in_the_scienceqa_evaluator(tmp_path, where):
    data_source = {"type": "scienceqa", "split": "test"}
    recipe = {"name": "r", "model": MODEL, "eval": {"data": data_source, "evaluator": "scienceqa", "template": "plain"}}
    if where == "recipe":
        recipe["answer_format"] = "llava15_short"
    else:
        data_source["answer_format"] = "llava15_short"
    with pytest.raises(RecipeError) as info:
        load_recipe(write(tmp_path, "r.yaml", recipe))
    assert "match_choice_text: true" in str(info.value)
    recipe["eval"]["evaluator"] = {"type": "scienceqa", "match_choice_text": True}
    assert load_recipe(write(tmp_path, "r.yaml", recipe)).eval.evaluator.match_choice_text
    recipe["eval"]["evaluator"] = "scienceqa"
    recipe.pop("answer_format", None)
    data_source["answer_format"] = "QCM-LEA"  # letter answers: LLaVA's rules alone are right
    assert load_recipe(write(tmp_path, "r.yaml", recipe)).eval.evaluator.match_choice_text is False
