"""`ablate study`: prepare a study, open its parent run, queue its cells, run workers, report.

    run_study("clip_layer", scale="tiny")                 # in-process, one worker
    run_study("clip_layer", scale="tiny", workers=2)      # two worker processes on the journal
    run_study(path, run_fn=fake_run)                      # tests: any function shaped like run_recipe

Re-running the same call resumes: finished cells stay finished, cells whose worker died run
again, failed cells are listed with their error until `retry_failed=True`.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ablate.errors import AblateError
from ablate.study import queue
from ablate.study.cells import (
    Cell,
    StudyCheckpointError,
    expand_cells,
    missing_checkpoints,
    seeds_for,
    study_experiment,
    validate_cells,
)
from ablate.study.discovery import find_study
from ablate.study.launch import LaunchOptions, split_devices, stop_with_parent
from ablate.study.parent import ParentRun, close_parent, kill_orphans, open_parent, parent_for_report, saved_parent
from ablate.study.schema import StudyFile, load_study
from ablate.study.storage import database_url, load_or_create, open_storage, optuna_study_name, queue_lock, study_folder
from ablate.study.worker import Worker, WorkerSpec, run_fn_ref
from ablate.threads import worker_threads

WORKER_SPEC = "worker.json"


@dataclass
class PreparedStudy:
    study: StudyFile
    scale: str
    seeds: list[int]
    cells: list[Cell]
    recipes: dict[str, Any]  # cell id -> Recipe
    folder: Path
    experiment: str

    @property
    def label(self) -> str:
        """The scale as folders, the Optuna study and tags name it (`paper-rehearsal` in a rehearsal)."""
        return self.study.scale_label(self.scale)

    @property
    def optuna_name(self) -> str:
        return optuna_study_name(self.study.name, self.label)


@dataclass
class StudyOutcome:
    prepared: PreparedStudy
    parent: ParentRun
    states: dict[str, queue.CellState]
    report: Any = None
    report_paths: list[Path] = field(default_factory=list)
    interrupted: bool = False
    stale: dict[str, str] = field(default_factory=dict)  # done cells that ran an older recipe -> why

    def counts(self) -> dict[str, int]:
        return {s: sum(st.state == s for st in self.states.values()) for s in queue.STATES}


def prepare_study(ref: str | Path, scale: str = "paper", *, seeds: int | None = None,
                  check_checkpoints: bool = True, rehearsal=None) -> PreparedStudy:
    """Load and validate the study and every cell's recipe; check the checkpoints are here.
    With a `rehearsal` (ablate.study.rehearsal.Rehearsal), the cells are its recipes on the kit."""
    study = load_study(find_study(str(ref)))
    study.rehearsal = rehearsal
    study.section(scale)  # a clear error for a scale the study lacks
    seed_list = seeds_for(study, scale, seeds)
    cells = expand_cells(study, scale, seed_list)
    recipes = validate_cells(study, scale, cells)
    if check_checkpoints:
        missing = missing_checkpoints(recipes.values())
        if missing:
            raise StudyCheckpointError(study.name, scale, missing)
    output_dirs = sorted({r.output_dir for r in recipes.values()})
    if len(output_dirs) > 1:
        raise AblateError(f"study {study.name!r}: every arm must keep one output_dir, got {', '.join(output_dirs)}")
    folder = study_folder(output_dirs[0], study.name, study.scale_label(scale))
    return PreparedStudy(study, scale, seed_list, cells, recipes, folder, study_experiment(study, scale))


def resolve_tracking_uri(prepared: PreparedStudy, explicit: str | None) -> str:
    from ablate.tracking import tracking_uri

    if explicit:
        return explicit
    saved = saved_parent(prepared.folder)
    if saved is not None:
        return saved.tracking_uri
    first = next(iter(prepared.recipes.values()))
    return tracking_uri(first.tracking.tracking_uri)


@dataclass
class _Session:
    """The study's open state for one `ablate study`: Optuna study, parent run, queue lock."""

    study: Any
    parent: ParentRun
    lock: Any
    states: dict[str, queue.CellState]
    storage: Any


def run_study(
    ref: str | Path,
    *,
    scale: str = "paper",
    seeds: int | None = None,
    workers: int = 1,
    storage: str | None = None,
    tracking_uri: str | None = None,
    retry_failed: bool = False,
    run_fn: Callable[..., Any] | str | None = None,
    run_kwargs: dict[str, Any] | None = None,
    check_checkpoints: bool = True,
    report: bool = True,
    include_stale: bool = False,
    console=None,
    progress_factory: Callable[[], Any] | None = None,
    poll_s: float = 1.0,
    launch: LaunchOptions | None = None,
    rehearsal=None,
) -> StudyOutcome:
    from rich.console import Console

    console = console or Console()
    launch = launch or LaunchOptions()
    check_options(workers, launch, storage, tracking_uri)
    # each worker its own GPUs (a clear error if too few, before anything starts)
    device_envs = split_devices(workers, launch.nproc_per_node or 1) if workers > 1 or launch.as_job else [{}]
    # worker and cell processes import the run function by name; in this process any callable will do
    by_name = workers > 1 or launch.as_job or not callable(run_fn)
    fn_ref = run_fn_ref(run_fn) if by_name else f"{getattr(run_fn, '__module__', '?')}:<in-process>"
    prepared = prepare_study(ref, scale, seeds=seeds, check_checkpoints=check_checkpoints, rehearsal=rehearsal)
    preflight(prepared, console)
    launch = _with_study_slurm(launch, prepared)
    uri = resolve_tracking_uri(prepared, tracking_uri)
    session = _open_session(prepared, storage, uri, retry_failed, console)
    stale = warn_stale(prepared, session.parent, console)
    spec = WorkerSpec(
        study_path=str(prepared.study.path), scale=scale, seeds=prepared.seeds, folder=str(prepared.folder.resolve()),
        storage=storage, tracking_uri=uri, parent_run_id=session.parent.run_id, run_fn=fn_ref,
        run_kwargs=dict(run_kwargs or {}), launch=launch.to_dict(), poll_s=min(poll_s, 1.0),
        rehearse=rehearsal is not None,
    )
    in_process_fn = run_fn if callable(run_fn) and not launch.as_job else None
    interrupted, live = _drain(spec, device_envs, in_process_fn, prepared, session, console, progress_factory, poll_s)
    outcome = _finish(prepared, session, interrupted, stale)
    if live:
        console.print()  # the live view leaves the final table on screen
    else:
        console.print(status_table(prepared, outcome.states))
    print_summary(outcome, console)
    if outcome.counts()["done"]:
        _diagnose_and_report(outcome, run_fn, run_kwargs, _diagnostic_slots(spec, device_envs, launch), report,
                             include_stale, console)
    if interrupted:
        console.print("[yellow]interrupted[/]: re-run the same command to resume")
        raise KeyboardInterrupt
    return outcome


# Each local worker is a process running cells side by side on this machine; past this many, a
# count is a typo that would start as many processes before any of them failed.
MAX_WORKERS = 256


def check_options(workers: int, launch: LaunchOptions, storage: str | None, tracking_uri: str | None) -> None:
    """The command line's own mistakes, named before the cells are checked (seconds) and before the
    study folder, its journal and its lock are made: a later good run must not find them half made."""
    from ablate.tracking import check_tracking_uri

    check_workers(workers, launch)
    if storage is not None:
        database_url(storage)
    if tracking_uri is not None:
        check_tracking_uri(tracking_uri)


def check_workers(workers: int, launch: LaunchOptions) -> None:
    """AblateError for a --workers count this launch cannot run."""
    if not 1 <= workers <= MAX_WORKERS:
        raise AblateError(f"--workers must be from 1 to {MAX_WORKERS} (local worker processes), got {workers}")
    if workers > 1 and launch.nnodes > 1:
        raise AblateError(f"--workers {workers} with --nnodes {launch.nnodes}: a multi-node study runs one worker "
                          "(on node 0; the other nodes follow with --node-rank)")


def preflight(prepared: PreparedStudy, console) -> None:
    """`ablate study --check` on the prepared cells, before anything is created or trained:
    StudyCheckError naming every problem of every cell."""
    from ablate.study.preflight import check_cells

    check = check_cells(prepared.study, prepared.scale, prepared.cells, prepared.recipes)
    check.raise_if_problems()
    console.print(f"checked {len(prepared.cells)} cells on the meta device (shapes, trainable sets, named files) "
                  f"in {check.seconds:.1f} s: ok", highlight=False)


def _with_study_slurm(launch: LaunchOptions, prepared: PreparedStudy) -> LaunchOptions:
    """For --launcher slurm: the study file's `slurm:` section, the --slurm settings on top."""
    if launch.kind != "slurm":
        return launch
    import dataclasses

    from ablate.study.slurm import slurm_options_from

    merged = slurm_options_from(prepared.study.spec.slurm, launch.slurm)
    return dataclasses.replace(launch, slurm=merged.model_dump(exclude_unset=True))


def follow_study(ref: str | Path, launch: LaunchOptions, node_rank: int, *, scale: str = "paper",
                 seeds: int | None = None, console=None) -> int:
    """Node `node_rank` (> 0) of multi-node cell jobs: join each job node 0 posts (follow.py)."""
    from rich.console import Console

    from ablate.study.follow import follow

    if launch.nnodes < 2 or not 0 < node_rank < launch.nnodes:
        raise AblateError(f"--node-rank {node_rank}: expected 1..{launch.nnodes - 1} with --nnodes {launch.nnodes} "
                          "(node 0 runs the study without --node-rank)")
    console = console or Console()
    prepared = prepare_study(ref, scale, seeds=seeds, check_checkpoints=False)
    return follow(prepared.folder.resolve(), launch, node_rank, say=lambda line: console.print(line, highlight=False))


def _open_session(prepared: PreparedStudy, storage: str | None, uri: str, retry_failed: bool, console) -> _Session:
    """Open (or create) the Optuna study and the parent run, queue the pending cells, say where it stands."""
    folder = prepared.folder
    folder.mkdir(parents=True, exist_ok=True)
    opened = open_storage(storage, folder)
    study, created = load_or_create(opened, prepared.optuna_name, prepared.study.spec.direction)
    lock = queue_lock(folder)
    with lock:  # two machines starting at once must not both create the study's parent run
        parent = open_parent(folder, uri, prepared.experiment, prepared.study, prepared.label)
    states, reaped = queue.sync(study, prepared.cells, lock, storage=opened, retry_failed=retry_failed)
    kill_orphans(parent, [t.number for t in reaped])
    console.print(
        f"[bold]ablate study[/] {prepared.study.name} ({prepared.label} scale) · {len(prepared.cells)} cells "
        f"({len(prepared.study.arm_names())} arms x {len(prepared.seeds)} seeds) · folder {folder} · "
        f"{'new' if created else 'resumed'} · MLflow parent run {parent.run_id} in {uri}",
        highlight=False,
    )
    if reaped:
        console.print(f"[yellow]{len(reaped)} cell(s) whose worker died are queued again[/]")
    console.print(status_table(prepared, states))
    return _Session(study, parent, lock, states, opened)


def _drain(spec: WorkerSpec, device_envs: list[dict[str, str]], run_fn, prepared: PreparedStudy, session: _Session,
           console, progress_factory, poll_s: float) -> tuple[bool, bool]:
    """Run the queued cells here or in worker processes (one per entry of `device_envs`, each
    with its own devices); (interrupted, whether a live view showed)."""
    if not any(s.state == "queued" for s in session.states.values()):
        return False, False
    workers = len(device_envs)
    try:
        if workers == 1:
            _run_in_process(spec, run_fn, console, progress_factory)
        else:
            _run_processes(spec, device_envs, prepared, session.study, console, poll_s)
    except KeyboardInterrupt:
        return True, workers > 1
    return False, workers > 1


def _finish(prepared: PreparedStudy, session: _Session, interrupted: bool, stale: dict[str, str]) -> StudyOutcome:
    """Reap workers that died, read the cells' states, and close the parent run accordingly."""
    with session.lock:  # a worker that died during this run leaves its cell RUNNING: mark it for the next run
        kill_orphans(session.parent, [t.number for t in queue.reap_dead(session.study, session.storage)])
    states = queue.cell_states(session.study, [c.id for c in prepared.cells])
    outcome = StudyOutcome(prepared, session.parent, states, interrupted=interrupted, stale=stale)
    counts = outcome.counts()
    if counts["done"] == len(states):
        close_parent(session.parent, "FINISHED")
    elif interrupted:
        close_parent(session.parent, "KILLED")
    elif not counts["running"]:  # cells still running elsewhere (other machines) keep it open
        close_parent(session.parent, "FAILED")
    return outcome


def _diagnostic_slots(spec: WorkerSpec, device_envs: list[dict[str, str]], launch: LaunchOptions):
    """The local workers' slots (each its own GPUs), for the diagnostics' runs side by side; None
    (they run here, one after another) with one worker, cells run as launched jobs, or no GPUs."""
    from ablate.study.diagnostics.pool import Slots

    # Without GPUs the slots could only split the CPU's threads, and measured no faster than one
    # run at a time with all of them (benchmarks/diagnostic_runs.py on 2 cores: llm_scale 424 s
    # against 505 s side by side, data_types 693 s against 620 s).
    if len(device_envs) < 2 or launch.as_job or not all(env.get("CUDA_VISIBLE_DEVICES") for env in device_envs):
        return None
    threads = worker_threads(len(device_envs))
    return Slots([{**devices, **threads} for devices in device_envs], Path(spec.folder) / "workers", spec.run_fn,
                 dict(spec.run_kwargs))


def _diagnose_and_report(outcome: StudyOutcome, run_fn, run_kwargs, side_by_side, report: bool, include_stale: bool,
                         console) -> None:
    if not outcome.interrupted:
        _diagnose(outcome.prepared, outcome.parent, run_fn, run_kwargs, side_by_side, console)
    if report:
        _report(outcome, include_stale, console)


def _diagnose(prepared: PreparedStudy, parent: ParentRun, run_fn, run_kwargs: dict[str, Any] | None, side_by_side,
              console) -> None:
    """The study file's diagnostics at this scale, after the cells: their extra runs nest under
    the parent run like the cells (what MLflow holds already is not redone). With `side_by_side`
    (local workers with GPUs each), they share the workers' slots; else they run in this process."""
    from ablate.study.diagnostics.run import declared, run_diagnostics
    from ablate.study.worker import import_run_fn

    if not declared(prepared.study, prepared.scale):
        return
    fn = run_fn if callable(run_fn) else import_run_fn(run_fn_ref(run_fn))
    if run_kwargs:
        fn = functools.partial(fn, **run_kwargs)
    run_diagnostics(prepared.study, prepared.scale, prepared.label, parent, prepared.recipes, fn,
                    lambda line: console.print(line, highlight=False),
                    recipe_path=prepared.study.base_path(prepared.scale), side_by_side=side_by_side)


def _report(outcome: StudyOutcome, include_stale: bool, console) -> None:
    from ablate.study.report import make_report, render_markdown

    prepared = outcome.prepared
    outcome.report, outcome.report_paths = make_report(
        prepared.study, prepared.scale, outcome.parent, prepared.folder, recipes=prepared.recipes,
        include_stale=include_stale,
    )
    console.print(render_markdown(outcome.report), markup=False, highlight=False)
    console.print(f"report: {', '.join(str(p) for p in outcome.report_paths)}", highlight=False)


def find_stale(prepared: PreparedStudy, parent: ParentRun) -> dict[str, str]:
    """{cell id: reason} for the finished cells whose MLflow run recorded another recipe hash or
    other stage keys than the study file gives now (the check the report makes)."""
    from ablate.study.collect import collect_runs
    from ablate.study.staleness import judge_runs

    return judge_runs(prepared.study, prepared.scale, collect_runs(parent, predictions=False), prepared.recipes)[1]


def warn_stale(prepared: PreparedStudy, parent: ParentRun, console) -> dict[str, str]:
    """Say which finished cells ran another recipe than the study file now gives; they are not
    rerun silently (their results are recorded work), and the report leaves them out."""
    stale = find_stale(prepared, parent)
    if stale:
        console.print(
            f"[yellow]{len(stale)} finished cell(s) ran another recipe than the study file gives now[/] (it, a "
            f"recipe it builds on, or a stage's inputs changed since): "
            + "; ".join(f"{cell}: {why}" for cell, why in stale.items())
            + f". The report marks them stale and leaves them out of its means (--include-stale counts them). "
            f"To run the study as it is now, move the study folder {prepared.folder} aside "
            f"(or use another --storage) and run again; stages whose inputs did not change are reused.",
            highlight=False,
        )
    return stale


def _run_in_process(spec: WorkerSpec, run_fn, console, progress_factory) -> None:
    def event(kind: str, cell: Cell, info: dict[str, Any]) -> None:
        console.print(_event_line(kind, cell, info), highlight=False)

    Worker(spec, run_fn, progress_factory=progress_factory, on_event=event).run()


def _event_line(kind: str, cell: Cell, info: dict[str, Any]) -> str:
    from rich.markup import escape

    arm = escape(cell.arm)
    if kind == "start":
        return f"[bold]▶[/] {arm} · seed {cell.seed} (trial {info['trial']})"
    if kind == "fail":
        return f"[red]✗[/] {arm} · seed {cell.seed}: {escape(info['error'])}"
    reused = info.get("stages_reused", 0)
    return (f"[green]✓[/] {arm} · seed {cell.seed}: objective {info['value']:.4f} · "
            f"{info.get('seconds', 0):.1f} s · {reused} stage(s) reused · "
            f"feature cache {info.get('feature_cache_hits', 0)} hits")


def _run_processes(spec: WorkerSpec, device_envs: list[dict[str, str]], prepared: PreparedStudy, study, console,
                   poll_s: float) -> None:
    """`python -m ablate.study.worker` processes on the shared storage (each with its own
    CUDA_VISIBLE_DEVICES where there are GPUs), with a live status table."""
    from rich.live import Live

    folder = Path(spec.folder)
    spec_path = spec.save(folder / WORKER_SPEC)
    logs = folder / "workers"
    logs.mkdir(exist_ok=True)
    procs: list[subprocess.Popen] = []
    handles = []
    try:
        for i, devices in enumerate(device_envs):
            handle = (logs / f"worker-{i}.log").open("a")
            handles.append(handle)
            env = {**os.environ, **devices, **worker_threads(len(device_envs)), "ABLATE_STUDY_WORKER": str(i)}
            # stop_with_parent: a study killed (not Ctrl-C'd) takes its workers with it; each marks
            # its cell interrupted, and the next `ablate study` runs it again
            procs.append(subprocess.Popen([sys.executable, "-m", "ablate.study.worker", str(spec_path)],
                                          stdout=handle, stderr=subprocess.STDOUT, env=env,
                                          preexec_fn=stop_with_parent))
        ids = [c.id for c in prepared.cells]
        with Live(status_table(prepared, queue.cell_states(study, ids)), console=console, refresh_per_second=2) as live:
            while any(p.poll() is None for p in procs):
                time.sleep(poll_s)
                live.update(status_table(prepared, queue.cell_states(study, ids)))
            live.update(status_table(prepared, queue.cell_states(study, ids)))
    except KeyboardInterrupt:
        for p in procs:
            if p.poll() is None:
                p.send_signal(2)  # SIGINT: each worker marks its cell interrupted, to run again
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        raise
    finally:
        for handle in handles:
            handle.close()
    bad = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode not in (0, None)]
    for i, code in bad:
        console.print(f"[yellow]worker {i} exited with {code}[/]; log: {logs / f'worker-{i}.log'}", highlight=False)


# --- display ---------------------------------------------------------------------------------

STATE_STYLE = {"done": "green", "running": "cyan", "queued": "white", "failed": "red", "pending": "yellow"}


def status_table(prepared: PreparedStudy, states: dict[str, queue.CellState]):
    from rich.markup import escape
    from rich.table import Table

    counts = {s: sum(st.state == s for st in states.values()) for s in queue.STATES}
    title = f"{prepared.study.name} ({prepared.label} scale): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    table = Table(title=title, title_justify="left")
    for col in ("arm", "seed", "state", "trial", "worker", "time", "objective", "note"):
        table.add_column(col, overflow="fold")
    for cell in prepared.cells:
        st = states[cell.id]
        attrs = st.trial.user_attrs if st.trial is not None else {}
        worker = f"{attrs['host']}:{attrs['pid']}" if st.state == "running" and "pid" in attrs else ""
        seconds = attrs.get("seconds")
        value = st.trial.value if st.state == "done" and st.trial is not None else None
        died = queue.died_reason(st.trial) if st.state != "done" else None
        note = st.error or (f"retry after: {died}" if died else "")
        table.add_row(escape(cell.arm), str(cell.seed), f"[{STATE_STYLE[st.state]}]{st.state}[/]",
                      str(st.trial.number) if st.trial is not None else "", worker,
                      f"{seconds:.1f}s" if seconds is not None else "", f"{value:.4f}" if value is not None else "",
                      escape((note or "")[:200]))
    return table


def summary(states: dict[str, queue.CellState]) -> dict[str, float]:
    """Compute seconds, stages reused and feature-cache hits over the finished cells."""
    done = [s.trial.user_attrs for s in states.values() if s.state == "done"]
    return {
        "cells_done": len(done),
        "seconds": sum(a.get("seconds", 0.0) for a in done),
        "stages": sum(a.get("stages", 0) for a in done),
        "stages_reused": sum(a.get("stages_reused", 0) for a in done),
        "feature_cache_hits": sum(a.get("feature_cache_hits", 0) for a in done),
        "feature_cache_misses": sum(a.get("feature_cache_misses", 0) for a in done),
    }


def print_summary(outcome: StudyOutcome, console) -> None:
    from rich.markup import escape

    s = summary(outcome.states)
    counts = outcome.counts()
    console.print(
        f"[bold]summary[/]: {counts['done']}/{len(outcome.states)} cells done · compute {s['seconds']:.1f} s · "
        f"stages reused {int(s['stages_reused'])} of {int(s['stages'])} · feature cache "
        f"{int(s['feature_cache_hits'])} hits / {int(s['feature_cache_misses'])} misses",
        highlight=False,
    )
    for cell, st in outcome.states.items():
        if st.state == "failed":
            console.print(f"[red]failed[/] {escape(cell)}: {escape(st.error or '')}", highlight=False)
    if counts["failed"]:
        console.print("re-run with --retry-failed to run the failed cells again")
    if counts["pending"] or counts["queued"] or counts["running"]:
        console.print("some cells did not finish; re-run the same command to resume")


# --- report only -----------------------------------------------------------------------------


def report_study(ref: str | Path, *, scale: str = "paper", tracking_uri: str | None = None, include_stale: bool = False):
    """(Report, paths) for a study that has run (or partly run) on this machine."""
    from ablate.study.report import make_report

    prepared = prepare_study(ref, scale, check_checkpoints=False)
    parent = parent_for_report(prepared.folder, tracking_uri)  # checked before any report file is rewritten
    if parent is None:
        raise AblateError(f"study {prepared.study.name!r} [{scale}] has not run here: no {prepared.folder}/mlflow.json. "
                          f"Run `ablate study {prepared.study.name} --scale {scale}` first")
    return make_report(prepared.study, scale, parent, prepared.folder, recipes=prepared.recipes,
                       include_stale=include_stale)
