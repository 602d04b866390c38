"""Running a study's diagnostics after its cells, and reading their runs back from MLflow."""

from __future__ import annotations

import time
from typing import Any, Callable

from ablate.study.diagnostics.base import POINT_TAG, TAG, DiagnosticContext, DiagnosticRun
from ablate.study.diagnostics.pool import DiagnosticJob, Slots, log_figures, run_jobs


def declared(study, scale: str) -> list[Any]:
    """The study's diagnostics that run at `scale`, built from their configs."""
    return [diagnostic for _, diagnostic in declared_at(study, scale)]


def declared_at(study, scale: str) -> list[tuple[int, Any]]:
    """(index in the study file's `diagnostics`, diagnostic) for those that run at `scale`."""
    from ablate.study.diagnostics.registry import diagnostics

    registry = diagnostics()
    return [(i, registry.get(config.type).build(config)) for i, config in enumerate(study.spec.diagnostics)
            if scale in config.scales]


def collect_diagnostic_runs(parent) -> list[DiagnosticRun]:
    """The finished nested runs of the parent run that diagnostics made, latest last."""
    from ablate.study.parent import TAG as STUDY_TAG, nested_runs

    out = []
    for run in sorted(nested_runs(parent, status="FINISHED"), key=lambda r: r.info.end_time or 0):
        tags = run.data.tags
        if TAG in tags:
            out.append(DiagnosticRun(run.info.run_id, tags[TAG], tags.get(POINT_TAG, ""), tags.get(f"{STUDY_TAG}.arm", ""),
                                     int(tags.get(f"{STUDY_TAG}.seed", "0") or 0), tags.get("ablate.recipe_hash"),
                                     dict(run.data.metrics)))
    return out


def run_diagnostics(study, scale: str, label: str, parent, recipes: dict[str, Any], run_fn: Callable[..., Any],
                    say: Callable[[str], None], *, recipe_path=None, tracking_uri: str | None = None,
                    side_by_side: Slots | None = None) -> None:
    """Run what each declared diagnostic needs that MLflow does not hold yet: its recipe runs
    (nested under `parent`, tagged with the diagnostic, point, arm and seed) and its records.
    With `side_by_side` and more than one run to do, the runs share its slots; else they run
    here, one after another. When a run fails, the diagnostics whose runs all finished still
    record theirs before the error ends the command."""
    from ablate.study.collect import collect_runs

    cell_runs = collect_runs(parent, predictions=False)
    where = dict(recipe_path=recipe_path, tracking_uri=tracking_uri or parent.tracking_uri,
                 parent_run_id=parent.run_id)
    jobs = pending_jobs(context(study, scale, cell_runs, recipes, collect_diagnostic_runs(parent)), label, **where)
    failure: Exception | None = None
    try:
        if side_by_side and len(jobs) > 1 and len(side_by_side.envs) > 1:
            run_jobs(jobs, side_by_side, say)
        else:
            run_here(jobs, run_fn, say)
    except Exception as error:  # not a Ctrl-C: that stops the command here
        failure = error
    ctx = context(study, scale, cell_runs, recipes, collect_diagnostic_runs(parent))
    unfinished = {job.tags[TAG] for job in pending_jobs(ctx, label, **where)} if failure else set()
    for diagnostic in declared(study, scale):
        if diagnostic.key not in unfinished:
            diagnostic.record(ctx, parent)  # skips what MLflow holds
    if failure is not None:
        raise failure


def run_here(jobs: list[DiagnosticJob], run_fn: Callable[..., Any], say: Callable[[str], None]) -> None:
    """The jobs one after another in this process, with its threads."""
    for job in jobs:
        say(job.line)
        started = time.perf_counter()
        result = run_fn(job.recipe, recipe_path=job.recipe_path, tracking_uri=job.tracking_uri,
                        parent_run_id=job.parent_run_id, tags=job.tags, progress=None)
        log_figures(result, time.perf_counter() - started)


def pending_jobs(ctx: DiagnosticContext, label: str, *, recipe_path, tracking_uri: str,
                 parent_run_id: str | None) -> list[DiagnosticJob]:
    """Every declared diagnostic's planned runs that `ctx` does not hold finished, in order.
    (A diagnostic plans from the cells' recipes and its own runs, never another's, so all plan at once.)"""
    from ablate.recipe.loading import recipe_hash

    jobs = []
    for diagnostic in declared(ctx.study, ctx.scale):
        done = {(r.point, r.arm, r.seed, r.recipe_hash) for r in ctx.own_runs(diagnostic.key)}
        for planned in diagnostic.planned_runs(ctx):
            if (planned.point, planned.arm, planned.seed, recipe_hash(planned.recipe)) in done:
                continue
            jobs.append(DiagnosticJob(
                f"diagnostic {diagnostic.key}: {planned.arm} · seed {planned.seed} · {planned.point}", planned.recipe,
                diagnostic_tags(ctx.study.name, label, diagnostic.key, planned), recipe_path, tracking_uri,
                parent_run_id))
    return jobs


def diagnostic_tags(study: str, label: str, diagnostic: str, planned) -> dict[str, str]:
    from ablate.study.parent import TAG as STUDY_TAG

    # no `ablate.study.cell` tag: the report's cells never count these runs
    return {STUDY_TAG: study, f"{STUDY_TAG}.scale": label, f"{STUDY_TAG}.arm": planned.arm,
            f"{STUDY_TAG}.seed": str(planned.seed), TAG: diagnostic, POINT_TAG: planned.point}


def context(study, scale: str, cell_runs: list[Any], recipes: dict[str, Any], runs: list[DiagnosticRun],
            item_scale: Callable[[str], float] | None = None) -> DiagnosticContext:
    by_arm = {arm: sorted([r for r in cell_runs if r.arm == arm], key=lambda r: r.seed) for arm in study.arm_names()}
    return DiagnosticContext(study, scale, by_arm, recipes, runs, item_scale or (lambda metric: 1.0))
