"""A study's plan: every cell of a scale planned as its recipe, stages shared by cells counted once.

Cells whose stages compute the same thing (the same model, answer format, and stages up to it
with their seeds) train them once through the stage store, so the study's total counts each
such stage once; the total without that reuse is given too.
"""

from __future__ import annotations

from dataclasses import dataclass

from ablate.plan.estimate import Planner, RecipePlan


@dataclass
class CellPlan:
    name: str
    plan: RecipePlan


@dataclass
class StudyPlan:
    name: str
    scale: str
    cells: list[CellPlan]

    @property
    def hours_without_reuse(self) -> float | None:
        hours = [cell.plan.hours_total for cell in self.cells]
        return None if None in hours else sum(hours)

    @property
    def hours_total(self) -> float | None:
        """Each distinct stage once."""
        distinct = {stage.key: stage.hours for cell in self.cells for stage in cell.plan.stages}
        return None if None in distinct.values() else sum(distinct.values())

    def shared_with(self, cell_index: int, stage_key: str) -> str | None:
        """The earlier cell that trains the same stage, if any."""
        return next((cell.name for cell in self.cells[:cell_index]
                     if any(stage.key == stage_key for stage in cell.plan.stages)), None)


def plan_study(study, scale: str, seeds: int | None, planner: Planner) -> StudyPlan:
    from ablate.recipe.loading import validate_sourced
    from ablate.study.cells import base_source, cell_source, expand_cells, seeds_for

    study.section(scale)
    base = base_source(study, scale)
    base_dir = study.base_path(scale).resolve().parent
    cells = []
    for cell in expand_cells(study, scale, seeds_for(study, scale, seeds)):
        recipe = validate_sourced(cell_source(study, scale, cell, base))
        cells.append(CellPlan(f"{cell.arm} · seed {cell.seed}", planner.plan(recipe, base_dir)))
    return StudyPlan(study.name, scale, cells)
