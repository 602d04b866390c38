"""benchmarks/train_step.py --record: the figures `ablate plan` reads its MFU from."""

from __future__ import annotations

import json

import pytest

from bench_scripts import load_script

from ablate.plan.gpus import GPUS
from ablate.plan.mfu import choose_mfu, recorded_steps


@pytest.fixture(scope="module")
def bench():
    return load_script("train_step")


def measured(bench, stage: int):
    """A Result as an H100 run at LLaVA-7B shapes would give it: 200 TFLOP per step in 0.5 s."""
    return bench.Result(device="cuda:0", dtype="bf16", threads=1, batch=8, text_tokens=449, llm_tokens=1024, steps=2,
                        losses_first_batch={"ablate": 1.0, "llava": 1.0},
                        step_seconds={"ablate": [0.5, 0.5], "llava": [0.5, 0.5]},
                        flops_per_step={"ablate": 200e12, "llava": 200e12}, stage=stage,
                        sizes={"llm_layers": 32})


def test_a_recorded_step_becomes_the_plans_mfu_on_that_gpu(bench, tmp_path):
    path = tmp_path / "train_step.json"
    for stage in (1, 2):
        bench.append_record(bench.record_entry(measured(bench, stage), "NVIDIA H100 80GB HBM3", "llava-7b"), path)
    steps = recorded_steps(path)
    assert [(s["gpu"], s["llm_trained"], s["achieved_tflops"]) for s in steps] == [
        ("h100-80g", False, 400.0), ("h100-80g", True, 400.0)]
    assert choose_mfu(None, GPUS["h100-80g"], True, steps, path).value == round(400 / 989, 3)
    assert json.loads(path.read_text())[0]["source"] == "benchmarks/train_step.py --record"


def test_an_unknown_gpu_is_refused(bench):
    with pytest.raises(SystemExit, match="not in ablate.plan.gpus"):
        bench.record_entry(measured(bench, 1), "Some Other GPU", "llava-7b")


def test_record_needs_a_bf16_gpu_run(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--record"])
    assert "--record needs --device cuda --dtype bf16" in capsys.readouterr().err
