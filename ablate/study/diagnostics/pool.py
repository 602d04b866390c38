"""A study's diagnostic runs side by side, one per local worker slot.

After the cells, `ablate study --workers N` on a machine with GPUs has N slots (each worker's
GPUs) and the diagnostics' extra runs to do. Run one after another in the study's process, they
would leave N-1 slots idle; here each slot is a spawned process (concurrent.futures, so results
and errors come back as futures) with the slot's environment: its GPUs and its share of the
threads. Each process logs into `<study folder>/workers/diagnostics-<slot>.log` and stops with
the study. (Without GPUs the study keeps them in its own process: see runner._diagnostic_slots.)
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class DiagnosticJob:
    """One diagnostic run, as a spawned process receives it (a pickled recipe: it is pydantic)."""

    line: str  # "diagnostic stage_length: full · seed 42 · 2 epochs"
    recipe: Any
    tags: dict[str, str]
    recipe_path: str | None
    tracking_uri: str
    parent_run_id: str


@dataclass
class Slots:
    """Where diagnostic runs may go side by side: one environment per slot, the log folder, and
    the run function by name (a spawned process imports it), with its keyword arguments."""

    envs: list[dict[str, str]]
    log_dir: Path
    run_fn: str  # "module:function"
    run_kwargs: dict[str, Any] = field(default_factory=dict)


def run_jobs(jobs: list[DiagnosticJob], slots: Slots, say: Callable[[str], None]) -> None:
    """Run `jobs`, at most one per slot at a time; say how many, and each one as it ends. When a run
    fails, the others still finish (their runs count next time), then the first error is raised."""
    slots.log_dir.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch or MLflow state
    free = context.Queue()
    for slot, env in enumerate(slots.envs):
        free.put((slot, env))
    errors: list[BaseException] = []
    side = min(len(slots.envs), len(jobs))
    with ProcessPoolExecutor(side, mp_context=context, initializer=_start_slot,
                             initargs=(free, str(slots.log_dir))) as pool:
        try:
            say(f"diagnostics: {len(jobs)} runs, {side} side by side (logs: {slots.log_dir}/diagnostics-*.log)")
            running = {pool.submit(run_job, job, slots.run_fn, slots.run_kwargs): job for job in jobs}
            _collect(running, say, errors)
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)  # each process got the Ctrl-C too
            raise
    if errors:
        raise errors[0]


def _collect(running: dict[Future, DiagnosticJob], say, errors: list[BaseException]) -> None:
    while running:
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            job = running.pop(future)
            if (error := future.exception()) is not None:
                say(f"[red]✗[/] {job.line}: {error}")
                errors.append(error)
            else:
                say(f"[green]✓[/] {job.line}: {future.result():.0f} s")


def _start_slot(free, log_dir: str) -> None:
    """In each spawned process, before any job: take a slot's environment (threads, GPUs; before
    torch starts), stop when the study does, and write to the slot's log."""
    from ablate.study.launch import stop_with_parent
    from ablate.threads import apply_threads

    slot, env = free.get()
    os.environ.update(env)
    stop_with_parent()
    log = open(Path(log_dir) / f"diagnostics-{slot}.log", "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    print(f"[diagnostics slot {slot}] {apply_threads().line()}", flush=True)


def run_job(job: DiagnosticJob, run_fn: str, run_kwargs: dict[str, Any]) -> float:
    """One diagnostic run and its figures in MLflow (in a slot's process); its seconds."""
    from ablate.errors import AblateError
    from ablate.study.cell import import_run_fn

    print(f"[diagnostics] start {job.line}", flush=True)
    started = time.perf_counter()
    try:
        result = import_run_fn(run_fn)(job.recipe, recipe_path=job.recipe_path, tracking_uri=job.tracking_uri,
                                       parent_run_id=job.parent_run_id, tags=job.tags, progress=None, **run_kwargs)
    except AblateError as exc:  # its message, as a plain AblateError: a subclass with its own
        raise AblateError(str(exc)) from None  # __init__ would not unpickle in the study's process
    seconds = time.perf_counter() - started
    log_figures(result, seconds)
    print(f"[diagnostics] done {job.line} in {seconds:.0f} s", flush=True)
    return seconds


def log_figures(result, seconds: float) -> None:
    """The figures a diagnostic reads from its run (cost, steps, final loss), logged as a cell's."""
    from ablate.study.cell import CellResult
    from ablate.study.worker import log_cell_metrics, result_attrs

    cell = CellResult.from_run(result)
    log_cell_metrics(cell, result_attrs(cell, seconds))
