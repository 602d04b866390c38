"""What one `ablate run` leaves in MLflow: params, tags, per-step and eval metrics, artifacts;
and a run that fails is marked FAILED with the error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tiny_run


def _only_run(root: Path):
    from mlflow import MlflowClient

    client = MlflowClient(tiny_run.tracking_uri(root))
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    return client, runs[0]


def test_a_run_records_recipe_metrics_and_artifacts(tmp_path):
    data = tiny_run.recipe(tmp_path, [tiny_run.stage("align", max_steps=3)])
    recipe_path = tiny_run.write_recipe(tmp_path, data)
    result = tiny_run.run_in_process(data, recipe_path=recipe_path)
    client, run = _only_run(tmp_path)
    assert run.info.run_id == result.run_id and run.info.status == "FINISHED"

    # params: the resolved recipe, flattened
    params = run.data.params
    assert params["model.connector.type"] == "mlp"
    assert params["model.connector.depth"] == "2"
    assert params["stages.0.lr"] == "0.001"
    assert params["stages.0.name"] == "align"
    assert params["seed"] == "42"

    tags = run.data.tags
    from ablate import __version__
    from ablate.recipe.loading import recipe_hash
    from ablate.tracking import git_commit

    assert tags["ablate.recipe_hash"] == recipe_hash(tiny_run.load(data)) == result.recipe_hash
    assert tags["ablate.version"] == __version__
    commit = git_commit(tiny_run.REPO)
    if commit:  # a git checkout: the code version is recorded
        assert tags["ablate.git_commit"] == commit
    assert tags["ablate.checkpoints"] == str((tmp_path / "out" / "stages").resolve())
    assert tags["ablate.stage.align.key"] == result.stages[0].key
    assert tags["ablate.run_dir"] == str(result.run_dir.resolve())
    # the visual-token count, from the connector the run built (the tiny CLIP: 8 x 8 patches)
    assert run.data.metrics["model/visual_tokens"] == result.visual_tokens == 64

    # per-step training metrics
    def history(key):
        return sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)

    for key in ("align/loss", "align/lr", "align/samples_per_s", "align/tokens_per_s", "align/grad_norm"):
        points = history(key)
        assert [m.step for m in points] == [1, 2, 3], key
        assert all(m.value > 0 for m in points), key
    assert run.data.metrics["align/final_loss"] == history("align/loss")[-1].value
    assert run.data.metrics["align/mean_loss"] == pytest.approx(sum(m.value for m in history("align/loss")) / 3)
    # evaluation and model figures
    assert run.data.metrics["eval/accuracy"] == result.eval_metrics["accuracy"]
    assert 0.0 <= result.eval_metrics["accuracy"] <= 1.0
    assert run.data.metrics["params/connector/trainable"] == result.parameter_counts["connector"]["trainable"] > 0
    assert run.data.metrics["run/seconds"] > 0

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"recipe.yaml", "predictions.jsonl", "summary.json"} <= artifacts
    # artifacts live next to the sqlite store, not in the working directory
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(tmp_path)
    local = Path(client.download_artifacts(run.info.run_id, "predictions.jsonl", str(tmp_path / "dl")))
    assert local.read_text() == result.predictions_path.read_text() and local.read_text().count("\n") == 4


def test_a_scienceqa_eval_logs_the_official_breakdown_under_scienceqa(tmp_path):
    from ablate.scienceqa.generator import make_scienceqa

    root = make_scienceqa(tmp_path / "sqa", n_train=0, n_val=0, n_test=14)
    evaluation = {"data": {"type": "scienceqa", "root": str(root), "split": "test"},
                  "template": "vicuna_v1", "evaluator": "scienceqa", "max_new_tokens": 4, "batch_size": 14}
    data = tiny_run.recipe(tmp_path, [tiny_run.stage("align", max_steps=1)], eval=evaluation, answer_format="QCM-A")
    result = tiny_run.run_in_process(data)
    _, run = _only_run(tmp_path)
    # 14 problems: one per question family, so every column of the paper's table has records
    assert set(result.eval_metrics) == {"NAT", "SOC", "LAN", "TXT", "IMG", "NO", "G1-6", "G7-12", "accuracy"}
    for column, value in result.eval_metrics.items():
        assert run.data.metrics[f"scienceqa/{column}"] == run.data.metrics[f"eval/{column}"] == value
    predictions = [json.loads(line) for line in result.predictions_path.read_text().splitlines()]
    assert len(predictions) == 14 and all(p["extracted"] in {"A", "B", "C", "D", "E", "FAILED"} for p in predictions)


def test_a_run_that_fails_is_marked_failed_with_the_error(tmp_path, monkeypatch):
    import ablate.train.stage
    from ablate.errors import AblateError

    def fails(**_):
        raise AblateError("stage align: out of disk space in checkpoints/")

    monkeypatch.setattr(ablate.train.stage, "run_stage", fails)  # a failure once the stage trains
    data = tiny_run.recipe(tmp_path, [tiny_run.stage("align")])
    with pytest.raises(AblateError, match="out of disk space"):
        tiny_run.run_in_process(data)
    _, run = _only_run(tmp_path)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "AblateError: stage align: out of disk space in checkpoints/"


def test_a_missing_deepspeed_config_stops_the_run_before_it_is_recorded(tmp_path):
    from mlflow import MlflowClient

    from ablate.errors import AblateError

    data = tiny_run.recipe(tmp_path, [tiny_run.stage("align", deepspeed="no-such-zero.json")])
    with pytest.raises(AblateError, match=r"stages\.align\.deepspeed: config file 'no-such-zero.json' not found"):
        tiny_run.run_in_process(data)
    client = MlflowClient(tiny_run.tracking_uri(tmp_path))
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []


def test_a_run_stopped_by_bad_input_writes_nothing(tmp_path):
    from mlflow import MlflowClient

    from ablate.errors import DataError

    missing = tmp_path / "nowhere" / "chat.json"
    data = tiny_run.recipe(tmp_path, [tiny_run.stage("align", {"type": "llava_json", "path": str(missing)})])
    with pytest.raises(DataError, match="not found"):
        tiny_run.run_in_process(data)
    client = MlflowClient(tiny_run.tracking_uri(tmp_path))
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
    assert not (tmp_path / "out").exists()


def _open_tracker(uri: str, barrier) -> str:
    from ablate.tracking import Tracker

    barrier.wait()  # every process opens the fresh store at the same moment
    return Tracker(uri, "race").experiment_id


def test_runs_started_together_on_a_fresh_sqlite_store_all_open_it(tmp_path):
    # Without the creation lock, MLflow's alembic migration ran in every process at once and all
    # but one failed ("Online migration expected to match one row ...").
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with context.Manager() as manager:
        barrier = manager.Barrier(4)
        with context.Pool(4) as pool:
            ids = pool.starmap(_open_tracker, [(uri, barrier)] * 4)
    assert len(set(ids)) == 1
