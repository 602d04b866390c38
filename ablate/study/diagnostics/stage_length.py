"""`stage_length`: each arm's score and final training loss against the length of its last stage.

Tests "this arm is undertrained at equal steps" (llm_scale: the larger LLM; connector: the
connector with more trainable parameters) and "without stage 1 the connector catches up in
stage 2" (skip_pretraining). The cells give one length (their own, reused as they are); this
runs each arm once more per extra length in `epochs`, at one seed, with only the last stage's
`epochs` changed (earlier stages come from the stage store). Each row gives the stage's steps
and final training loss (the Trainer's last logged window) beside the score.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from ablate.errors import AblateError
from ablate.study.diagnostics.base import (
    Diagnostic, DiagnosticConfig, DiagnosticContext, DiagnosticResult, PlannedRun, edited_recipe, fmt,
)

Component = Literal["encoder", "connector", "llm"]


class StageLengthConfig(DiagnosticConfig):
    stage: str | None = Field(None, description="the stage whose length varies (default: the cells' last stage)")
    epochs: list[PositiveInt] = Field([2], min_length=1, description="that stage's epochs besides the cells' own")
    seed: int | None = Field(None, description="the seed of the extra runs and of the cells they extend (default: the scale's first)")
    params: list[Component] = Field([], description="show these components' trainable parameters beside each arm")
    metric: str | None = Field(None, description="the score (default: the objective)")


def stage_figure(metrics: dict[str, float], stage: str, what: str) -> float | None:
    """A figure the study logged for a stage of a cell or diagnostic run (`study/stage/<stage>/<what>`)."""
    return metrics.get(f"study/stage/{stage}/{what}")


class StageLength(Diagnostic):
    title = "Score and final training loss against the length of the last stage"

    def _stage(self, recipe):
        """The stage whose length varies, or None for an arm without it (e.g. the stage removed)."""
        name = self.config.stage or recipe.stages[-1].name
        stage = next((s for s in recipe.stages if s.name == name), None)
        if stage is not None and stage.max_steps > 0:
            raise AblateError(f"diagnostic stage_length varies epochs; stage {name!r} sets max_steps")
        return stage

    def planned_runs(self, ctx: DiagnosticContext) -> list[PlannedRun]:
        seed, planned = ctx.seed(self.config.seed), []
        for arm in ctx.study.arm_names():
            recipe = ctx.cell_recipe(arm, seed)
            if recipe is None:
                continue
            stage = self._stage(recipe)
            if stage is None:
                continue
            for epochs in sorted(set(self.config.epochs) - {stage.epochs}):
                planned.append(PlannedRun(f"epochs={epochs}", arm, seed, with_epochs(recipe, stage.name, epochs)))
        return planned

    def result(self, ctx: DiagnosticContext) -> DiagnosticResult:
        seed = ctx.seed(self.config.seed)
        key = ctx.metric_key(self.config.metric)
        metric = self.config.metric or ctx.section.objective
        arms = {arm: self._points(ctx, arm, seed, key) for arm in ctx.study.arm_names()}
        arms = {arm: points for arm, points in arms.items() if points}
        columns = ["arm", *[f"{c} params (trainable)" for c in self.config.params],
                   "stage epochs", "steps", "final train loss", metric]
        rows = [[arm, *[_count(p.get("params", {}).get(c)) for c in self.config.params], str(epochs),
                 _count(p["steps"]), fmt(p["final_loss"]), fmt(p["value"], 4)]
                for arm, points in arms.items() for epochs, p in sorted(points.items())]
        data = {"seed": seed, "metric": metric, "arms": arms}
        return self._result(columns, rows, _finding(arms, ctx.baseline, metric), data)

    def _points(self, ctx: DiagnosticContext, arm: str, seed: int, key: str) -> dict[int, dict]:
        recipe = ctx.cell_recipe(arm, seed)
        cell = next((r for r in ctx.by_arm.get(arm, []) if r.seed == seed), None)
        stage = self._stage(recipe) if recipe is not None else None
        if cell is None or stage is None:
            return {}
        own = int(stage.epochs) if float(stage.epochs).is_integer() else stage.epochs  # epochs may be fractional
        points = {own: _point(cell.metrics, stage.name, key, self.config.params)}
        for run in ctx.own_runs(self.key):
            if run.arm == arm and run.seed == seed and run.point.startswith("epochs="):
                points[int(run.point.split("=", 1)[1])] = _point(run.metrics, stage.name, key, self.config.params)
        return points


def with_epochs(recipe, stage_name: str, epochs: int):
    """`recipe` with stage `stage_name` trained for `epochs` (named apart; a run name marked)."""
    what = f"{stage_name} {epochs} epochs"
    edits: dict = {f"stages.{stage_name}.epochs": epochs}
    if run_name := (recipe.resolved().get("tracking") or {}).get("run_name"):
        edits["tracking.run_name"] = f"{run_name} · {what} (diagnostic)"
    return edited_recipe(recipe, edits, f"{stage_name}{epochs}ep", what)


def _point(metrics: dict[str, float], stage: str, key: str, params: list[str]) -> dict:
    return {"value": metrics.get(key), "steps": stage_figure(metrics, stage, "steps"),
            "final_loss": stage_figure(metrics, stage, "final_loss"),
            "params": {c: metrics.get(f"study/params/{c}/trainable") for c in params}}


def _count(value: float | None) -> str:
    return "-" if value is None else f"{int(value):,}"


def _finding(arms: dict[str, dict[int, dict]], baseline: str, metric: str) -> str:
    base = arms.get(baseline)
    if not base:
        return f"no runs of the baseline arm {baseline!r} yet"
    parts = []
    for arm, points in arms.items():
        if arm == baseline:
            continue
        shared = sorted(e for e in set(points) & set(base)
                        if points[e]["value"] is not None and base[e]["value"] is not None)
        if len(shared) < 2:
            continue
        gaps = [points[e]["value"] - base[e]["value"] for e in shared]
        trend = ("changes sign" if gaps[0] * gaps[-1] < 0 else "narrows" if abs(gaps[-1]) < abs(gaps[0])
                 else "widens" if abs(gaps[-1]) > abs(gaps[0]) else "stays")
        steps = " → ".join(f"{g:+.4f} at {e} epoch(s)" for e, g in zip(shared, gaps))
        parts.append(f"{metric} of {arm} minus {baseline}: {steps}: the gap {trend} with a longer stage")
    gains = [f"{arm} {_gain(points):+.4f}" for arm, points in arms.items() if _gain(points) is not None]
    if gains:
        parts.append(f"gain from the shortest to the longest stage: {', '.join(gains)}")
    return "; ".join(parts) + "." if parts else "not enough lengths measured yet"


def _gain(points: dict[int, dict]) -> float | None:
    measured = [points[e]["value"] for e in sorted(points) if points[e]["value"] is not None]
    return measured[-1] - measured[0] if len(measured) > 1 else None


def register(registry) -> None:
    registry.register("stage_length", StageLengthConfig, StageLength,
                      description="score and final loss of each arm vs the last stage's length (extra runs, one seed)")
