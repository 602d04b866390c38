"""A LoRA stage changes the LLM only by a low-rank delta in its target layers, once merged."""

from __future__ import annotations

import re

import torch

import tiny_run

RANK = 4
# peft's "all-linear" on a Llama: every Linear of the decoder layers, not the output head.
TARGET = re.compile(r"^llm\.model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$")


def _train_one_stage(tmp_path, trainable):
    """What the runner does for one stage, keeping hold of the live model."""
    from ablate.data.collate import VLMCollator
    from ablate.data.pipeline import build_dataset
    from ablate.model.build import build_vlm
    from ablate.model.trainable import apply_trainable, merge_lora
    from ablate.registry import registries
    from ablate.tracking import Tracker
    from ablate.train.stage import run_stage

    torch.manual_seed(0)
    recipe = tiny_run.load(tiny_run.recipe(tmp_path, [
        tiny_run.stage("lora", tiny_run.easy_vqa("qa", images=4), template="vicuna_v1", trainable=trainable,
                       lr=1e-2, max_steps=3),
    ], eval=False))
    stage = recipe.stages[0]
    vlm = build_vlm(recipe.model)
    before = {k: v.detach().clone() for k, v in vlm.state_dict().items()}
    regs = registries()
    source = regs.mixture.get(stage.data.type).build(stage.data)
    template = regs.template.get(stage.template.type).build(stage.template)
    dataset = build_dataset(source, template, vlm.tokenizer, max_length=stage.max_length,
                            cache_dir=tmp_path / "cache")
    vlm.max_length = stage.max_length
    apply_trainable(vlm, stage.trainable)
    training = {n for n, p in vlm.named_parameters() if p.requires_grad}
    result = run_stage(vlm=vlm, stage=stage, seed=recipe.seed, dataset=dataset,
                       collator=VLMCollator(tokenizer=vlm.tokenizer, image_processor=vlm.image_processor),
                       workdir=tmp_path / "stage", tracker=Tracker(None, "unused", enabled=False), progress=None)
    merge_lora(vlm)
    return vlm, stage, before, training, result


def test_lora_stage_changes_only_lora_targets_by_a_low_rank_delta_and_the_connector(tmp_path):
    from ablate.train.trainer import stage_state_dict

    torch.set_num_threads(1)
    vlm, stage, before, training, result = _train_one_stage(
        tmp_path, {"encoder": "frozen", "connector": "full", "llm": {"lora": {"r": RANK}}})
    assert result.steps == 3

    # During the stage only the adapters and the connector train.
    assert training and all(n.startswith("connector.") or ".lora_A." in n or ".lora_B." in n for n in training)
    assert any(".lora_B." in n for n in training)

    after = vlm.state_dict()
    assert set(after) == set(before), "merging must give back the LLM's own weight names"
    changed = {k for k in after if not torch.equal(after[k], before[k])}

    assert not any(k.startswith("encoder.") for k in changed), "the frozen encoder must not change"
    assert {k for k in after if k.startswith("connector.")} <= changed, "every connector weight trains"

    targets = [k for k in after if TARGET.match(k)]
    assert len(targets) == 4 * 7  # 4 layers x (q, k, v, o, gate, up, down)
    llm_changed = {k for k in changed if k.startswith("llm.")}
    assert llm_changed == set(targets), f"non-target LLM weights changed: {sorted(llm_changed - set(targets))[:5]}"
    for key in targets:
        delta = (after[key] - before[key]).double()
        s = torch.linalg.svdvals(delta)
        assert s[0] > 1e-6, key
        # rank r: beyond the r-th, singular values are float32 rounding noise
        assert s[RANK - 1] / s[0] > 1e-3 and s[RANK] / s[0] < 1e-4, (key, s[: RANK + 2])

    # What the stage store keeps: whole connector and merged LLM, no encoder, no adapter weights.
    saved = stage_state_dict(vlm, stage.trainable)
    assert set(saved) == {k for k in after if k.startswith(("connector.", "llm."))}
    assert all(torch.equal(saved[k], after[k]) for k in saved)
