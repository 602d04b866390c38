"""`ablate plan RECIPE|STUDY [--gpu KEY] [--gpus N] [--mfu X] [--scale paper|tiny] [--seeds N]
[-s path=value ...] [--json]`: parameters, data, FLOPs, memory and hours per stage, before any GPU."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from ablate.cli.console import console
from ablate.cli.study_cmd import ScaleChoice
from ablate.cli.validate_cmd import Overrides


def plan(
    target: str = typer.Argument(..., help="a recipe YAML, or a study: studies/NAME.yaml, a study file, or NAME"),
    gpu: str = typer.Option("a100-80g", "--gpu", help="GPU kind: a100-40g, a100-80g, h100-80g, h100-pcie, h200, l40s"),
    gpus: int = typer.Option(8, "--gpus", help="GPUs the stages run on (ZeRO partitions across them)"),
    mfu: Optional[float] = typer.Option(
        None, "--mfu", help="model-FLOPs utilisation in (0, 1] (default: a step measured by "
        "benchmarks/train_step.py --record on that GPU, else 0.3, calibrated on LLaVA-1.5's hours)"),
    scale: ScaleChoice = typer.Option(ScaleChoice.paper, "--scale", help="for a study: which scale's cells"),
    seeds: Optional[int] = typer.Option(None, "--seeds", min=1, help="for a study: seeds per arm (default: the file's)"),
    overrides: List[str] = Overrides,
    as_json: bool = typer.Option(False, "--json", help="print the plan as JSON"),
) -> None:
    """Size a recipe or a study: parameters, visual tokens, data lengths, FLOPs, memory per GPU, GPU-hours.
    Reads configs and data files only (models on the meta device); trains and loads nothing."""
    from ablate.plan.render import recipe_json, recipe_lines, study_json, study_lines
    from ablate.plan.study import StudyPlan
    from ablate.plan.targets import plan_target, settings_for

    settings = settings_for(gpu, gpus, mfu)
    result = plan_target(target, settings, overrides=overrides, scale=scale.value, seeds=seeds)
    study = isinstance(result, StudyPlan)
    if as_json:
        print(json.dumps(study_json(result) if study else recipe_json(result), indent=2))
        return
    for line in study_lines(result) if study else recipe_lines(result):
        console.print(line, markup=False, highlight=False, soft_wrap=True)
