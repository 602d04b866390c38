"""`ablate run` / `ablate validate` failures the user can fix: a message, exit code 2, no traceback."""

from __future__ import annotations

import time

import pytest

import tiny_run

LLAVA_13B = tiny_run.REPO / "recipes" / "llava_v1_13b.yaml"


def _flat(text: str) -> str:
    """Whitespace-normalised (rich wraps long lines at the terminal width)."""
    return " ".join(text.split())


def test_run_without_the_checkpoints_fails_fast_with_how_to_get_them(tmp_path):
    from mlflow import MlflowClient

    tiny_run.prepare_store(tmp_path)
    uri = tiny_run.tracking_uri(tmp_path)
    start = time.monotonic()
    proc = tiny_run.run_cli("run", str(LLAVA_13B), "-s", f"output_dir={tmp_path / 'out'}", "--tracking-uri", uri,
                            timeout=120, HF_HUB_OFFLINE="1")
    seconds = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    flat = _flat(proc.stderr)
    assert "error: encoder: cannot load checkpoint 'openai/clip-vit-large-patch14'" in flat
    assert "HF_HUB_OFFLINE" in flat and "-s 'model.encoder.name_or_path=/path/to/clip-vit-large-patch14'" in flat
    assert seconds < 90  # nothing downloaded, no data read: the model is the first thing built

    # Bad input writes nothing: no MLflow run, no run folder.
    client = MlflowClient(uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
    assert not (tmp_path / "out").exists()


BAD_RECIPE = """\
name: three_mistakes
model:
  encoder: {type: hf_clip, name_or_path: "zoo:tiny-clip"}
  connector: {type: mlpp, depth: 2}
  llm: {type: hf_causal_lm, name_or_path: "zoo:tiny-llama"}
stages:
  - name: align
    data:
      type: inline
      sources:
        - source: {type: easy_vqa}
    template: plain
    lr: fast
    batch_sizee: 4
"""


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_recipe_with_three_mistakes_lists_all_three_with_lines(tmp_path, capsys, monkeypatch, command):
    from ablate.cli import main

    monkeypatch.chdir(tmp_path)  # where a run would put its default store and folder
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_RECIPE)
    code = main([command, str(path)])
    captured = capsys.readouterr()
    err = _flat(captured.err)
    assert code == 2, captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err
    assert f"{path}: 3 problems in recipe" in err
    assert f"model.connector.type ({path}:4): unknown connector 'mlpp'. Did you mean 'mlp'?" in err
    assert f"stages.0.lr ({path}:13): Input should be a valid number" in err and "(got 'fast')" in err
    assert f"stages.0.batch_sizee ({path}:14): unknown key 'batch_sizee'. Did you mean 'batch_size'?" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"], "nothing ran"
