"""`ablate run` options and environment that cannot work are rejected before anything is written."""

from __future__ import annotations

import pytest

from bad_input_helpers import assert_rejected, cli, good_recipe, write


def nothing_written(root) -> bool:
    return not (root / "out").exists() and not (root / "mlflow.db").exists()


@pytest.mark.parametrize("uri, words", [
    ("foo://x", ["unknown scheme 'foo'"]),
    ("htp://localhost:5000", ["Did you mean 'http'"]),
    ("mlflow.db", ["sqlite:///mlflow.db"]),
    ("sqlite://runs.db", ["three slashes"]),
    ("https://", ["needs a host"]),
    ("", ["non-empty"]),  # was quietly the recipe's URI
    ("file:./mlruns", ["maintenance mode", "MLFLOW_ALLOW_FILE_STORE=true", "sqlite:///mlflow.db"]),  # was a traceback
    ("./mlruns", ["maintenance mode"]),
])
def test_unknown_tracking_uri_flag(tmp_path, capsys, uri, words):
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    code, out = cli(capsys, "run", recipe, "--tracking-uri", uri)
    assert_rejected(code, out, f"tracking URI {uri!r}", *words)
    assert nothing_written(tmp_path)


def test_unknown_tracking_uri_in_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "foo://x")
    data = good_recipe(tmp_path)
    del data["tracking"]
    recipe = write(tmp_path / "recipe.yaml", data)
    code, out = cli(capsys, "run", recipe)
    assert_rejected(code, out, "MLFLOW_TRACKING_URI 'foo://x'", "unknown scheme")
    assert nothing_written(tmp_path)


def test_output_dir_that_is_a_file_stops_the_run(tmp_path, capsys):
    write(tmp_path / "out", "I am a file")
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    code, out = cli(capsys, "run", recipe)
    assert_rejected(code, out, recipe, "output_dir", "is a file, not a folder")
    assert (tmp_path / "out").read_text() == "I am a file" and not (tmp_path / "mlflow.db").exists()


def test_run_name_that_escapes_output_dir(tmp_path, capsys):
    recipe = write(tmp_path / "recipe.yaml", {**good_recipe(tmp_path), "name": "../../escaped"})
    assert_rejected(*cli(capsys, "run", recipe), recipe, "- name", "cannot name a folder")
    assert nothing_written(tmp_path) and not (tmp_path.parent / "escaped").exists()


def test_ablate_home_that_is_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ABLATE_HOME", str(write(tmp_path / "home", "a file")))
    assert_rejected(*cli(capsys, "zoo", "build", "tiny-clip"), f"ABLATE_HOME {str(tmp_path / 'home')!r}", "is a file")


@pytest.mark.parametrize("threads", ["1025", "100000000000000000000"])
def test_thread_count_no_machine_has(tmp_path, capsys, threads):
    """torch.set_num_threads overflowed (a traceback) past 2**63; below that, OpenMP would try to start them all."""
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    code, out = cli(capsys, "run", recipe, "--threads", threads)
    assert code == 2 and "Traceback" not in out and "--threads" in out and "1024" in out, out
    assert nothing_written(tmp_path)


@pytest.mark.parametrize("name", ["ABLATE_THREADS", "OMP_NUM_THREADS"])
def test_thread_count_in_the_environment_no_machine_has(tmp_path, capsys, monkeypatch, name):
    monkeypatch.delenv("ABLATE_THREADS", raising=False)
    monkeypatch.setenv(name, "100000000000000000000")
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    assert_rejected(*cli(capsys, "run", recipe), f"{name}='100000000000000000000'", "from 1 to 1024")
    assert nothing_written(tmp_path)


def test_ablate_home_that_is_a_file_is_named_by_plan(tmp_path, capsys, monkeypatch):
    """It was reported as a zoo checkpoint this machine "may have no access to the Hugging Face Hub" for."""
    recipe = write(tmp_path / "recipe.yaml", good_recipe(tmp_path))
    monkeypatch.setenv("ABLATE_HOME", str(write(tmp_path / "home", "a file")))
    code, out = cli(capsys, "plan", recipe)
    assert_rejected(code, out, f"ABLATE_HOME {str(tmp_path / 'home')!r}", "is a file")
    assert "Hugging Face Hub" not in out
