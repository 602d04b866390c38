"""Which parts of a run may read cached encoder features.

Cached features are the checkpoint encoder's. They stay valid while every stage so far has kept
the encoder frozen; once a stage trains it (full or LoRA), later stages and eval encode afresh.
Under DeepSpeed ZeRO-3 the encoder's weights are partitioned across ranks and gathered by
collective calls, which per-rank cache misses would leave unmatched, so the cache stays off.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def feature_cache_plan(recipe, base_dir: Path | None = None) -> tuple[list[bool], bool]:
    """(per stage: may its collator use the cache?, may eval use it?)."""
    stages = list(recipe.stages)
    if not recipe.data.feature_cache or any(_zero_stage(s, base_dir) == 3 for s in stages):
        return [False] * len(stages), False
    per_stage, untouched = [], True
    for stage in stages:
        untouched = untouched and stage.trainable.encoder == "frozen"
        per_stage.append(untouched)
    return per_stage, untouched


def _zero_stage(stage, base_dir: Path | None) -> int | None:
    if stage.deepspeed is None:
        return None
    config: Any = stage.deepspeed
    if not isinstance(config, dict):
        from ablate.errors import AblateError
        from ablate.train.stage import deepspeed_config

        try:
            config = json.loads(Path(deepspeed_config(stage, base_dir)).read_text())
        except (AblateError, OSError, ValueError):
            return None  # training that stage reports the bad config; a reused one never reads it
    stage_id = (config.get("zero_optimization") or {}).get("stage")
    return int(stage_id) if isinstance(stage_id, (int, str)) and str(stage_id).isdigit() else None
