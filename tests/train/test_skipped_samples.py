"""Samples the collator leaves out (`on_bad_sample: skip`) are counted by the stage, and the count
survives a checkpoint: it is part of the trainer state a resumed stage starts from."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from ablate.data.collate import SkippedSampleWarning

from stage_parts import stage_parts


def _chat_json(root):
    """Three short records and one whose question leaves no answer token within max_length 64."""
    (root / "images").mkdir(parents=True)
    records = []
    for i, (color, words) in enumerate([("red", 0), ("green", 60), ("blue", 0), ("yellow", 0)]):
        Image.new("RGB", (32, 32), color).save(root / "images" / f"{i}.png")
        question = "<image>\n" + "word " * words + "What colour is this?"
        records.append({"id": "long" if words else f"s{i}", "image": f"{i}.png", "conversations": [
            {"from": "human", "value": question}, {"from": "gpt", "value": f"It is {color}."}]})
    (root / "chat.json").write_text(json.dumps(records))
    return {"type": "llava_json", "path": str(root / "chat.json"), "image_root": str(root / "images")}


def _skipping_parts(tmp_path, **fields):
    import tiny_run
    from ablate.data.pipeline import build_dataset
    from ablate.registry import registries

    stage = tiny_run.stage("align", _chat_json(tmp_path / "data"), template="vicuna_v1", max_length=64, **fields)
    parts = stage_parts(tmp_path, stage)
    source = registries().mixture.get(parts.stage.data.type).build(parts.stage.data)
    template = registries().template.get("vicuna_v1").build({})
    parts.dataset = build_dataset(source, template, parts.vlm.tokenizer, max_length=64, cache_dir=tmp_path / "cache",
                                  on_bad_sample="skip")
    return parts


def test_a_stage_counts_the_samples_left_out_and_its_checkpoint_keeps_them(tmp_path):
    from transformers import TrainerState

    from ablate.train.callbacks import SkippedSamplesCallback
    from ablate.train.stage import run_stage

    parts = _skipping_parts(tmp_path, max_steps=4, save_steps=2)  # two epochs of two batches
    with pytest.warns(SkippedSampleWarning, match="sample 'chat/long' skipped"):
        result = parts.train(tmp_path / "work")
    assert result.steps == 4 and result.skipped_ids == ["chat/long"]
    checkpoint = tmp_path / "work" / "checkpoints" / "checkpoint-2"
    state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    assert state.stateful_callbacks["SkippedSamplesCallback"]["args"]["ids"] == ["chat/long"]

    resumed = SkippedSamplesCallback()  # a stage resumed mid-way starts from the checkpoint's ids
    resumed.on_train_begin(None, state, None)
    assert resumed.ids == ["chat/long"]

    final = tmp_path / "work" / "checkpoints" / "checkpoint-4"  # killed after its last checkpoint
    (tmp_path / "again").mkdir()
    again = run_stage(vlm=parts.vlm, stage=parts.stage, seed=42, dataset=parts.dataset, collator=parts.collator,
                      workdir=tmp_path / "again", tracker=_no_tracker(), progress=None, resume_from=final)
    assert again.steps == 4 and again.skipped_ids == ["chat/long"]


def _no_tracker():
    from ablate.tracking import Tracker

    return Tracker(None, "unused", enabled=False)
