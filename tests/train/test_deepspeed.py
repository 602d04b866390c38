"""DeepSpeed ZeRO on two CPU processes (torchrun, gloo): the run finishes, rank 0 alone records
it, and the stage trains. The first test builds DeepSpeed's shared-memory comm op once
(cached in TORCH_EXTENSIONS_DIR), which takes a minute or two on a fresh machine."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import tiny_run


def _torchrun(root: Path, data: dict):
    return tiny_run.torchrun(root, data)


def _losses(client, run, stage: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run.info.run_id, f"{stage}/loss"), key=lambda m: m.step)]


@pytest.mark.slow
def test_zero2_on_two_cpu_processes(tmp_path):

    data = tiny_run.recipe(tmp_path, [
        # adamw_torch: Trainer hands DeepSpeed its own torch optimizer (the shipped config has no
        # "optimizer" block), so DeepSpeed builds no fused Adam op.
        tiny_run.stage("align", max_steps=4, deepspeed="zero2.json", optimizer="adamw_torch", save_steps=2),
    ])
    client, run = _torchrun(tmp_path, data)
    losses = _losses(client, run, "align")
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    assert "eval/accuracy" in run.data.metrics

    # ZeRO-2 really ran (DeepSpeed's own checkpoint layout), and rank 0 stored the whole stage.
    key = tiny_run.stage_keys(data, world_size=2)[0]
    stage_dir = tmp_path / "out" / "stages" / key
    assert (stage_dir / "checkpoints" / "checkpoint-2" / "global_step2").is_dir()
    weights = tiny_run.stage_weights(tmp_path / "out", key)
    assert weights and all(k.startswith("connector.") for k in weights)
    assert all(v.numel() > 0 and bool(v.isfinite().all()) for v in weights.values())
    assert json.loads((stage_dir / "meta.json").read_text())["run_id"] == run.info.run_id
    summaries = list((tmp_path / "out").glob("tiny-*/summary.json"))
    assert len(summaries) == 1 and json.loads(summaries[0].read_text())["run_id"] == run.info.run_id


@pytest.mark.slow
def test_zero3_stages_are_gathered_whole_for_the_next_stage_the_store_and_eval(tmp_path):
    """ZeRO-3 leaves each rank a slice of every weight; after a stage they are gathered back,
    so a LoRA stage can follow, the store gets whole weights and rank 0 can evaluate alone."""
    from ablate.model.build import build_vlm

    data = tiny_run.recipe(tmp_path, [
        tiny_run.stage("align", max_steps=2, deepspeed="zero3.json"),
        tiny_run.stage("instruct", tiny_run.easy_vqa("qa", images=2), template="vicuna_v1", max_steps=2,
                       deepspeed="zero3.json",
                       trainable={"encoder": "frozen", "connector": "full", "llm": {"lora": {"r": 4}}}),
    ])
    client, run = _torchrun(tmp_path, data)
    assert all(math.isfinite(v) for s in ("align", "instruct") for v in _losses(client, run, s))
    assert "eval/accuracy" in run.data.metrics
    whole = build_vlm(tiny_run.load(data).model).state_dict()
    assert run.data.metrics["params/llm/total"] == sum(v.numel() for k, v in whole.items() if k.startswith("llm."))
    for key, prefixes in zip(tiny_run.stage_keys(data, world_size=2), [("connector.",), ("connector.", "llm.")]):
        weights = tiny_run.stage_weights(tmp_path / "out", key)
        assert set(weights) == {k for k in whole if k.startswith(prefixes)}
        assert all(weights[k].shape == whole[k].shape for k in weights)
