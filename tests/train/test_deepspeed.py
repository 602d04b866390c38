"""DeepSpeed ZeRO-3 on two CPU processes (torchrun, gloo): the run finishes, rank 0 alone records
it, the frozen encoder's features come from the feature cache, and the stage trains (ZeRO-2 runs as a study cell: tests/study/test_study_launch.py). The first test builds DeepSpeed's shared-memory comm op once
(cached in TORCH_EXTENSIONS_DIR), which takes a minute or two on a fresh machine."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import tiny_run


def _torchrun(root: Path, data: dict):
    """The run in an ABLATE_HOME of its own that shares the session's zoo: its feature cache
    starts empty whatever earlier tests stored, so the cache counts below are this run's. The
    zoo entries are built first: this file may be the first of its session to need them."""
    import os

    tiny_run.stage_keys(data)  # builds the recipe's zoo checkpoints in the session's home
    home = root / "ablate_home"
    home.mkdir()
    (home / "zoo").symlink_to(Path(os.environ["ABLATE_HOME"]) / "zoo", target_is_directory=True)
    return tiny_run.torchrun(root, data, ABLATE_HOME=str(home))


def _losses(client, run, stage: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run.info.run_id, f"{stage}/loss"), key=lambda m: m.step)]


@pytest.mark.slow
def test_zero3_stages_are_gathered_whole_for_the_next_stage_the_store_and_eval(tmp_path):
    """ZeRO-3 leaves each rank a slice of every weight; after a stage they are gathered back,
    so a LoRA stage (on padding-free batches) can follow, the store gets whole weights and the
    ranks can evaluate their shares. After each epoch of the last stage, while its weights are
    partitioned, both ranks evaluate too: 5 items, so 3 on one rank and 2 on the other, each
    rank's forwards its own (with ZeRO-3's gathering hooks on, gloo reports a collective mismatch)."""
    from ablate.model.build import build_vlm

    data = tiny_run.recipe(tmp_path, [
        tiny_run.stage("align", max_steps=2, deepspeed="zero3.json"),
        tiny_run.stage("instruct", tiny_run.easy_vqa("qa", images=1), template="vicuna_v1", max_steps=-1,
                       epochs=2, deepspeed="zero3.json", packing=True,
                       trainable={"encoder": "frozen", "connector": "full", "llm": {"lora": {"r": 4}}}),
    ], eval={"data": tiny_run.easy_vqa("qa", images=2, split="test", limit=5), "evaluator": "exact_match",
             "max_new_tokens": 3, "batch_size": 2, "each_epoch": True})
    client, run = _torchrun(tmp_path, data)
    assert all(math.isfinite(v) for s in ("align", "instruct") for v in _losses(client, run, s))
    curve = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "epoch_eval/accuracy")}
    assert sorted(curve) == [1, 2] and curve[2] == run.data.metrics["eval/accuracy"]  # the same weights at the end
    # but merged after the last epoch's evaluation (LoRA), so the run evaluated them again
    assert "ablate.eval.reused_epoch" not in run.data.tags
    # The frozen encoder's features come from the cache in both ZeRO-3 stages: rank 0 stored every
    # image before each stage's engine partitioned the encoder, and training only read them.
    # (A miss while training would have stopped the run: the ZeRO-3 collator never encodes.)
    # Rank 0 counts its own lookups: the 8 align images stored, then at least 2 batches of 2 per stage.
    assert run.data.metrics["feature_cache/misses"] >= 8 and run.data.metrics["feature_cache/hits"] >= 8
    assert "eval/accuracy" in run.data.metrics
    whole = build_vlm(tiny_run.load(data).model).state_dict()
    assert run.data.metrics["params/llm/total"] == sum(v.numel() for k, v in whole.items() if k.startswith("llm."))
    for key, prefixes in zip(tiny_run.stage_keys(data, world_size=2), [("connector.",), ("connector.", "llm.")]):
        weights = tiny_run.stage_weights(tmp_path / "out", key)
        assert set(weights) == {k for k in whole if k.startswith(prefixes)}
        assert all(weights[k].shape == whole[k].shape for k in weights)
    # Every checkpoint's manifest covers both ranks' ZeRO-3 shards (each rank hashed half the files).
    checkpoints = sorted((tmp_path / "out").rglob("checkpoint-*"))
    assert checkpoints
    for checkpoint in checkpoints:
        from ablate.manifest import MANIFEST_FILE, manifest_files, manifest_problem

        listed = set(json.loads((checkpoint / MANIFEST_FILE).read_text()))
        assert listed == {str(p.relative_to(checkpoint)) for p in manifest_files(checkpoint)}
        assert sum("optim_states" in name for name in listed) == 2 and manifest_problem(checkpoint) is None


def test_a_deepspeed_recipe_runs_without_a_launcher(tmp_path):
    """`ablate run` on one GPU (or CPU) with no torchrun: the process joins a one-process job
    before DeepSpeed starts, which would otherwise look for MPI (mpi4py, not installed)."""
    import subprocess

    data = tiny_run.recipe(tmp_path, [tiny_run.stage("align", max_steps=2, deepspeed="zero2.json")], eval=False)
    env = {k: v for k, v in tiny_run.cli_env(DS_BUILD_OPS="0").items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    proc = subprocess.run(tiny_run.ablate_cmd("run", str(tiny_run.write_recipe(tmp_path, data))), cwd=tiny_run.REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "out").glob("tiny-*")
    (stage,) = tiny_run.summary(run_dir)["stages"]
    assert stage["steps"] == 2 and math.isfinite(stage["metrics"]["final_loss"])
