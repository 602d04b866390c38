"""A finished run folder loads back as the model its stages trained (ablate.run.trained)."""

from __future__ import annotations

import json

import pytest
import torch

import tiny_run
from ablate.run.stage_store import StoredStateError
from ablate.run.trained import NotARunError, load_trained, read_run


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    lora = {"lora": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}}
    data = tiny_run.recipe(root, [
        tiny_run.stage("align"),
        tiny_run.stage("instruct", trainable={"encoder": "frozen", "connector": "full", "llm": lora}),
    ], eval=False)
    result = tiny_run.run_in_process(data)
    return root, result.run_dir


def test_every_stage_weight_is_loaded_in_order(finished):
    root, run_dir = finished
    trained = load_trained(run_dir)
    summary = tiny_run.summary(run_dir)
    assert trained.stage_keys == [s["key"] for s in summary["stages"]]
    params = dict(trained.vlm.named_parameters())
    instruct = tiny_run.stage_weights(root / "out", trained.stage_keys[1])
    assert any(name.startswith("llm.") for name in instruct)  # the merged LoRA stage stored the whole LLM
    for name, value in instruct.items():
        assert torch.equal(params[name], value), name
    assert not any(p.requires_grad for p in trained.vlm.parameters())
    assert not trained.vlm.training


def test_trained_weights_differ_from_a_fresh_build(finished):
    from ablate.model.build import build_vlm

    _, run_dir = finished
    trained = load_trained(run_dir)
    fresh = build_vlm(trained.recipe.model)
    fresh_llm = dict(fresh.llm.named_parameters())
    changed = [n for n, p in trained.vlm.llm.named_parameters() if not torch.equal(p, fresh_llm[n])]
    assert changed and all("q_proj" in n or "v_proj" in n for n in changed)  # only LoRA-targeted weights moved


def test_a_folder_without_summary_is_not_a_run(tmp_path):
    (tmp_path / "recipe.yaml").write_text("name: x\n")
    with pytest.raises(NotARunError, match="no summary.json"):
        read_run(tmp_path)
    with pytest.raises(NotARunError, match="not a folder"):
        read_run(tmp_path / "missing")


def test_a_summary_without_stage_keys_is_named(tmp_path, finished):
    _, run_dir = finished
    (tmp_path / "recipe.yaml").write_text((run_dir / "recipe.yaml").read_text())
    (tmp_path / "summary.json").write_text(json.dumps({"stages": [{"name": "align"}]}))
    with pytest.raises(StoredStateError, match="summary.json"):
        read_run(tmp_path)


def test_corrupted_stage_weights_are_named_not_loaded(tmp_path, finished):
    import shutil

    root, run_dir = finished
    copy = tmp_path / "out"
    shutil.copytree(root / "out", copy)
    key = tiny_run.summary(run_dir)["stages"][0]["key"]
    weights = copy / "stages" / key / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-16])
    with pytest.raises(StoredStateError, match="fingerprint"):
        load_trained(copy / run_dir.name)
