"""DeepSpeed ZeRO-2 on two CPU processes (torchrun, gloo): the run finishes, rank 0 alone
records it, and the stage trains."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys

import pytest

import tiny_run

pytest.importorskip("deepspeed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_zero2_on_two_cpu_processes(tmp_path):
    from mlflow import MlflowClient

    from ablate.run.stage_store import stage_keys

    data = tiny_run.recipe(tmp_path, [
        # adamw_torch: Trainer hands DeepSpeed its own torch optimizer (the shipped config has no
        # "optimizer" block), so DeepSpeed builds no fused Adam op.
        tiny_run.stage("align", max_steps=4, deepspeed="zero2.json", optimizer="adamw_torch", save_steps=2),
    ])
    path = tiny_run.write_recipe(tmp_path, data)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "-m", "ablate.cli", "run", str(path)]
    proc = subprocess.run(cmd, cwd=tiny_run.REPO, env=tiny_run.cli_env(DS_BUILD_OPS="0"), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    client = MlflowClient(tiny_run.tracking_uri(tmp_path))
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, "only rank 0 logs"
    run = runs[0]
    assert run.info.status == "FINISHED"
    losses = [m.value for m in sorted(client.get_metric_history(run.info.run_id, "align/loss"), key=lambda m: m.step)]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    assert "eval/accuracy" in run.data.metrics

    # ZeRO-2 really ran (DeepSpeed's own checkpoint layout), and rank 0 stored the whole stage.
    key = stage_keys(tiny_run.load(data))[0]
    stage_dir = tmp_path / "out" / "stages" / key
    assert (stage_dir / "checkpoints" / "checkpoint-2" / "global_step2").is_dir()
    weights = tiny_run.stage_weights(tmp_path / "out", key)
    assert weights and all(k.startswith("connector.") for k in weights)
    assert all(v.numel() > 0 and bool(v.isfinite().all()) for v in weights.values())
    assert json.loads((stage_dir / "meta.json").read_text())["run_id"] == run.info.run_id
    summaries = list((tmp_path / "out").glob("tiny-*/summary.json"))
    assert len(summaries) == 1 and json.loads(summaries[0].read_text())["run_id"] == run.info.run_id
