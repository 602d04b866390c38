"""A tiny VLM (the zoo's tiny-clip and tiny-llama, seeded random weights) and the evaluation plan
of a recipe around it, for the evaluation tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "run"))

import tiny_run  # noqa: E402


def tiny_eval(root: Path, data: dict[str, Any], **fields: Any):
    """(vlm in eval mode, EvalPlan, EvalCollator) for an eval-only tiny recipe on `data`."""
    import torch
    from transformers import set_seed

    from ablate.data.collate import EvalCollator
    from ablate.model.build import build_vlm
    from ablate.run.evaluation import eval_plan
    from ablate.zoo import build, zoo_names

    top = {key: fields.pop(key) for key in ("answer_format",) if key in fields}
    recipe = tiny_run.load(tiny_run.recipe(root, [], eval={
        "data": data, "template": "vicuna_v1", "max_new_tokens": 6, "batch_size": 3, **fields}, **top))
    for name in zoo_names(recipe.model):
        build(name)
    torch.set_num_threads(1)
    set_seed(0)
    vlm = build_vlm(recipe.model).eval()
    with torch.no_grad():  # the zoo's init (std 0.02) answers every prompt alike; wider weights tell them apart
        for weight in vlm.llm.parameters():
            weight.normal_(0.0, 0.2)
    collator = EvalCollator(tokenizer=vlm.tokenizer, image_processor=vlm.image_processor)
    return vlm, eval_plan(recipe), collator
