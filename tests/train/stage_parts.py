"""One stage set up the way the runner sets it up, keeping hold of the live model and Trainer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tiny_run


@dataclass
class StageParts:
    recipe: Any
    stage: Any
    vlm: Any
    dataset: Any
    collator: Any

    def trainer(self, workdir: Path):
        """The VLMTrainer exactly as `run_stage` builds it (arguments, connector lr)."""
        from ablate.train.stage import deepspeed_settings, training_arguments
        from ablate.train.trainer import VLMTrainer

        args = training_arguments(self.stage, self.recipe.seed, workdir, deepspeed_settings(self.stage, None))
        return VLMTrainer(model=self.vlm, args=args, train_dataset=self.dataset, data_collator=self.collator,
                          connector_lr=self.stage.connector_lr,
                          group_by_modality_length=self.stage.group_by_modality_length)

    def train(self, workdir: Path):
        from ablate.tracking import Tracker
        from ablate.train.stage import run_stage

        return run_stage(vlm=self.vlm, stage=self.stage, seed=self.recipe.seed, dataset=self.dataset,
                         collator=self.collator, workdir=workdir, tracker=Tracker(None, "unused", enabled=False),
                         progress=None)


def stage_parts(tmp_path: Path, stage: dict[str, Any]) -> StageParts:
    """A tiny VLM seeded as the runner seeds it, the stage's dataset and collator, trainable parts set."""
    from ablate.data.collate import VLMCollator
    from ablate.data.pipeline import build_dataset
    from ablate.model.build import build_vlm
    from ablate.model.trainable import apply_trainable
    from ablate.registry import registries

    from transformers import set_seed

    recipe = tiny_run.load(tiny_run.recipe(tmp_path, [stage], eval=False))
    stage = recipe.stages[0]
    set_seed(recipe.seed)
    vlm = build_vlm(recipe.model)
    regs = registries()
    source = regs.mixture.get(stage.data.type).build(stage.data)
    template = regs.template.get(stage.template.type).build(stage.template)
    dataset = build_dataset(source, template, vlm.tokenizer, max_length=stage.max_length, cache_dir=tmp_path / "cache")
    vlm.max_length = stage.max_length
    apply_trainable(vlm, stage.trainable)
    collator = VLMCollator(tokenizer=vlm.tokenizer, image_processor=vlm.image_processor)
    return StageParts(recipe, stage, vlm, dataset, collator)
