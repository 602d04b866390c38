"""`ablate validate RECIPE [-s path=value ...]`: print the resolved recipe or every problem."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer
import yaml

from ablate.cli.console import console
from ablate.plan.gpus import MAX_GPUS

Overrides = typer.Option([], "--set", "-s", help="override a field: -s model.connector.depth=3 (repeatable)")


def validate(
    recipe: Path = typer.Argument(..., help="recipe YAML"),
    overrides: List[str] = Overrides,
    plan: bool = typer.Option(False, "--plan", help="print the stage plan (reuse / resume / train, and why) and what "
                              "the run evaluates, instead of the resolved recipe; reads the data, eval data and "
                              "checkpoint files, trains nothing"),
    resume: bool = typer.Option(False, "--resume", help="plan as `ablate run --resume` would"),
    no_reuse: bool = typer.Option(False, "--no-reuse", help="plan as `ablate run --no-reuse` would"),
    world_size: int = typer.Option(1, "--world-size", min=1, max=MAX_GPUS, help="plan for this many training processes"),
) -> None:
    """Validate a recipe (with overrides) and print its resolved form and hash, or its stage plan."""
    from ablate.recipe import load_recipe, recipe_hash

    resolved = load_recipe(recipe, overrides)
    console.print(f"# {recipe} is valid; recipe hash [bold]{recipe_hash(resolved)}[/]", highlight=False)
    if plan:
        _print_plan(resolved, resume=resume, reuse=not no_reuse, world_size=world_size)
        return
    console.print(yaml.safe_dump(resolved.resolved(), sort_keys=False), highlight=False, markup=False)


def _print_plan(recipe, *, resume: bool, reuse: bool, world_size: int) -> None:
    from rich.table import Table

    from ablate.run.plan import plan_stages
    from ablate.run.stage_store import StageStore

    store = StageStore(Path(recipe.output_dir) / "stages")
    stage_plan = plan_stages(recipe, store=store, world_size=world_size, resume=resume, reuse=reuse)
    table = Table(title=f"stage plan (store {store.root}, world size {world_size})", title_justify="left")
    for col in ("stage", "action", "key", "global batch"):
        table.add_column(col, no_wrap=True)
    table.add_column("why", overflow="fold")
    for entry in stage_plan.stages:
        table.add_row(entry.stage.name, type(entry.action).__name__, entry.key, str(entry.inputs.global_batch),
                      entry.action.why)
    console.print(table)
    if not stage_plan.stages:
        console.print("no stages: the run only evaluates", highlight=False)
    _print_eval(recipe)


def _print_eval(recipe) -> None:
    """What the run evaluates, read and checked as the run does before it trains (the eval data,
    or lmms-eval's tasks), so bad eval data stops here too."""
    if recipe.eval is None:
        return
    if recipe.eval.harness == "lmms_eval":
        from ablate.run.lmms_harness import lmms_plan

        lmms = lmms_plan(recipe)
        console.print(f"eval: lmms-eval tasks {', '.join(lmms.tasks)}", highlight=False)
        for note in lmms.notes:
            console.print(note, highlight=False, markup=False)
        return
    from ablate.run.evaluation import eval_plan

    evaluation = eval_plan(recipe)
    console.print(f"eval: {len(evaluation.samples):,} items of {recipe.eval.data.type}, scored by "
                  f"{recipe.eval.evaluator.type}", highlight=False)
