"""mix665k-like records that open with a gpt turn or end with a human turn train (as in LLaVA) and
are counted per stage: in the outcome, summary.json, MLflow and the printed summary, also when
the stage is reused."""

from __future__ import annotations

import json

import tiny_run


def _llava_json(root):
    from PIL import Image

    (root / "images").mkdir(parents=True)
    records = []
    for i, color in enumerate(["red", "green", "blue", "yellow"]):
        Image.new("RGB", (32, 32), color).save(root / "images" / f"{i}.png")
        records.append({"id": f"img{i}", "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is this?"}, {"from": "gpt", "value": f"It is {color}."}]})
    opening = {"from": "gpt", "value": "Hello! Ask me anything."}
    closing = {"from": "human", "value": "Thanks, and what else?"}
    chat = [{"from": "human", "value": "Name a colour."}, {"from": "gpt", "value": "Green."}]
    records += [{"id": "opens", "conversations": [opening, *chat]}, {"id": "closes", "conversations": [*chat, closing]},
                {"id": "both", "conversations": [opening, *chat, closing]}, {"id": "plain", "conversations": chat}]
    (root / "mix.json").write_text(json.dumps(records))
    return {"type": "llava_json", "path": str(root / "mix.json"), "image_root": str(root / "images")}


def test_opening_gpt_and_closing_human_turns_are_counted_per_stage(tmp_path):
    from mlflow import MlflowClient
    from rich.console import Console

    from ablate.cli import run_cmd

    source = _llava_json(tmp_path / "data")
    stage = tiny_run.stage("chat", source, template="vicuna_v1", max_steps=2, group_by_modality_length=True,
                           trainable={"encoder": "frozen", "connector": "full", "llm": "full"})
    data = tiny_run.recipe(tmp_path, [stage], eval=False)
    expected = {"opening_gpt_turns_dropped": 2, "closing_human_turns_masked": 2}

    result = tiny_run.run_in_process(data)
    assert result.stages[0].steps == 2 and result.skipped_samples == 0
    assert result.stages[0].turn_edges == expected
    assert tiny_run.summary(result.run_dir)["stages"][0]["turn_edges"] == expected
    metrics = MlflowClient(result.tracking_uri).get_run(result.run_id).data.metrics
    assert {k: metrics[f"data/chat/{k}"] for k in expected} == expected

    console = Console(width=200, record=True)
    run_cmd.console, saved = console, run_cmd.console
    try:
        run_cmd.print_summary(result)
    finally:
        run_cmd.console = saved
    assert ("stage chat: dropped the opening gpt turn of 2 records, masked the unanswered closing human turn of 2 "
            "(as LLaVA's preprocessing)") in console.export_text()

    again = tiny_run.run_in_process(data)  # the stored stage is reused: its counts come with it
    assert again.stages[0].reused_from == result.run_id and again.stages[0].turn_edges == expected
