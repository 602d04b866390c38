"""Pinned losses: three seeded steps per stage must give these exact numbers.

Any change to the models, data, templates, collation, splice or training loop that alters
what is trained shows up here. If a change is intended, rerun and update the numbers (and say
why in the commit).
"""

from __future__ import annotations

import pytest
import torch

import tiny_run

# align: plain template, connector only; instruct: vicuna_v1, connector + full LLM.
ALIGN_LOSSES = [7.210766, 6.624355, 6.436108]
INSTRUCT_LOSSES = [6.918439, 5.685961, 4.392612]


def test_three_seeded_steps_give_the_pinned_losses(tmp_path):
    from mlflow import MlflowClient

    torch.set_num_threads(1)
    data = tiny_run.recipe(tmp_path, [
        tiny_run.stage("align"),
        tiny_run.stage("instruct", tiny_run.easy_vqa("qa", images=4), template="vicuna_v1",
                       trainable={"encoder": "frozen", "connector": "full", "llm": "full"}),
    ], eval=False)
    result = tiny_run.run_in_process(data)

    client = MlflowClient(result.tracking_uri)
    history = {name: [(m.step, m.value) for m in sorted(client.get_metric_history(result.run_id, f"{name}/loss"),
                                                         key=lambda m: m.step)]
               for name in ("align", "instruct")}
    lrs = [m.value for m in sorted(client.get_metric_history(result.run_id, "align/lr"), key=lambda m: m.step)]
    assert [s for s, _ in history["align"]] == [1, 2, 3]
    # linear decay from 1e-3 over 3 steps, no warmup: the lr each step used
    assert lrs == pytest.approx([1e-3, 2e-3 / 3, 1e-3 / 3], rel=1e-6)
    assert [v for _, v in history["align"]] == pytest.approx(ALIGN_LOSSES, abs=1e-4)
    assert [v for _, v in history["instruct"]] == pytest.approx(INSTRUCT_LOSSES, abs=1e-4)
    assert result.stages[1].metrics["final_loss"] == pytest.approx(INSTRUCT_LOSSES[-1], abs=1e-4)
    assert result.stages[1].metrics["mean_loss"] == pytest.approx(sum(INSTRUCT_LOSSES) / 3, abs=1e-4)
