"""A finished run folder as a model: the recipe it ran, and its VLM with every stage's weights.

A run folder (`<output_dir>/<name>-<hash>/`) keeps the resolved `recipe.yaml` and a
`summary.json` naming each stage's store key; the weights live in `<output_dir>/stages/<key>/`
(see `ablate.run.stage_store`). Loading builds the recipe's model from its checkpoints, as the
run did, then loads each stage's stored weights in order. LoRA adapters were merged before a
stage was stored, so no adapter is applied here. Used by `ablate export` and by the lmms-eval
`ablate` model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.errors import AblateError
from ablate.run.stage_store import StageStore, StoredStateError, read_json

SUMMARY = "summary.json"
RECIPE = "recipe.yaml"


class NotARunError(AblateError):
    """A folder given as a run folder is not a finished ablate run."""


@dataclass
class TrainedRun:
    run_dir: Path
    recipe: Any  # the validated Recipe the run carried out
    summary: dict[str, Any]
    vlm: Any  # VisionLanguageModel with the run's trained weights, in eval mode

    @property
    def stage_keys(self) -> list[str]:
        return [stage["key"] for stage in self.summary.get("stages", [])]


def read_run(run_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """(recipe, summary) of a finished run folder; NotARunError naming what is missing."""
    from ablate.recipe.loading import load_recipe

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NotARunError(f"{run_dir}: not a folder (expected an ablate run folder, <output_dir>/<name>-<hash>)")
    for name in (RECIPE, SUMMARY):
        if not (run_dir / name).is_file():
            raise NotARunError(f"{run_dir}: no {name}; this is not a finished ablate run folder "
                               f"(a run writes {SUMMARY} when it ends)")
    summary = read_json(run_dir / SUMMARY, what="run summary")
    stages = summary.get("stages")
    if not isinstance(stages, list) or not all(isinstance(s, dict) and _is_key(s.get("key")) for s in stages):
        raise StoredStateError(f"run summary {run_dir / SUMMARY} has no list of stages with keys; run it again")
    recipe = load_recipe(run_dir / RECIPE)
    # A summary that lost a stage would load the model without that stage's weights: an
    # untrained connector exported as if trained.
    listed, planned = [s.get("name") for s in stages], [s.name for s in recipe.stages]
    if listed != planned:
        raise StoredStateError(f"run summary {run_dir / SUMMARY} lists the stages {listed}, but the run's "
                               f"{RECIPE} has {planned} (damaged, or from another run); run it again")
    return recipe, summary


def _is_key(key: Any) -> bool:
    """A store key is one folder name under stages/ (hex digits), never a path out of it."""
    return isinstance(key, str) and re.fullmatch(r"[0-9A-Za-z_-]+", key) is not None


def load_trained(run_dir: str | Path, *, dtype: Any = None) -> TrainedRun:
    """The run's model with its trained weights (zoo checkpoints are built first if missing)."""
    from transformers import set_seed

    from ablate.model.build import build_vlm
    from ablate.run.runner import build_zoo_checkpoints

    run_dir = Path(run_dir)
    recipe, summary = read_run(run_dir)
    store = StageStore(run_dir.parent / "stages")
    keys = [stage["key"] for stage in summary["stages"]]
    for key in keys:
        if not store.is_done(key):
            raise NotARunError(f"{run_dir}: stage weights {store.dir(key)} are missing; the run folder must sit "
                               f"beside the stages/ folder of the output_dir that trained it")
        store.meta(key)  # checks the weights' fingerprint before anything is loaded
    build_zoo_checkpoints(recipe.model)
    set_seed(recipe.seed)  # weights no stage trained are drawn as the run drew them
    vlm = build_vlm(recipe.model, dtype=dtype)
    for key in keys:
        store.load_into(key, vlm)
    vlm.requires_grad_(False)
    vlm.eval()
    return TrainedRun(run_dir, recipe, summary, vlm)
