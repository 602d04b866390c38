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


def test_the_last_epochs_evaluation_is_the_runs_when_the_weights_are_the_same(tmp_path):
    """The final evaluation would generate what epoch 2's did from the same weights: it is taken
    from it, predictions and metrics, and equals an evaluation made again from the final model."""
    from mlflow import MlflowClient

    from ablate.run.evaluation import eval_plan, evaluate
    from ablate.run.trained import load_trained

    first = tiny_run.run_in_process(_recipe(tmp_path))
    kept = first.run_dir / "predictions-epoch-2.jsonl"
    assert (first.run_dir / "predictions-epoch-1.jsonl").is_file() and kept.is_file()
    assert first.predictions_path.read_text() == kept.read_text()
    assert first.eval_metrics == first.epoch_metrics[2]
    assert MlflowClient(first.tracking_uri).get_run(first.run_id).data.tags["ablate.eval.reused_epoch"] == "2"
    trained = load_trained(first.run_dir)
    again = evaluate(trained.vlm, eval_plan(trained.recipe), progress=None, out=tmp_path / "again.jsonl")
    assert (tmp_path / "again.jsonl").read_text() == kept.read_text() and again.metrics == first.eval_metrics


def test_a_stored_stage_without_this_evals_curve_is_trained_again(tmp_path):
    first = tiny_run.run_in_process(_recipe(tmp_path, limit=4))
    other_eval = tiny_run.run_in_process(_recipe(tmp_path, limit=2))
    assert other_eval.stages[0].reused_from is None
    assert sorted(other_eval.epoch_metrics) == [1, 2]
    # the same stage weights, so the same losses
    assert other_eval.stages[0].metrics["mean_loss"] == pytest.approx(first.stages[0].metrics["mean_loss"], rel=1e-5)


def _resumable(root: Path) -> dict:
    # 8 samples in batches of 2: 4 steps an epoch, a checkpoint after each (the last two kept)
    data = {"type": "inline", "sources": [{"source": tiny_run.easy_vqa("conversation", images=8), "count": 8}]}
    stage = tiny_run.stage("instruct", data=data, template="vicuna_v1", max_steps=-1, epochs=3, batch_size=2,
                           max_length=256, save_steps=4, trainable={"encoder": "frozen", "connector": "full",
                                                                    "llm": "full"})
    evaluation = {"data": tiny_run.easy_vqa("qa", images=2, split="test", limit=4), "evaluator": "exact_match",
                  "max_new_tokens": 3, "batch_size": 4, "each_epoch": True}
    return tiny_run.recipe(root, [stage], eval=evaluation)


@pytest.mark.parametrize("kept, last_checkpoint", [(1, 8), (2, 8), (2, 12)])
def test_a_stage_resumed_after_an_epoch_keeps_its_whole_curve(tmp_path, kept, last_checkpoint):
    """Killed after the checkpoint at the end of epoch 2 (step 8), with the evaluations of the
    first `kept` epochs written: 1, killed while evaluating epoch 2 (evaluated again, on the
    checkpoint's weights, before epoch 3); 2, killed while training epoch 3. Or killed after the
    last checkpoint (step 12), while evaluating epoch 3: evaluated on that checkpoint's weights."""
    import json
    import shutil

    from ablate.run.plan import epoch_curve_key

    data = _resumable(tmp_path)
    first = tiny_run.run_in_process(data)
    stage_dir = tmp_path / "out" / "stages" / first.stages[0].key
    (stage_dir / "meta.json").unlink()
    (stage_dir / "weights.safetensors").unlink()
    if last_checkpoint == 8:
        shutil.rmtree(stage_dir / "checkpoints" / "checkpoint-12")
    kept_file = stage_dir / "epoch_eval.json"
    curve = json.loads(kept_file.read_text())
    assert sorted(curve["epochs"]) == ["1", "2", "3"]
    curve["epochs"] = {e: m for e, m in curve["epochs"].items() if int(e) <= kept}
    kept_file.write_text(json.dumps(curve))

    again = tiny_run.run_in_process(data, resume=True)
    assert again.run_id == first.run_id and again.stages[0].reused_from is None
    assert again.epoch_metrics == first.epoch_metrics and sorted(again.epoch_metrics) == [1, 2, 3]
    stored = json.loads((stage_dir / "meta.json").read_text())["epoch_eval"][epoch_curve_key(tiny_run.load(data))]
    assert {int(e): m for e, m in stored.items()} == first.epoch_metrics
    # the same MLflow run: only the epochs evaluated again are logged again
    assert [step for step, _ in _curve(first.tracking_uri, first.run_id)] == sorted([1, 2, 3, *range(kept + 1, 4)])


def test_a_damaged_kept_curve_is_named(tmp_path):
    from ablate.errors import AblateError
    from ablate.run.epoch_curve import CURVE_FILE, kept_curve

    (tmp_path / CURVE_FILE).write_text('{"curve_key": "k", "epochs": {"one": {}}}')
    with pytest.raises(AblateError, match=f"{CURVE_FILE}: the per-epoch evaluations of an interrupted stage are damaged"):
        kept_curve(tmp_path, "k")
    assert kept_curve(tmp_path, "other") == ({}, None)  # another eval section's curve is not this one's
