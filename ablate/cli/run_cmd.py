"""`ablate run RECIPE [-s key=value ...] [--resume] [--tracking-uri URI]`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ablate.cli.console import console
from ablate.threads import MAX_THREADS
from ablate.cli.validate_cmd import Overrides


def make_progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=console, transient=False,
    )


THREADS = typer.Option(None, "--threads", min=1, max=MAX_THREADS, help="torch's intra-op threads (default: $ABLATE_THREADS, "
                       "else $OMP_NUM_THREADS, else the CPUs minus the other processes' load, at least 1)")


def start_threads(threads: int | None):
    """--threads, else the environment's or the machine's count, applied to torch (and inherited
    by the processes this one starts)."""
    from ablate.threads import apply_threads, set_threads_env

    set_threads_env(threads)
    return apply_threads()


def set_collective_timeout(minutes: float | None) -> None:
    """--collective-timeout, as the environment variable that `ranks()` reads (before its first
    call, which fixes it) and that launched jobs inherit."""
    import os

    from ablate.ranks import TIMEOUT_ENV

    if minutes is not None:
        os.environ[TIMEOUT_ENV] = str(minutes)


def run(
    recipe: Path = typer.Argument(..., help="recipe YAML"),
    overrides: List[str] = Overrides,
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run from its last checkpoint"),
    no_reuse: bool = typer.Option(False, "--no-reuse", help="retrain stages even if an identical finished stage is stored"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)"),
    collective_timeout: Optional[float] = typer.Option(
        None, "--collective-timeout", min=0.1, help="minutes a rank waits at a collective under torchrun (default 120, "
        "or $ABLATE_COLLECTIVE_TIMEOUT_MIN): long enough for rank 0 to prepare data"),
    threads: Optional[int] = THREADS,
) -> None:
    """Train and evaluate a recipe; everything is recorded in MLflow."""
    set_collective_timeout(collective_timeout)
    chosen = start_threads(threads)
    from ablate.ranks import leave_process_group, ranks
    from ablate.recipe import load_recipe, recipe_hash
    from ablate.run.runner import join_world_for, run_recipe
    from ablate.tracking import check_tracking_uri, tracking_uri as checked_uri

    resolved = load_recipe(recipe, overrides)
    if tracking_uri is not None:  # an explicit `--tracking-uri ''` is a mistake, not "use the default"
        check_tracking_uri(tracking_uri)
    checked_uri(tracking_uri or resolved.tracking.tracking_uri)  # a bad URI fails before anything is written
    join_world_for(resolved)  # before ranks(): a DeepSpeed recipe run without a launcher
    if not ranks().is_main_process:  # under torchrun/deepspeed, rank 0 alone reports
        run_recipe(resolved, recipe_path=recipe, resume=resume, reuse_stages=not no_reuse, tracking_uri=tracking_uri)
        leave_process_group()
        return
    console.print(f"[bold]ablate run[/] {recipe} · recipe hash {recipe_hash(resolved)}", highlight=False)
    console.print(chosen.line(), highlight=False)
    with make_progress() as progress:
        result = run_recipe(resolved, recipe_path=recipe, resume=resume, reuse_stages=not no_reuse,
                            tracking_uri=tracking_uri, progress=progress)
    print_summary(result)
    leave_process_group()


def print_summary(result) -> None:
    stages = Table(title="stages", title_justify="left")
    for col in ("stage", "steps", "time", "final loss", "trained by"):
        stages.add_column(col)
    stages.add_column("why", overflow="fold")
    for s in result.stages:
        loss = s.metrics.get("final_loss") or s.metrics.get("loss")
        stages.add_row(s.name, str(s.steps), f"{s.seconds:.1f}s", f"{loss:.4f}" if loss is not None else "-",
                       "this run" if s.reused_from is None else f"reused ({s.reused_from[:8]})", s.why)
    console.print(stages)
    for s in result.stages:
        for note in s.notes:
            console.print(f"[yellow]stage {s.name}:[/] {note}", highlight=False)
    if result.eval_metrics:
        table = Table(title="evaluation", title_justify="left")
        for k in result.eval_metrics:
            table.add_column(k, justify="right")
        table.add_row(*(_fmt(v) for v in result.eval_metrics.values()))
        console.print(table)
    if result.epoch_metrics:
        table = Table(title="evaluation per epoch", title_justify="left")
        table.add_column("epoch")
        keys = list(next(iter(result.epoch_metrics.values())))
        for k in keys:
            table.add_column(k, justify="right")
        for epoch, metrics in sorted(result.epoch_metrics.items()):
            table.add_row(str(epoch), *(_fmt(metrics.get(k)) for k in keys))
        console.print(table)
    if result.skipped_samples:
        console.print(f"[yellow]skipped {result.skipped_samples} bad samples[/] (on_bad_sample: skip)")
    for s in result.stages:
        dropped, masked = (s.turn_edges.get(k, 0) for k in ("opening_gpt_turns_dropped", "closing_human_turns_masked"))
        if dropped or masked:
            console.print(f"stage {s.name}: dropped the opening gpt turn of {dropped} records, masked the unanswered "
                          f"closing human turn of {masked} (as LLaVA's preprocessing)", highlight=False)
    console.print(f"visual tokens per image: {result.visual_tokens} · "
                  + " · ".join(f"{c} {d['trainable']:,}/{d['total']:,} trainable" for c, d in result.parameter_counts.items()),
                  highlight=False)
    console.print(f"time {result.seconds:.1f}s · run folder {result.run_dir}", highlight=False)
    if result.predictions_path:
        console.print(f"predictions: {result.predictions_path}", highlight=False)
    console.print(f"MLflow run {result.run_id} in {result.tracking_uri} "
                  f"(open with: mlflow ui --backend-store-uri {result.tracking_uri})", highlight=False)


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)
