"""Gradient accumulation: two micro-batches of 2 make the same optimizer step as one batch of 4."""

from __future__ import annotations

import pytest

import tiny_run

FULL = {"encoder": "frozen", "connector": "full", "llm": "full"}


def _one_step(root, batch_size: int, grad_accum: int):
    # SGD: an update proportional to the gradient (Adam's first step is about lr * sign(grad),
    # blind to how the loss was averaged). The 4 conversations have 18, 12, 22 and 24 answer
    # tokens (none cut at 256), so averaging per micro-batch instead of per token would show
    # (it moves the loss and the weights by ~4e-4).
    stage = tiny_run.stage("s", tiny_run.easy_vqa("conversation", images=4), template="vicuna_v1", trainable=FULL,
                           optimizer="sgd", lr=0.5, scheduler="constant", max_steps=1, max_length=256,
                           batch_size=batch_size, grad_accum=grad_accum)
    result = tiny_run.run_in_process(tiny_run.recipe(root, [stage], eval=False))
    outcome = result.stages[0]
    return outcome.metrics["final_loss"], tiny_run.stage_weights(root / "out", outcome.key)


def test_accumulating_two_batches_of_2_equals_one_batch_of_4(tmp_path):
    loss4, weights4 = _one_step(tmp_path / "b4", batch_size=4, grad_accum=1)
    loss2x2, weights2x2 = _one_step(tmp_path / "b2x2", batch_size=2, grad_accum=2)
    assert loss2x2 == pytest.approx(loss4, abs=1e-6)
    assert set(weights2x2) == set(weights4)
    assert max((weights4[k] - weights2x2[k]).abs().max().item() for k in weights4) < 1e-6
