"""Recipe files that are not readable YAML mappings: encodings, syntax, shapes, alias bombs,
duplicate keys, and `base:` chains that point at such files."""

from __future__ import annotations

import random
import time

import pytest
import yaml

from bad_input_helpers import assert_rejected, cli, good_recipe, write

BOMB = "name: t\na: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{k}: &{k} [{', '.join([f'*{p}'] * 9)}]\n" for p, k in zip("abcdefgh", "bcdefghi")
)
MAP_BOMB = "name: t\na: &a {k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x}\n" + "".join(
    f"{k}: &{k} {{{', '.join(f'k{i}: *{p}' for i in range(8))}}}\n" for p, k in zip("abcdefgh", "bcdefghi")
)

# (content, what the message must name besides the file, id). "{good}" is a valid recipe's YAML.
FILES = [
    (b"name: caf\xe9\n", ["not UTF-8", ":1"], "latin1-byte"),
    ("name: café\n".encode("latin-1"), ["not UTF-8"], "latin1-file"),
    ("name: t\n".encode("utf-16"), ["not UTF-8"], "utf16"),
    (bytes(random.Random(0).randrange(256) for _ in range(400)), ["not UTF-8"], "binary-garbage"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ["not UTF-8"], "png-as-recipe"),
    ("{good}\nnote: \x00\n", ["invalid YAML"], "nul-character"),
    ("", ["name", "required field is missing"], "empty"),
    ("# only a comment\n", ["name", "required field is missing"], "only-comments"),
    ("- a\n- b\n", ["must be a mapping", "a list"], "top-level-list"),
    ("hello\n", ["must be a mapping", "hello"], "top-level-scalar"),
    ("42\n", ["must be a mapping", "42"], "top-level-number"),
    ("name: [unclosed\n", ["invalid YAML"], "unclosed-bracket"),
    ("name: t\n  model: x\n bad: y\n", ["invalid YAML", ":2"], "bad-indentation"),
    ("name: t\nmodel:\n\tencoder: x\n", ["invalid YAML", ":3"], "tab-indentation"),
    ("name: 'unterminated\n", ["invalid YAML"], "unterminated-quote"),
    ("name: a\n---\nname: b\n", ["invalid YAML", "single document"], "two-documents"),
    ("name: *nowhere\n", ["invalid YAML", "nowhere"], "undefined-alias"),
    ("name: !!python/object:os.system {}\n", ["invalid YAML"], "python-tag"),
    ("[a, b]: 1\nname: t\n", ["invalid YAML"], "list-as-key"),
    (BOMB, ["alias bomb"], "alias-bomb-lists"),
    (MAP_BOMB, ["alias bomb"], "alias-bomb-mappings"),
    ("name: t\na: &a [*a]\n", ["recursive alias"], "recursive-alias"),
    ("name: t\na: " + "[" * 200 + "]" * 200 + "\n", ["nested deeper than"], "nested-200"),
    ("name: t\na: " + "[" * 5000 + "]" * 5000 + "\n", ["nested deeper than"], "nested-5000"),
    ("name: t\nname: u\n", ["name", "duplicate key 'name'", ":2", "line 1"], "duplicate-top-key"),
    ("{good}\nseed: 1\nseed: 2\n", ["seed", "duplicate key 'seed'"], "duplicate-after-good"),
    ("name: t\nmodel:\n  connector: {type: mlp, depth: 2, depth: 3}\n",
     ["model.connector.depth", "duplicate key 'depth'", ":3"], "duplicate-nested-key"),
    ("name: t\nstages:\n  - name: a\n    lr: 1\n    'lr': 2\n", ["stages.0.lr", "duplicate key 'lr'", ":5"],
     "duplicate-in-list-item"),
]


@pytest.mark.parametrize("content, names", [pytest.param(c, n, id=i) for c, n, i in FILES])
def test_unreadable_recipe_file(tmp_path, capsys, content, names):
    if isinstance(content, str) and "{good}" in content:
        content = content.replace("{good}", yaml.safe_dump(good_recipe(tmp_path), sort_keys=False))
    path = write(tmp_path / "recipe.yaml", content)
    started = time.perf_counter()
    code, out = cli(capsys, "validate", path)
    assert_rejected(code, out, path, *names)
    # An alias bomb is measured, never expanded: expanding one would take hours, not seconds.
    assert time.perf_counter() - started < 60


def test_recipe_file_that_is_far_too_big(tmp_path, capsys):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(11 * 2**20)  # sparse: no time spent writing it
    assert_rejected(*cli(capsys, "validate", path), path, "is at most")


def test_recipe_path_is_a_folder_or_missing(tmp_path, capsys):
    assert_rejected(*cli(capsys, "validate", tmp_path), tmp_path, "is a folder")
    assert_rejected(*cli(capsys, "validate", tmp_path / "nope.yaml"), tmp_path / "nope.yaml", "not found")


# `base:` targets that are not recipes: the message names the recipe pointing there and the base.
BASES = [
    ("list.yaml", "- a\n- b\n", ["must be a mapping"], "base-is-a-list"),
    ("scalar.yaml", "just text\n", ["must be a mapping"], "base-is-a-scalar"),
    ("latin1.yaml", b"name: caf\xe9\n", ["not UTF-8"], "base-not-utf8"),
    ("broken.yaml", "name: [\n", ["invalid YAML"], "base-bad-yaml"),
    ("bomb.yaml", BOMB, ["alias bomb"], "base-alias-bomb"),
    ("dups.yaml", "seed: 1\nseed: 2\n", ["duplicate key 'seed'"], "base-duplicate-key"),
    ("missing.yaml", None, ["not found"], "base-missing"),
    ("sub", "folder", ["is a folder"], "base-is-a-folder"),
]


@pytest.mark.parametrize("target, content, names", [pytest.param(t, c, n, id=i) for t, c, n, i in BASES])
def test_base_that_is_not_a_recipe(tmp_path, capsys, target, content, names):
    if content == "folder":
        (tmp_path / target).mkdir()
    elif content is not None:
        write(tmp_path / target, content)
    child = write(tmp_path / "child.yaml", {"base": target, **good_recipe(tmp_path)})
    code, out = cli(capsys, "validate", child)
    assert_rejected(code, out, child, "base", tmp_path / target, *names)


@pytest.mark.parametrize("value, names", [
    pytest.param(5, ["must be the path of another recipe", "5"], id="base-number"),
    pytest.param("", ["must be the path of another recipe"], id="base-empty"),
    pytest.param(["a.yaml"], ["must be the path of another recipe"], id="base-list"),
    pytest.param("child.yaml", ["cycle"], id="base-self"),
])
def test_base_value_that_is_not_a_path(tmp_path, capsys, value, names):
    child = write(tmp_path / "child.yaml", {"base": value, **good_recipe(tmp_path)})
    assert_rejected(*cli(capsys, "validate", child), child, "base", *names)


def test_base_cycle_names_both_recipes(tmp_path, capsys):
    write(tmp_path / "a.yaml", {"base": "b.yaml", "name": "a"})
    write(tmp_path / "b.yaml", {"base": "a.yaml", "name": "b"})
    code, out = cli(capsys, "validate", tmp_path / "a.yaml")
    assert_rejected(code, out, tmp_path / "a.yaml", tmp_path / "b.yaml", "cycle")
