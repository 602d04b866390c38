"""eval.each_epoch: the last stage is scored after every epoch, and a run that reuses that stage
replays the stored curve (a study's accuracy-vs-epoch plot needs it for every trial)."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiny_run


def _recipe(root: Path, limit: int = 4):
    stage = tiny_run.stage("instruct", tiny_run.easy_vqa("conversation", images=4), template="vicuna_v1",
                           max_steps=-1, epochs=2, batch_size=2, max_length=256)
    evaluation = {"data": tiny_run.easy_vqa("qa", images=2, split="test", limit=limit), "evaluator": "exact_match",
                  "max_new_tokens": 3, "batch_size": 4, "each_epoch": True}
    return tiny_run.recipe(root, [stage], eval=evaluation)


def _curve(tracking_uri: str, run_id: str) -> list[tuple[int, float]]:
    from mlflow import MlflowClient

    history = MlflowClient(tracking_uri).get_metric_history(run_id, "epoch_eval/accuracy")
    return sorted((m.step, m.value) for m in history)


def test_each_epoch_is_scored_stored_and_replayed_on_reuse(tmp_path):
    data = _recipe(tmp_path)
    first = tiny_run.run_in_process(data)
    assert sorted(first.epoch_metrics) == [1, 2]
    curve = _curve(first.tracking_uri, first.run_id)
    assert [step for step, _ in curve] == [1, 2]
    assert [value for _, value in curve] == [first.epoch_metrics[e]["accuracy"] for e in (1, 2)]
    # the curve of the last epoch is the final model's score on the same questions
    assert first.epoch_metrics[2]["accuracy"] == first.eval_metrics["accuracy"]

    again = tiny_run.run_in_process(data)
    assert again.stages[0].reused_from == first.run_id
    assert again.epoch_metrics == first.epoch_metrics
    assert _curve(again.tracking_uri, again.run_id) == curve


def test_a_stored_stage_without_this_evals_curve_is_trained_again(tmp_path):
    first = tiny_run.run_in_process(_recipe(tmp_path, limit=4))
    other_eval = tiny_run.run_in_process(_recipe(tmp_path, limit=2))
    assert other_eval.stages[0].reused_from is None
    assert sorted(other_eval.epoch_metrics) == [1, 2]
    # the same stage weights, so the same losses
    assert other_eval.stages[0].metrics["mean_loss"] == pytest.approx(first.stages[0].metrics["mean_loss"], rel=1e-5)
