"""Stale cells: finished runs whose recorded recipe hash or stage keys differ from what the study
file gives now (it, a recipe it builds on, or a stage's inputs changed since they ran).

Computed from the MLflow tags of the cell's run (`ablate.recipe_hash`,
`ablate.stage.<stage>.key`) and the cell's recipe resolved again: nothing is trained or loaded.
`ablate study` and `ablate report` both use it; the report leaves stale cells out of its means
unless asked to include them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SHORT = 6  # hash digits shown in a reason




@dataclass(frozen=True)
class Expected:
    """What a cell's run would record if it ran now."""

    recipe_hash: str
    stage_keys: dict[str, str]  # stage name -> key, in stage order


def expected_of(recipe, world_size: int = 1) -> Expected:
    """What a run of `recipe` with `world_size` processes would record now (its stage keys read
    the data and checkpoint files; a `zoo:` checkpoint not built here counts as changed)."""
    from ablate.recipe.loading import recipe_hash
    from ablate.run.plan import current_stage_keys

    keys = current_stage_keys(recipe, world_size=world_size)
    return Expected(recipe_hash(recipe), {stage.name: key for stage, key in zip(recipe.stages, keys)})


def stale_reason(recipe_hash: str | None, stage_keys: dict[str, str], expected: Expected) -> str | None:
    """Why a run that recorded these tags is stale, or None when it is current. A run that
    recorded no hash (or no stage keys) is judged on what it did record."""
    reasons = []
    if recipe_hash and recipe_hash != expected.recipe_hash:
        reasons.append(f"recipe hash {recipe_hash[:SHORT]} → {expected.recipe_hash[:SHORT]}")
    if stage_keys:
        if set(stage_keys) != set(expected.stage_keys):
            reasons.append(f"stages {', '.join(sorted(stage_keys))} → {', '.join(sorted(expected.stage_keys)) or 'none'}")
        for name, key in expected.stage_keys.items():
            if name in stage_keys and stage_keys[name] != key:
                reasons.append(f"stage {name} key changed")
    return "; ".join(reasons) or None


def stale_cells(runs: list[Any], recipes: dict[str, Any]) -> dict[str, str]:
    """{cell id: reason} for each run (a collect.CellRun) that is stale; cells without a recipe
    (not in the study file now) are not judged."""
    out, expected = {}, {}
    for run in runs:
        if run.cell in recipes:
            want = (run.cell, run.world_size)
            if want not in expected:
                expected[want] = expected_of(recipes[run.cell], run.world_size)
            reason = stale_reason(run.recipe_hash, run.stage_keys, expected[want])
            if reason:
                out[run.cell] = reason
    return out


def judge_runs(study, scale: str, runs: list[Any], recipes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """(every run's cell recipe now, as recipes_for_runs gives it; {cell id: why it is stale})."""
    recipes = recipes_for_runs(study, scale, runs, recipes)
    return recipes, stale_cells(runs, recipes)


def recipes_for_runs(study, scale: str, runs: list[Any], recipes: dict[str, Any]) -> dict[str, Any]:
    """`recipes` (cell id -> Recipe) plus, for each run whose cell it lacks (e.g. a seed beyond
    today's --seeds), the cell's recipe resolved from the study file now."""
    from ablate.errors import AblateError
    from ablate.study.cells import base_source, cell_recipe

    out = dict(recipes)
    base = None
    for run in runs:
        if run.cell in out or (cell := _cell_of(study, run)) is None:
            continue  # known, or an arm the study file no longer has (not in the report either)
        base = base or base_source(study, scale)
        try:
            out[run.cell] = cell_recipe(study, scale, cell, base)
        except AblateError:
            continue  # validated for the study's own seeds; a stray seed that fails is not judged
    return out


def _cell_of(study, run):
    from ablate.study.cells import Cell

    labels = []
    for axis in study.spec.axes:
        label = run.labels.get(axis.name)
        if label not in axis.labels():
            return None
        labels.append((axis.name, label))
    return Cell(tuple(labels), run.seed)
