"""Under torchrun every rank evaluates a share of the items and rank 0 gathers them: the
predictions and metrics equal a one-process evaluation's, in the same order."""

from __future__ import annotations

import json

import pytest

import tiny_run


def _eval_only(root):
    data = tiny_run.recipe(root, [], eval={
        "data": tiny_run.easy_vqa("qa", images=3, split="test", limit=7),  # 7: the ranks get 4 and 3
        "template": "vicuna_v1", "evaluator": "exact_match", "max_new_tokens": 4, "batch_size": 2,
    })
    return data


def _predictions(root):
    (path,) = (root / "out").glob("tiny-*/predictions.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_two_ranks_evaluate_like_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    single = tiny_run.run_in_process(_eval_only(one))
    _, run = tiny_run.torchrun(two, _eval_only(two), nproc=2)
    assert run.data.tags["ablate.world_size"] == "2"
    assert _predictions(two) == _predictions(one) and len(_predictions(one)) == 7
    assert {k: run.data.metrics[f"eval/{k}"] for k in single.eval_metrics} == single.eval_metrics
