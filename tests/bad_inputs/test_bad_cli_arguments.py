"""Command-line arguments that cannot work: folders given for files, counts no machine has, an
empty component kind, and overrides whose path is the mistake. Each is one message, exit 2."""

from __future__ import annotations

import pytest

from bad_input_helpers import assert_rejected, cli, good_recipe, write


@pytest.mark.parametrize("command", [["plan"], ["report"], ["study", "--scale", "tiny", "--check"]])
@pytest.mark.parametrize("name", ["folder", "folder.yaml"])
def test_a_folder_given_for_a_recipe_or_study_file(tmp_path, capsys, command, name):
    """It was "it does not exist" (plan) or "study file not found" (study, report)."""
    folder = tmp_path / name
    folder.mkdir()
    code, out = cli(capsys, command[0], f"{folder}/" if name == "folder" else folder, *command[1:])
    assert_rejected(code, out, folder, "is a folder")
    assert "not found" not in out and "does not exist" not in out


@pytest.mark.parametrize("argv, words", [
    (["--gpus", "100000000000000"], ["--gpus", "from 1 to 100,000"]),
])
def test_plan_for_more_gpus_than_any_cluster(tmp_path, capsys, argv, words):
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    assert_rejected(*cli(capsys, "plan", recipe, *argv), *words)


def test_stage_plan_for_more_processes_than_any_cluster(tmp_path, capsys):
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    code, out = cli(capsys, "validate", recipe, "--plan", "--world-size", "100000000000000")
    assert code == 2 and "Traceback" not in out and "--world-size" in out, out


def test_an_empty_component_kind_is_not_every_kind(capsys):
    assert_rejected(*cli(capsys, "list", ""), "unknown component kind ''", "Kinds: encoder")


@pytest.mark.parametrize("override", ["==", "=[", "=!!python/object:os.system {}"])
def test_override_without_a_path_names_the_path_not_the_value(tmp_path, capsys, override):
    """`-s ==` was "could not determine a constructor for the tag 'tag:yaml.org,2002:value'"."""
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    code, out = cli(capsys, "validate", recipe, "-s", override)
    assert_rejected(code, out, "bad override path ''")
    assert "YAML" not in out
