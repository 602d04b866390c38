"""`data.on_bad_sample: skip`: a run over data with a broken sample finishes and reports the count."""

from __future__ import annotations

import json

import tiny_run


def _llava_json(root):
    from PIL import Image

    images = root / "images"
    images.mkdir(parents=True)
    records = []
    for i, color in enumerate(["red", "green", "blue", "yellow", "purple"]):
        Image.new("RGB", (64, 64), color).save(images / f"{i}.png")
        records.append({"id": f"s{i}", "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is this?"}, {"from": "gpt", "value": f"It is {color}."}]})
    records.insert(2, {**records[0], "id": "gone", "image": "missing.png"})
    path = root / "chat.json"
    path.write_text(json.dumps(records))
    return path


def test_skipped_samples_are_counted_in_the_summary_and_mlflow(tmp_path):
    from mlflow import MlflowClient

    source = {"type": "llava_json", "path": str(_llava_json(tmp_path / "data")), "image_root": str(tmp_path / "data" / "images")}
    data = tiny_run.recipe(tmp_path, [tiny_run.stage("align", source, max_steps=2)], eval=False,
                           data={"on_bad_sample": "skip"})
    result = tiny_run.run_in_process(data)

    assert result.stages[0].steps == 2
    assert result.skipped_samples == 1
    assert tiny_run.summary(result.run_dir)["skipped_samples"] == 1
    run = MlflowClient(result.tracking_uri).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["data/skipped_samples"] == 1


def test_samples_only_tokenizing_rejects_are_counted_once_across_epochs_and_dataloader_workers(tmp_path):
    """A question so long that max_length cuts off its whole answer is found when the sample is read,
    in a DataLoader worker; it counts once though two epochs read it, beside the missing image."""
    from mlflow import MlflowClient

    from ablate.run.stage_store import StageStore

    path = _llava_json(tmp_path / "data")
    records = json.loads(path.read_text())
    records.append({**records[1], "id": "long", "conversations": [
        {"from": "human", "value": "<image>\n" + "word " * 60 + "What colour is this?"},
        {"from": "gpt", "value": "It is green."}]})
    path.write_text(json.dumps(records))
    source = {"type": "llava_json", "path": str(path), "image_root": str(tmp_path / "data" / "images")}
    stage = tiny_run.stage("align", source, template="vicuna_v1", max_length=64, max_steps=6, dataloader_workers=1)
    result = tiny_run.run_in_process(tiny_run.recipe(tmp_path, [stage], eval=False, data={"on_bad_sample": "skip"}))

    assert result.stages[0].steps == 6  # 6 samples a epoch in batches of 2: two epochs
    assert result.skipped_samples == 2 and tiny_run.summary(result.run_dir)["skipped_samples"] == 2
    assert StageStore(tmp_path / "out" / "stages").meta(result.stages[0].key)["skipped_when_read"] == ["chat/long"]
    assert MlflowClient(result.tracking_uri).get_run(result.run_id).data.metrics["data/skipped_samples"] == 2


def test_the_same_data_fails_the_run_by_default(tmp_path):
    import pytest

    from ablate.errors import DataError

    source = {"type": "llava_json", "path": str(_llava_json(tmp_path / "data")), "image_root": str(tmp_path / "data" / "images")}
    data = tiny_run.recipe(tmp_path, [tiny_run.stage("align", source, max_steps=2)], eval=False)
    with pytest.raises(DataError, match="sample .gone.: image file not found"):
        tiny_run.run_in_process(data)
