"""What every diagnostic shares: its config's common fields, what it reads, what it returns.

A diagnostic is built from its config (`registry.get(type).build(config)`) and has
    planned_runs(ctx) -> [PlannedRun]   recipe runs it needs besides the cells (default none)
    record(ctx, parent) -> None         measurements that are not recipe runs (default none)
    result(ctx) -> DiagnosticResult     its figures and finding, from the cells and its runs
The study calls the first two after its cells; the report calls `result` on what MLflow holds,
so `ablate report` prints the same figures without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import Field

from ablate.registry import ComponentConfig

TAG = "ablate.study.diagnostic"  # on a diagnostic's nested runs: the diagnostic's type
POINT_TAG = f"{TAG}.point"  # which measurement of it the run is, e.g. "epochs=2"


class DiagnosticConfig(ComponentConfig):
    scales: list[Literal["paper", "tiny", "small"]] = Field(
        ["tiny", "small"], description="scales it runs at (paper-scale runs are not cheap)")
    question: str = Field("", description="the reason for the verdict it tests, printed above its figures")


@dataclass
class DiagnosticRun:
    """A finished nested run a diagnostic made (read back from MLflow)."""

    run_id: str
    diagnostic: str
    point: str
    arm: str
    seed: int
    recipe_hash: str | None
    metrics: dict[str, float]


@dataclass
class PlannedRun:
    """A recipe a diagnostic needs run: one arm at one seed, edited."""

    point: str
    arm: str
    seed: int
    recipe: Any


@dataclass
class DiagnosticContext:
    """What a diagnostic reads: the study at one scale, its counted cell runs, its own runs."""

    study: Any  # StudyFile
    scale: str
    by_arm: dict[str, list[Any]]  # arm -> its CellRuns, by seed
    recipes: dict[str, Any]  # cell id -> Recipe
    runs: list[DiagnosticRun] = field(default_factory=list)
    item_scale: Callable[[str], float] = lambda metric: 1.0  # metric units per unit of accuracy

    @property
    def section(self):
        return self.study.section(self.scale)

    @property
    def baseline(self) -> str:
        return self.study.baseline_arm()

    def seed(self, chosen: int | None) -> int:
        """The seed a diagnostic measures at: the one its config names, else the scale's first."""
        from ablate.study.cells import seeds_for

        return chosen if chosen is not None else seeds_for(self.study, self.scale)[0]

    def metric_key(self, name: str | None) -> str:
        return self.section.metric(name or self.section.objective).mlflow_key()

    def cell_recipe(self, arm: str, seed: int):
        return next((r for cid, r in self.recipes.items() if cid == f"{arm}|seed={seed}"), None)

    def own_runs(self, diagnostic: str) -> list[DiagnosticRun]:
        return [r for r in self.runs if r.diagnostic == diagnostic]


@dataclass
class DiagnosticResult:
    """A diagnostic's measured figures (a table) and the finding they support, for the report."""

    type: str
    title: str
    question: str
    columns: list[str]
    rows: list[list[str]]
    finding: str
    data: dict[str, Any] = field(default_factory=dict)  # the figures as numbers, for report.json


class Diagnostic:
    """Base of the built-in diagnostics: no runs, no records; subclasses give `result`."""

    title = ""

    def __init__(self, config: DiagnosticConfig):
        self.config = config

    @property
    def key(self) -> str:
        return self.config.type

    def planned_runs(self, ctx: DiagnosticContext) -> list[PlannedRun]:
        return []

    def record(self, ctx: DiagnosticContext, parent) -> None:
        return None

    def result(self, ctx: DiagnosticContext) -> DiagnosticResult:
        raise NotImplementedError

    def _result(self, columns: list[str], rows: list[list[str]], finding: str, data: dict[str, Any]) -> DiagnosticResult:
        return DiagnosticResult(self.key, self.title, self.config.question.strip(), columns, rows, finding, data)


def edited_recipe(recipe, edits: dict[str, Any], suffix: str, what: str):
    """`recipe` with `edits` (recipe paths -> values, as a study's `overrides`) applied, named
    `<name>-<suffix>` (the name is not hashed); `what` describes the edit in its source."""
    from ablate.recipe.loading import recipe_from_dict
    from ablate.recipe.yaml_source import set_path

    data = recipe.resolved()
    for path, value in edits.items():
        set_path(data, path, value)
    data["name"] = f"{recipe.name}-{suffix}"
    return recipe_from_dict(data, source=f"{recipe.name} with {what}")


def fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def share(part: int, whole: int) -> float | None:
    """part / whole, or None for nothing to divide."""
    return part / whole if whole else None


def percent(value: float | None) -> str:
    """A share as "12.3%", "-" for none."""
    return "-" if value is None else f"{100 * value:.1f}%"


def diagnostics_markdown(results: list[DiagnosticResult]) -> list[str]:
    """The report's diagnostics section: per diagnostic its question, figures and finding."""
    if not results:
        return []
    lines = ["## Diagnostics: what explains the verdict", "",
             "Measurements the study file declares (`diagnostics:`), run with the study.", ""]
    for result in results:
        lines += [f"### {result.title} (`{result.type}`)", ""]
        if result.question:
            lines += [f"Tests: {result.question}", ""]
        if result.rows:
            lines += ["| " + " | ".join(result.columns) + " |", "|" + "---|" * len(result.columns)]
            lines += ["| " + " | ".join(row) + " |" for row in result.rows] + [""]
        lines += [f"**Finding:** {result.finding}", ""]
    return lines
