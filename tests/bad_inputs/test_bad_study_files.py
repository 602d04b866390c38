"""Study files that must not run: unreadable files, wrong shapes at every level, seeds that are not
seeds, studies too big to list, base recipes whose seed cannot be counted from, and file names
that cannot name the study's runs. `ablate study FILE --scale tiny --check` stops each one before
any cell is built."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from bad_input_helpers import assert_rejected, cli, good_recipe, write
from test_bad_recipe_files import BOMB


@pytest.fixture
def base(tmp_path):
    return write(tmp_path / "base.yaml", good_recipe(tmp_path))


def good_study(base) -> dict[str, Any]:
    return {
        "description": "feature layer",
        "scales": {"tiny": {"base": str(base), "seeds": 1}},
        "axes": [{"name": "layer", "path": "model.encoder.feature_layer",
                  "arms": [{"label": "pen", "value": -2}, {"label": "last", "value": -1}]}],
        "baseline": "pen",
    }


def check(capsys, study) -> tuple[int, str]:
    return cli(capsys, "study", study, "--scale", "tiny", "--check")


# (content, words the message must name besides the file)
FILES = [
    ("- a\n- b\n", ["must be a mapping", "a list"]),
    ("hello\n", ["must be a mapping", "hello"]),
    ("", ["description", "required field is missing"]),
    (b"\x89PNG\r\n\x1a\n\x00", ["not UTF-8"]),
    ("description: caf\xe9\n".encode("latin-1"), ["not UTF-8"]),
    ("description: a\ndescription: b\n", ["duplicate key 'description'"]),
    ("description: d\nscales:\n\ttiny: x\n", ["invalid YAML", ":3"]),
    (BOMB.replace("name: t", "description: t"), ["alias bomb"]),
]


@pytest.mark.parametrize("content, words", FILES, ids=["list", "scalar", "empty", "binary", "latin1", "dup-key",
                                                       "tab", "alias-bomb"])
def test_unreadable_study_file(tmp_path, capsys, content, words):
    study = write(tmp_path / "study.yaml", content)
    started = time.perf_counter()
    assert_rejected(*check(capsys, study), study, *words)
    assert time.perf_counter() - started < 30


def edit(data: dict, dotted: str, value: Any) -> dict:
    data = copy.deepcopy(data)
    *parents, last = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    node: Any = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


# (YAML path, value, words the message must name)
VALUES = [
    ("axes", {"a": 1}, ["axes", "valid list"]),
    ("axes.0.arms.0", "pen", ["axes.0.arms.0", "valid dictionary"]),
    ("axes.0.arms.1.label", "pen", ["arm labels must be unique", "pen"]),
    ("baseline", "nope", ["unknown arm 'nope'"]),
    ("axes.0.path", "model.encoder.nope", ["model.encoder.nope", "unknown key 'nope'"]),
    ("axes.0.arms.0.value", "abc", ["model.encoder.feature_layer", "valid integer"]),
    ("axes.0.arms.0.set", {"eval.max_new_tokens.x": 1}, ["axes.0.arms.0.set.eval.max_new_tokens.x",
                                                          "cannot set a key inside int"]),
    # paths the study sets for every cell itself: an edit there would be dropped without a word
    ("axes.0.arms.0.set", {"seed": 7}, ["axes.0.arms.0.set.seed", "cannot set 'seed'", "scales.<scale>.seeds"]),
    ("axes.0.arms.0.set", {"seed.x": 1}, ["axes.0.arms.0.set.seed.x", "cannot set 'seed.x'"]),
    ("axes.0.arms.0.scale_set", {"tiny": {"name": "x"}}, ["axes.0.arms.0.scale_set.tiny.name", "names each cell"]),
    ("axes.0.arms.0.set", {"tracking.experiment": "e"}, ["cannot set 'tracking.experiment'", "overrides"]),
    ("axes.0.path", "seed", ["axes.0.path", "cannot set 'seed'"]),
    ("scales.tiny.overrides", {"tracking.run_name": "r"}, ["scales.tiny.overrides.tracking.run_name",
                                                           "names each cell"]),
    ("scales.tiny.base", "missing.yaml", ["scales.tiny.base", "not found"]),
    ("scales.tiny.seeds", 0, ["scales.tiny.seeds", ">= 1"]),
    # seeds that are not seeds: YAML's `yes`, a count nobody means, values numpy cannot take
    ("scales.tiny.seeds", True, ["scales.tiny.seeds", "boolean"]),
    ("scales.tiny.seeds", [True, 2], ["scales.tiny.seeds", "boolean"]),
    ("scales.tiny.seeds", "3", ["scales.tiny.seeds", "a count"]),
    ("scales.tiny.seeds", 10**30, ["scales.tiny.seeds", "at most 1000"]),
    ("scales.tiny.seeds", 1_000_000, ["scales.tiny.seeds", "at most 1000"]),
    ("scales.tiny.seeds", [-1], ["scales.tiny.seeds", "[0, 2**32)"]),
    ("scales.tiny.seeds", [2**40], ["scales.tiny.seeds", "[0, 2**32)"]),
    ("unknown", 1, ["unknown key 'unknown'"]),
    # what recipes refuse, study files refuse too (StrictModel)
    ("report", {"bootstrap_samples": 10**9}, ["report.bootstrap_samples", "less than or equal to 1000000"]),
    ("report", {"epoch_curves": "yes"}, ["report.epoch_curves", "expected a boolean"]),
    ("report", {"bootstrap_seed": "3"}, ["report.bootstrap_seed", "expected an integer"]),
]


@pytest.mark.parametrize("path, value, words", VALUES, ids=[f"{p}={v!r}"[:40] for p, v, _ in VALUES])
def test_bad_study_value(tmp_path, capsys, base, path, value, words):
    study = write(tmp_path / "study.yaml", edit(good_study(base), path, value))
    started = time.perf_counter()
    assert_rejected(*check(capsys, study), study, *words)
    assert time.perf_counter() - started < 30


def test_base_recipe_that_is_a_folder(tmp_path, capsys, base):
    (tmp_path / "folder").mkdir()
    study = write(tmp_path / "study.yaml", edit(good_study(base), "scales.tiny.base", "folder"))
    assert_rejected(*check(capsys, study), study, "scales.tiny.base", "is a folder")


def test_seeds_flag_too_large_is_refused_before_the_cells_are_listed(tmp_path, capsys, base):
    study = write(tmp_path / "study.yaml", good_study(base))
    started = time.perf_counter()
    for command in (["study", study, "--scale", "tiny", "--check"], ["plan", study, "--scale", "tiny"]):
        assert_rejected(*cli(capsys, *command, "--seeds", 10**12), "--seeds", "at most 1000")
    assert time.perf_counter() - started < 30


def test_axes_whose_cells_cannot_be_listed(tmp_path, capsys, base):
    """Nine axes of ten arms are 10**9 cells: refused at once, not enumerated."""
    data = good_study(base)
    data["axes"] = [{"name": f"a{i}", "path": "eval.limit", "arms": [{"label": f"l{j}"} for j in range(10)]}
                    for i in range(9)]
    data["baseline"] = {f"a{i}": "l0" for i in range(9)}
    study = write(tmp_path / "study.yaml", data)
    started = time.perf_counter()
    assert_rejected(*check(capsys, study), study, "axes", "1,000,000,000 arms", "at most 10,000")
    assert time.perf_counter() - started < 30


def test_seeds_times_arms_past_the_cell_limit(tmp_path, capsys, base):
    data = good_study(base)
    data["axes"][0]["arms"] = [{"label": f"l{j}", "value": -1} for j in range(20)]
    data["baseline"] = "l0"
    data["scales"]["tiny"]["seeds"] = 1000
    study = write(tmp_path / "study.yaml", data)
    assert_rejected(*check(capsys, study), study, "20,000 cells", "at most 10,000")


@pytest.mark.parametrize("seed, words", [
    ("abc", ["'abc'"]),
    ([1], ["[1]"]),
    (float("inf"), ["inf"]),
    (None, ["None"]),
    (True, ["True"]),
])
def test_base_recipe_seed_that_seeds_cannot_count_from(tmp_path, capsys, base, seed, words):
    data = good_recipe(tmp_path)
    data["seed"] = seed
    bad_base = write(tmp_path / "bad_base.yaml", data)
    study = write(tmp_path / "study.yaml", edit(good_study(bad_base), "scales.tiny.seeds", 2))
    code, out = check(capsys, study)
    assert_rejected(code, out, study, f"{bad_base}:", "seed", "integer in [0, 2**32)", *words)


@pytest.mark.parametrize("stem", ["my study", "-dash", "café"])
def test_study_file_name_that_cannot_name_its_runs(tmp_path, capsys, base, stem):
    study = write(tmp_path / f"{stem}.yaml", good_study(base))
    code, out = check(capsys, study)
    assert_rejected(code, out, study, f"file name {stem!r}", "letters, digits")
    assert str(base) not in out  # the base recipe's own `name` is not to blame


@pytest.mark.parametrize("options, words", [
    (["--workers", "1000000"], ["--workers", "from 1 to 256"]),
    (["--storage", "x"], ["--storage 'x'", "database URL"]),
    (["--tracking-uri", "foo://x"], ["tracking URI 'foo://x'", "unknown scheme"]),
    (["--tracking-uri", ""], ["tracking URI ''", "non-empty"]),
])
def test_study_options_named_before_anything_is_made(tmp_path, capsys, base, options, words):
    """They were named after the cells' check (seconds) and, for --storage and --tracking-uri, after
    the study folder, its Optuna journal and its lock were made; --workers 1000000 started that many
    processes."""
    study = write(tmp_path / "study.yaml", good_study(base))
    before = sorted(tmp_path.rglob("*"))
    started = time.perf_counter()
    code, out = cli(capsys, "study", study, "--scale", "tiny", *options)
    assert_rejected(code, out, *words)
    assert "checked" not in out and time.perf_counter() - started < 10
    assert sorted(tmp_path.rglob("*")) == before
