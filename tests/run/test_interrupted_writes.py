"""A run stopped part-way leaves state the next run reads as it was meant: a stage either stored
whole or not stored (never a mix that reads as a corrupted copy), and a resumed run counts what
the stopped one counted."""

from __future__ import annotations

import pytest

import tiny_run


class Killed(BaseException):
    """Stands for the process dying at this line."""


def _die(*_args, **_kwargs):
    raise Killed


def test_a_stage_saved_again_and_killed_before_its_meta_is_not_done_not_corrupted(tmp_path, monkeypatch):
    """--no-reuse (or a stage stored without the per-epoch curve a recipe wants) trains a stored
    stage again; killed after its new weights replaced the old ones but before the new meta.json
    was written, the old meta.json would name the new weights corrupted and stop every later run."""
    import torch

    from ablate.run import stage_store
    from ablate.run.stage_store import StageStore

    store = StageStore(tmp_path / "stages")
    store.save("k", {"w": torch.zeros(3)}, {"stage": "align", "run_id": "first", "steps": 2})
    assert store.meta("k")["run_id"] == "first"

    monkeypatch.setattr(stage_store, "write_json", _die)
    with pytest.raises(Killed):
        store.save("k", {"w": torch.ones(3)}, {"stage": "align", "run_id": "second", "steps": 2})
    monkeypatch.undo()

    assert not store.is_done("k"), "half a save is no stored stage: the next run trains (or resumes) it"
    store.save("k", {"w": torch.ones(3)}, {"stage": "align", "run_id": "third", "steps": 2})
    assert store.meta("k")["run_id"] == "third"


def test_a_resumed_run_counts_the_bad_samples_of_the_stage_it_stored_before_it_was_stopped(tmp_path, monkeypatch):
    """Stopped after its first stage was stored, a run resumed with --resume loads that stage
    instead of training it: the samples that stage skipped were left out of the run's count."""
    from mlflow import MlflowClient

    from ablate.train import stage as stage_module
    from test_bad_samples import _llava_json

    source = {"type": "llava_json", "path": str(_llava_json(tmp_path / "data")),
              "image_root": str(tmp_path / "data" / "images")}
    stages = [tiny_run.stage("align", source, max_steps=2),
              tiny_run.stage("instruct", source, max_steps=2, template="vicuna_v1")]
    data = tiny_run.recipe(tmp_path, stages, eval=False, data={"on_bad_sample": "skip"})
    train = stage_module.run_stage

    def stopped_at_instruct(**kwargs):
        if kwargs["stage"].name == "instruct":
            raise KeyboardInterrupt
        return train(**kwargs)

    monkeypatch.setattr(stage_module, "run_stage", stopped_at_instruct)
    with pytest.raises(KeyboardInterrupt):
        tiny_run.run_in_process(data)
    monkeypatch.undo()

    resumed = tiny_run.run_in_process(data, resume=True)
    assert resumed.stages[0].reused_from == resumed.run_id  # align: stored by this run before it stopped
    assert resumed.skipped_samples == 2  # one bad record read by each stage, as an uninterrupted run counts
    assert tiny_run.summary(resumed.run_dir)["skipped_samples"] == 2
    assert MlflowClient(resumed.tracking_uri).get_run(resumed.run_id).data.metrics["data/skipped_samples"] == 2
    assert tiny_run.run_in_process(data, reuse_stages=False).skipped_samples == 2  # the uninterrupted count
