"""Finished stages, stored by a content hash of everything that determines their weights.

Key = hash(model config, answer format (when the stage's data reads it), bad-sample policy, stage config minus logging/saving
knobs, seed, previous stage's key). Two runs (or study trials) whose first k stages agree share
those stages: the later one loads the stored weights instead of training again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator

from ablate.recipe.loading import content_hash

# Stage fields that change how a stage is logged or saved, not the weights it produces.
NON_SEMANTIC_STAGE_FIELDS = {"name", "logging_steps", "save_steps", "save_total_limit", "dataloader_workers"}
WEIGHTS = "weights.safetensors"
META = "meta.json"


def uses_answer_format(block: Any) -> bool:
    """Whether a data block holds a source that reads the recipe-level answer format
    (a data source whose config has an `answer_format` field, like `scienceqa`)."""
    from ablate.recipe.compatibility import reads_answer_format

    return reads_answer_format(block)


def stage_keys(recipe) -> list[str]:
    keys: list[str] = []
    prev = None
    for stage in recipe.stages:
        data = stage.data.model_dump(mode="json")
        fmt = recipe.answer_format.model_dump(mode="json") if recipe.answer_format and uses_answer_format(data) else None
        payload = {
            "model": recipe.model.model_dump(mode="json"),
            "answer_format": fmt,
            "on_bad_sample": recipe.data.on_bad_sample,
            "stage": stage.model_dump(mode="json", exclude=NON_SEMANTIC_STAGE_FIELDS),
            "seed": recipe.stage_seed(stage),
            # freshly initialised weights (the connector) are drawn with the recipe's seed
            "init_seed": recipe.seed if prev is None else None,
            "previous": prev,
        }
        prev = content_hash(payload, length=16)
        keys.append(prev)
    return keys


class StageStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def dir(self, key: str) -> Path:
        return self.root / key

    def is_done(self, key: str) -> bool:
        return (self.dir(key) / META).is_file() and (self.dir(key) / WEIGHTS).is_file()

    def meta(self, key: str) -> dict[str, Any]:
        return json.loads((self.dir(key) / META).read_text())

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Exclusive per-stage lock, so two workers never train the same stage at once."""
        self.dir(key).mkdir(parents=True, exist_ok=True)
        with open(self.dir(key) / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def save(self, key: str, weights: dict, meta: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        d = self.dir(key)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / (WEIGHTS + ".tmp")
        save_file(weights, str(tmp), metadata={"format": "pt"})
        os.replace(tmp, d / WEIGHTS)
        (d / (META + ".tmp")).write_text(json.dumps(meta, indent=2, default=str))
        os.replace(d / (META + ".tmp"), d / META)

    def load_into(self, key: str, model) -> None:
        from safetensors.torch import load_file

        state = load_file(str(self.dir(key) / WEIGHTS))
        missing_unexpected = model.load_state_dict(state, strict=False)
        if missing_unexpected.unexpected_keys:
            from ablate.errors import AblateError

            raise AblateError(f"stored stage {key} does not fit this model: unexpected keys "
                              f"{missing_unexpected.unexpected_keys[:5]}")
