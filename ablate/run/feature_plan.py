"""Which parts of a run may read cached encoder features.

Cached features are the checkpoint encoder's. They stay valid while every stage so far has kept
the encoder frozen; once a stage trains it (full or LoRA), later stages and eval encode afresh.

ZeRO-3 stages keep the cache: their encoder is partitioned only once the stage's engine exists.
Before that, rank 0 encodes every image of the stage from the whole encoder, and during the stage
the collator reads stored features only (`ablate.run.execute`), so no rank runs the encoder alone.
"""

from __future__ import annotations


def feature_cache_plan(recipe) -> tuple[list[bool], bool]:
    """(per stage: may its collator use the cache?, may eval use it?)."""
    stages = list(recipe.stages)
    if not recipe.data.feature_cache:
        return [False] * len(stages), False
    per_stage, untouched = [], True
    for stage in stages:
        untouched = untouched and stage.trainable.encoder == "frozen"
        per_stage.append(untouched)
    return per_stage, untouched
