"""`ablate run --threads N` applies N to torch, says so in the header and records it in MLflow."""

from __future__ import annotations

import torch
from mlflow import MlflowClient

import tiny_run


def test_the_run_applies_and_records_its_thread_count(tmp_path, capsys, monkeypatch):
    from ablate.cli import main

    monkeypatch.delenv("ABLATE_THREADS", raising=False)  # restored (unset) after the test
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # --threads wins over it
    torch.set_num_threads(2)
    data = tiny_run.recipe(tmp_path, [], eval={"data": tiny_run.easy_vqa("qa", images=1, split="test", limit=1),
                                               "template": "vicuna_v1", "max_new_tokens": 1})
    try:
        code = main(["run", str(tiny_run.write_recipe(tmp_path, data)), "--threads", "1"])
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(1)
    out = capsys.readouterr().out
    assert code == 0, out
    assert threads == 1 and "threads: 1 (ABLATE_THREADS=1)" in out
    client = MlflowClient(tiny_run.tracking_uri(tmp_path))
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.data.tags["ablate.threads"] == "1"
    assert run.data.tags["ablate.threads_reason"] == "ABLATE_THREADS=1"
