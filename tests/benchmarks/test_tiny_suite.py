"""benchmarks/tiny_suite.py: the zoo checkpoints it builds before timing, and the training floor it prints."""

from __future__ import annotations

import pytest
from bench_scripts import load_script


def load():
    return load_script("tiny_suite")


def test_zoo_names_cover_every_tiny_arm():
    suite = load()
    assert suite.zoo_names(["connector"]) == ["tiny-clip-easyvqa", "tiny-llama-easyvqa"]
    assert suite.zoo_names(["llm_scale", "scienceqa_format"]) == [
        "tiny-clip-easyvqa", "tiny-llama-easyvqa", "tiny-llama-easyvqa-copy", "tiny-llama-large-easyvqa"]


def cell_flops(study: str, cell: str) -> float:
    from ablate.plan.estimate import Planner, Settings
    from ablate.plan.gpus import gpu
    from ablate.study.runner import prepare_study

    prepared = prepare_study(study, "tiny", seeds=1)
    plan = Planner(Settings(gpu("a100-80g"), 1, 1.0)).plan(prepared.recipes[cell],
                                                          prepared.study.base_path("tiny").resolve().parent)
    return sum(stage.flops_per_sample * stage.samples for stage in plan.stages)


def test_the_floor_counts_a_stage_the_suite_shares_once_in_the_first_study_that_trains_it():
    suite = load()
    alone = suite.training_flops(["skip_pretraining"])
    after = suite.training_flops(["clip_layer", "skip_pretraining"])
    assert after["clip_layer"] == suite.training_flops(["clip_layer"])["clip_layer"]
    # skip_pretraining's "with pretraining" arm is clip_layer's penultimate cell: the stage store trains it once
    shared = cell_flops("clip_layer", "penultimate|seed=42")
    assert shared == cell_flops("skip_pretraining", "with pretraining|seed=42") > 0
    assert alone["skip_pretraining"] - after["skip_pretraining"] == pytest.approx(shared, rel=1e-12)
    # the diagnostics' runs count too: stage_length reruns both arms with two epochs of the last stage
    cells = cell_flops("skip_pretraining", "with pretraining|seed=42") + cell_flops(
        "skip_pretraining", "without pretraining|seed=42")
    assert alone["skip_pretraining"] > cells


def test_the_matmul_rate_is_measured_here():
    rate = load().matmul_rate(1, seconds=0.2)
    assert 1e8 < rate < 1e13  # FLOP/s of one CPU thread
