"""`ablate study NAME --scale paper --rehearse`: every paper-scale cell, a few steps, on the kit.

    rehearse_study("llm_scale", console=console)   # 0 when every cell ran through, else 1

The study runs through the normal machinery (queue, workers, launchers, stage store, report)
with each cell recipe replaced by its rehearsal (`recipes.Rehearsal`), filed under the scale
label `paper-rehearsal`, its own study folder and MLflow experiment. Each rehearsal starts
fresh: the previous rehearsal's folder of this study (runs, stages) is cleared first, so every
stage trains with today's code. Cells that run in the worker's process run as a one-process
world (`run_rehearsal_cell`), so DeepSpeed stages really run ZeRO (gloo on CPU); a judged
evaluator meets a local stand-in judge (`judge.py`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

SCALE = "paper"
RUN_FN = "ablate.study.rehearsal.session:run_rehearsal_cell"


def run_rehearsal_cell(recipe, **kwargs: Any):
    """`run_recipe` for a rehearsal cell: in a process no launcher started, a recipe with a
    DeepSpeed stage gets the environment of a one-process job first (`join_world_for`); under
    torchrun or the deepspeed launcher (`--nproc-per-node`), nothing changes."""
    from ablate.run.runner import join_world_for, run_recipe

    join_world_for(recipe)
    return run_recipe(recipe, **kwargs)


def rehearse_study(ref: str | Path, *, console, seeds: int | None = None, workers: int = 1,
                   storage: str | None = None, tracking_uri: str | None = None, launch=None,
                   progress_factory: Callable[[], Any] | None = None) -> int:
    """Rehearse the study's paper scale; the exit code: 0 when every cell finished, else 1."""
    from ablate.study.discovery import find_study
    from ablate.study.rehearsal.judge import stand_in_judge
    from ablate.study.rehearsal.notes import cell_table, print_plan
    from ablate.study.rehearsal.recipes import Rehearsal
    from ablate.study.runner import prepare_study, run_study
    from ablate.study.schema import load_study
    from ablate.zoo.kit import ensure_kit

    kit = ensure_kit(say=lambda line: console.print(line, highlight=False))
    name = load_study(find_study(str(ref))).name
    planned = Rehearsal(kit, name)
    with stand_in_judge() as judge_url:  # first: a recipe with a pinned judge is pointed at it
        prepared = prepare_study(ref, SCALE, seeds=seeds, rehearsal=planned)
        _clear(prepared, console)
        print_plan(prepared, planned, judge_url, launch, console)
        outcome = run_study(
            ref, scale=SCALE, seeds=seeds, workers=workers, storage=storage, tracking_uri=tracking_uri,
            run_fn=RUN_FN, console=console, progress_factory=progress_factory, launch=launch,
            rehearsal=Rehearsal(kit, name),
        )
    console.print(cell_table(outcome))
    failed = len(outcome.states) - outcome.counts()["done"]
    verdict = "[green]passed[/]" if not failed else f"[red]{failed} of {len(outcome.states)} cell(s) did not finish[/]"
    console.print(f"rehearsal of {name} at paper scale: {verdict}", highlight=False)
    return 0 if not failed else 1


def _clear(prepared, console) -> None:
    """Remove this study's previous rehearsal (its runs, stage store and study folder)."""
    roots = {Path(recipe.output_dir) for recipe in prepared.recipes.values()}
    for root in sorted(r for r in roots if r.exists()):
        console.print(f"fresh rehearsal: clearing the previous one in {root}", highlight=False)
        shutil.rmtree(root)
