"""`ablate study NAME --check`, also run at the start of every study: each cell, before anything
trains, without training and without reading weights.

For every cell of the scale:
- its recipe validates, with the checks across sections that validation makes
  (`ablate.recipe.compatibility`: each stage's and the eval's data read the answer format the
  recipe sets, and the evaluator can score it);
- its model builds on the meta device from the checkpoints' config.json files (local folders,
  `zoo:` entries, the Hugging Face cache): encoder width -> connector -> LLM hidden size, and
  an `init_connector` file's tensor shapes against the connector built for that cell;
- each stage's `trainable` resolves to parameters that exist and trains something;
- every data file, image root, `init_connector` file and DeepSpeed config it names exists;
- with `eval.harness: lmms_eval`, lmms-eval is installed and knows every task (and a judged
  task has its judge pinned: `ablate.run.lmms_harness.lmms_plan`);
- each declared diagnostic's extra runs (a `variant`'s edited recipe, `stage_length`'s longer
  stage) are planned from those recipes and pass the same checks.
Every problem of every cell is reported at once (`StudyCheckError`). Models and files that
several cells share are checked once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ablate.errors import AblateError, Problem, RecipeError
from ablate.recipe.yaml_source import Sourced
from ablate.study.cells import Cell, base_source, cell_source, expand_cells, seeds_for
from ablate.study.model_check import ModelCheck, check_model
from ablate.study.named_files import named_file_problems
from ablate.study.schema import StudyError, StudyFile


@dataclass
class CellCheck:
    cell: Cell
    problems: list[Problem] = field(default_factory=list)
    shapes: str = ""
    trainable: str = ""


@dataclass
class DiagnosticCheck:
    """One extra run a declared diagnostic will make (or, with `planned` None, its planning)."""

    type: str
    planned: Any = None  # PlannedRun
    problems: list[Problem] = field(default_factory=list)

    def name(self) -> str:
        run = self.planned
        where = f" · {run.arm} · seed {run.seed} · {run.point}" if run is not None else ""
        return f"diagnostic {self.type}{where}"


@dataclass
class StudyCheck:
    study: StudyFile
    scale: str
    cells: list[CellCheck]
    seconds: float
    diagnostics: list[DiagnosticCheck] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return sum(len(c.problems) for c in self.cells) + sum(len(d.problems) for d in self.diagnostics)

    def raise_if_problems(self) -> None:
        if self.problems:
            raise StudyCheckError(self)


class StudyCheckError(AblateError):
    """Every problem of every cell, in one block, cell by cell."""

    def __init__(self, check: StudyCheck):
        self.check = check
        bad = [c for c in check.cells if c.problems]
        runs = [d for d in check.diagnostics if d.problems]
        extra = f" and {len(runs)} diagnostic run(s)" if runs else ""
        lines = [f"study {check.study.name!r} ({check.scale} scale): {check.problems} problem(s) in {len(bad)} of "
                 f"{len(check.cells)} cells{extra}, found before anything trained:"]
        for cell_check in check.cells:
            cell = cell_check.cell
            lines.append(f"  {cell.arm} · seed {cell.seed}:" + ("" if cell_check.problems else " ok"))
            for problem in cell_check.problems:
                first, *rest = problem.render().splitlines()
                lines += ["  " + first, *("        " + line.lstrip() for line in rest)]
        for diagnostic in check.diagnostics:
            if diagnostic.problems:
                lines.append(f"  {diagnostic.name()}:")
                lines += ["  " + problem.render() for problem in diagnostic.problems]
        super().__init__("\n".join(lines))


def check_study_file(study: StudyFile, scale: str, seeds: int | None = None) -> StudyCheck:
    """`--check`: every cell of `scale`, invalid recipes included (reported with the rest)."""
    study.section(scale)
    return check_cells(study, scale, expand_cells(study, scale, seeds_for(study, scale, seeds)))


def check_cells(study: StudyFile, scale: str, cells: list[Cell], recipes: dict[str, Any] | None = None) -> StudyCheck:
    """Check `cells`; `recipes` ({cell id: Recipe}) spares validating them again."""
    start = time.perf_counter()
    base = base_source(study, scale)
    base_dir = study.base_path(scale).resolve().parent
    models: dict[str, ModelCheck] = {}
    harnesses: dict[str, list] = {}
    checks, valid = [], {}
    for cell in cells:
        try:
            src = cell_source(study, scale, cell, base)
            recipe = (recipes or {}).get(cell.id) or _validated(src)
        except (RecipeError, StudyError) as error:
            checks.append(CellCheck(cell, list(error.problems)))
            continue
        checks.append(_check_recipe(cell, recipe, src, base_dir, models, harnesses))
        valid[cell.id] = recipe
    diagnostics = check_diagnostics(study, scale, valid, lambda r: _recipe_problems(r, base_dir, models, harnesses)[1])
    return StudyCheck(study, scale, checks, time.perf_counter() - start, diagnostics)


def _validated(src: Sourced):
    from ablate.recipe.loading import validate_sourced

    return validate_sourced(src)


def _check_recipe(cell: Cell, recipe, src: Sourced, base_dir: Path, models: dict[str, ModelCheck],
                  harnesses: dict[str, list]) -> CellCheck:
    model, found = _recipe_problems(recipe, base_dir, models, harnesses)
    problems = [Problem(_dotted(path, recipe), message, src.where(path)) for path, message in found]
    return CellCheck(cell, problems, model.shapes, model.trainable)


def _recipe_problems(recipe, base_dir: Path, models: dict[str, ModelCheck],
                     harnesses: dict[str, list]) -> tuple[ModelCheck, list[tuple[tuple, str]]]:
    """The model check (shared by recipes with the same model and trainable sets) and every
    (YAML path, message) that stops `recipe`."""
    key = json.dumps({"model": recipe.model.model_dump(mode="json"),
                      "stages": [[s.name, s.trainable.model_dump(mode="json")] for s in recipe.stages]}, sort_keys=True)
    if key not in models:
        models[key] = check_model(recipe)
    model = models[key]
    return model, model.problems + named_file_problems(recipe, base_dir) + _lmms_problems(recipe, harnesses)


def check_diagnostics(study: StudyFile, scale: str, recipes: dict[str, Any], recipe_problems) -> list[DiagnosticCheck]:
    """The extra runs each declared diagnostic will make, planned from the valid cells' recipes
    before any cell trains: an edit that does not apply or a recipe it makes that would not run is
    found now, not after hours of cells. `recipe_problems(recipe)` -> [(YAML path, message)]."""
    from ablate.study.diagnostics.run import context, declared_at

    ctx = context(study, scale, [], recipes, [])
    checks = []
    for index, diagnostic in declared_at(study, scale):
        where = study.where(("diagnostics", index, "set"))  # a variant's edits; else the diagnostic's line
        try:
            planned = diagnostic.planned_runs(ctx)
        except AblateError as error:
            problems = getattr(error, "problems", None) or [Problem("", str(error))]
            found = [Problem(f"diagnostics.{index}" + (f" -> {p.path}" if p.path else ""), p.message, where)
                     for p in problems]
            checks.append(DiagnosticCheck(diagnostic.key, None, found))
            continue
        for run in planned:
            found = [Problem(f"diagnostics.{index} -> {_dotted(path, run.recipe)}", message, where)
                     for path, message in recipe_problems(run.recipe)]
            checks.append(DiagnosticCheck(diagnostic.key, run, found))
    return checks


def _lmms_problems(recipe, seen: dict[str, list]) -> list[tuple[tuple, str]]:
    """What stops the cell's lmms-eval evaluation (checked once per set of tasks)."""
    ev = recipe.eval
    if ev is None or ev.harness != "lmms_eval":
        return []
    key = json.dumps([ev.tasks, ev.include_path, ev.judge is not None])
    if key not in seen:
        from ablate.run.lmms_harness import lmms_plan

        try:
            lmms_plan(recipe)
            seen[key] = []
        except AblateError as error:
            seen[key] = [(("eval", "tasks"), str(error).removeprefix("eval.tasks: "))]
    return seen[key]


def _dotted(path: tuple, recipe) -> str:
    """The YAML path with stage indices shown as stage names (stages.finetune.trainable)."""
    parts = list(path)
    if len(parts) > 1 and parts[0] == "stages" and isinstance(parts[1], int):
        parts[1] = recipe.stages[parts[1]].name
    return ".".join(str(p) for p in parts)


def check_lines(check: StudyCheck) -> list[str]:
    """A title, then one line per cell: ok, its arm and seed, its model's shapes, what each stage trains."""
    lines = [f"{check.study.name} ({check.scale} scale): {len(check.cells)} cells checked in {check.seconds:.1f} s "
             "on the meta device, nothing trained or loaded"]
    for cell_check in check.cells:
        status = "ok" if not cell_check.problems else f"{len(cell_check.problems)} problem(s)"
        parts = [cell_check.cell.arm, f"seed {cell_check.cell.seed}", cell_check.shapes, cell_check.trainable]
        lines.append(f"  {status:<4} " + " · ".join(part for part in parts if part))  # a model not built says nothing
    for diagnostic in check.diagnostics:
        status = "ok" if not diagnostic.problems else f"{len(diagnostic.problems)} problem(s)"
        lines.append(f"  {status:<4} {diagnostic.name()}")
    return lines
