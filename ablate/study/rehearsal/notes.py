"""What a rehearsal prints: what it changed in the recipes and how it runs them, then one row per cell."""

from __future__ import annotations

import json
from typing import Any

from ablate.study.rehearsal.recipes import MAX_STEPS


def print_plan(prepared, rehearsal, judge_url: str, launch, console) -> None:
    """The rehearsal's changes to the cells' recipes (every one, nothing else changes) and how
    their stages will run here."""
    from rich.markup import escape
    from rich.table import Table

    kit = str(rehearsal.kit.root)
    table = Table(title=f"rehearsal of {prepared.study.name}: the paper recipes on the kit (<kit> = {kit}), "
                        "changed only here", title_justify="left")
    for column in ("recipe path", "paper", "rehearsal"):
        table.add_column(column, overflow="fold")
    for (path, paper), rehearsed in sorted(rehearsal.changes.items()):
        shown = "<kit>" + rehearsed[len(kit):] if rehearsed.startswith(kit + "/") else rehearsed
        table.add_row(escape(path), escape(paper), escape(shown))
    console.print(table)
    for line in run_notes(prepared.recipes.values(), judge_url, launch):
        console.print(f"  - {escape(line)}", highlight=False)


def run_notes(recipes, judge_url: str, launch) -> list[str]:
    """How the cells' stages run on this machine, where that differs from the paper's GPUs."""
    import torch

    recipes = list(recipes)
    stages = [stage for recipe in recipes for stage in recipe.stages]
    notes = []
    if any(stage.deepspeed for stage in stages):
        if launch is not None and launch.as_job:
            notes.append("DeepSpeed stages: each cell is a job of its launcher, as asked (--nproc-per-node/--launcher)")
        else:
            notes.append("DeepSpeed stages run ZeRO for real, as a one-process job in this process (RANK 0 of "
                         "WORLD_SIZE 1, gloo); the paper's runs use 8 GPUs: --nproc-per-node 8")
    if not torch.cuda.is_available() and any(stage.precision != "fp32" for stage in stages):
        notes.append("no GPU: bf16/fp16 stages run in that precision on the CPU, unchanged")
    if any(_judged(recipe) for recipe in recipes):
        notes.append(f"judged evaluation: a stand-in judge at {judge_url} (ABLATE_JUDGE_BASE_URL, and eval.judge's "
                     "endpoint) replies \"0.7 0.6\" to every request (LLaVA-Bench: the answer 0.6 against the "
                     "reference's 0.7; MM-Vet: 0.7); no API is called")
    notes += small_data_notes(recipes)
    return notes


def _judged(recipe) -> bool:
    """Whether the recipe's evaluation calls a judge model (an lmms-eval judge, or an evaluator
    whose config has an endpoint)."""
    ev = recipe.eval
    if ev is None:
        return False
    return ev.judge is not None if ev.harness == "lmms_eval" else "base_url" in type(ev.evaluator).model_fields


def small_data_notes(recipes) -> list[str]:
    """Stages whose kit data cannot fill one batch of the recipe's size (their batches are smaller)."""
    from ablate.errors import AblateError
    from ablate.run.plan import build_stage_data

    counted: dict[str, int | None] = {}
    notes = []
    for recipe in recipes:
        for stage in recipe.stages:
            key = json.dumps([stage.data.model_dump(mode="json"), recipe.resolved().get("answer_format"),
                              recipe.data.on_bad_sample], sort_keys=True)
            if key not in counted:
                try:
                    counted[key] = len(build_stage_data(recipe, stage).samples())
                except AblateError:
                    counted[key] = None  # bad data: the cell itself fails with the error
            batch = stage.batch_size * stage.grad_accum
            if counted[key] is not None and counted[key] < batch:
                note = (f"stage {stage.name} ({stage.data.type}): the kit gives {counted[key]} samples, fewer than "
                        f"one batch of {batch}; its {MAX_STEPS} steps train on smaller batches than the recipe's")
                notes += [note] if note not in notes else []
    return notes


def cell_table(outcome) -> Any:
    """One row per cell: its state, what it ran, and its error in full."""
    from rich.markup import escape
    from rich.table import Table

    prepared = outcome.prepared
    table = Table(title=f"rehearsal cells of {prepared.study.name} ({prepared.label})", title_justify="left")
    for column in ("arm", "seed", "state", "stages", "objective", "error"):
        table.add_column(column, overflow="fold")
    for cell in prepared.cells:
        state = outcome.states[cell.id]
        recipe = prepared.recipes[cell.id]
        stages = ", ".join(f"{s.name} ({_zero(s.deepspeed)}{s.precision})" for s in recipe.stages) or "none"
        value = state.trial.value if state.state == "done" and state.trial is not None else None
        style = "green" if state.state == "done" else "red"
        table.add_row(escape(cell.arm), str(cell.seed), f"[{style}]{state.state}[/]", escape(stages),
                      "" if value is None else f"{value:.4g}", escape(state.error or ""))
    return table


def _zero(deepspeed: Any) -> str:
    if deepspeed is None:
        return ""
    return f"{deepspeed if isinstance(deepspeed, str) else 'DeepSpeed'}, "
