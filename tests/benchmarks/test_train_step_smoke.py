"""benchmarks/train_step.py: both models compute the same loss and one interleaved step runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_step.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_step_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny(bench):
    torch.set_num_threads(1)
    return bench.Sizes(
        image_size=16, patch_size=8, vision_hidden=16, vision_intermediate=32, vision_layers=2, vision_heads=2,
        llm_hidden=32, llm_intermediate=64, llm_layers=2, llm_heads=2, vocab=64,
    )


def test_one_step_of_each_with_matching_losses_and_flops(bench, tiny, tmp_path):
    result = bench.run_benchmark(
        steps=1, warmup=0, batch=2, text_tokens=12, sizes=tiny, measure_peak=False, workdir=tmp_path
    )
    losses = result.losses_first_batch
    assert losses["ablate"] == pytest.approx(losses["llava"], abs=1e-4)
    assert losses["ablate"] == pytest.approx(torch.log(torch.tensor(64.0)).item(), abs=0.5)  # near-uniform init
    assert {name: len(times) for name, times in result.step_seconds.items()} == {"ablate": 1, "llava": 1}
    assert result.llm_tokens == 12 + 4 - 1
    # The same function does the same matmuls.
    assert result.flops_per_step["ablate"] == result.flops_per_step["llava"] > 0
    assert result.ratio > 0 and result.paired_ratio > 0


def test_both_llms_see_the_same_sequence(bench, tiny, tmp_path):
    models, batches = bench.build_pair(tiny, 3, 10, torch.device("cpu"), tmp_path)
    embeds, mask, labels = models["ablate"].embed_inputs(
        batches["ablate"]["input_ids"], batches["ablate"]["attention_mask"], batches["ablate"]["labels"],
        batches["ablate"]["pixel_values"],
    )
    assert embeds.shape[:2] == batches["llava"]["input_ids"].shape
    assert torch.equal(labels, batches["llava"]["labels"])
    assert mask.all()


def test_fairness_check_catches_different_weights(bench, tiny, tmp_path):
    models, batches = bench.build_pair(tiny, 2, 10, torch.device("cpu"), tmp_path)
    bench.check_same_loss(models, batches)
    with torch.no_grad():
        models["llava"].model.multi_modal_projector.linear_2.bias.add_(0.5)
    with pytest.raises(AssertionError, match="not the same function"):
        bench.check_same_loss(models, batches)
