"""`variant`: one arm run once more with one recipe field changed, to test the reason a verdict
gives ("the lecture costs reasoning-first its accuracy": reasoning-first without the lecture).

The extra run is the arm's cell at one seed with `set` applied (recipe paths -> values, as a
study's `overrides`), nested under the parent run; earlier stages the change does not touch
come from the stage store. The report puts its score beside every arm's cell at that seed.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ablate.study.diagnostics.base import (
    Diagnostic, DiagnosticConfig, DiagnosticContext, DiagnosticResult, PlannedRun, edited_recipe, fmt,
)


class VariantConfig(DiagnosticConfig):
    arm: str = Field(description="the arm run again with the change")
    label: str = Field(min_length=1, description="what the change is, e.g. 'without the lecture'")
    set: dict[str, Any] = Field(min_length=1, description="recipe paths -> values, e.g. {answer_format: {type: QCM-EA-text}}")
    seed: int | None = Field(None, description="the seed of the extra run and of the cells it is compared with "
                             "(default: the scale's first)")
    metric: str | None = Field(None, description="the score (default: the objective)")


class Variant(Diagnostic):
    title = "One arm again with one field changed"

    @property
    def point(self) -> str:
        return f"variant={self.config.label}"

    def planned_runs(self, ctx: DiagnosticContext) -> list[PlannedRun]:
        seed = ctx.seed(self.config.seed)
        recipe = ctx.cell_recipe(self.config.arm, seed)
        return [] if recipe is None else [PlannedRun(self.point, self.config.arm, seed, self.changed(recipe))]

    def changed(self, recipe):
        """The cell's recipe with `set` applied (named apart)."""
        edits = ", ".join(f"{path}={value}" for path, value in self.config.set.items())
        return edited_recipe(recipe, self.config.set, "variant", f"{edits} ({self.config.label})")

    def result(self, ctx: DiagnosticContext) -> DiagnosticResult:
        seed, key = ctx.seed(self.config.seed), ctx.metric_key(self.config.metric)
        metric = self.config.metric or ctx.section.objective
        scores = {arm: next((r.metrics.get(key) for r in runs if r.seed == seed), None) for arm, runs in ctx.by_arm.items()}
        ran = next((r.metrics.get(key) for r in ctx.own_runs(self.key)
                    if r.point == self.point and r.arm == self.config.arm and r.seed == seed), None)
        name = f"{self.config.arm}, {self.config.label}"
        rows = [[arm, str(seed), fmt(value, 4)] for arm, value in scores.items()] + [[name, str(seed), fmt(ran, 4)]]
        data = {"seed": seed, "metric": metric, "arms": scores, "variant": {"label": self.config.label,
                "arm": self.config.arm, "set": self.config.set, "value": ran}}
        return self._result(["run", "seed", metric], rows, _finding(name, ran, self.config.arm, scores, metric), data)


def _finding(name: str, ran: float | None, arm: str, scores: dict[str, float | None], metric: str) -> str:
    if ran is None:
        return f"the variant ({name}) has not run yet"
    others = ", ".join(f"{other} {value:.4g}" for other, value in scores.items() if value is not None)
    own = scores.get(arm)
    change = f" ({ran - own:+.4g} on {arm}'s own cell)" if own is not None else ""
    return f"{name}: {metric} {ran:.4g}{change}; the cells at the same seed: {others or 'none finished'}."


def register(registry) -> None:
    registry.register("variant", VariantConfig, Variant,
                      description="one arm run again with one recipe field changed (one extra run, one seed)")
