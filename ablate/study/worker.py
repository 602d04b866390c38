"""A study worker: claim a queued cell, run it, tell Optuna, repeat.

Runs in the `ablate study` process (one worker) or as `python -m ablate.study.worker SPEC.json`
(`--workers N` starts N of these on the same journal file). A cell runs either here, in the
worker's process (the default), or, when the study asks for a launcher or `--nproc-per-node`,
as a job of N processes (`ablate.study.launch`) running `python -m ablate.study.cell`; the
worker waits for the job, keeping the trial's heartbeat, and records the trial from the job's
exit and the result file its rank 0 writes. The run function defaults to
`ablate.run.runner.run_recipe`; tests inject another as "module:function".
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from ablate.errors import AblateError
from ablate.study import follow, queue
from ablate.study.cell import DEFAULT_RUN_FN, CellResult, import_run_fn, write_cell
from ablate.study.launch import LaunchOptions, exit_signal, launcher_for, signal_label, wait_for
from ablate.study.parent import ParentRun, cell_tags, kill_orphans, saved_parent
from ablate.threads import apply_threads

__all__ = ["DEFAULT_RUN_FN", "Worker", "WorkerSpec", "import_run_fn", "objective_value", "run_fn_ref"]


@dataclass
class WorkerSpec:
    """Everything a worker process needs, as JSON."""

    study_path: str
    scale: str
    seeds: list[int]
    folder: str
    storage: str | None
    tracking_uri: str
    parent_run_id: str
    run_fn: str = DEFAULT_RUN_FN
    run_kwargs: dict[str, Any] = field(default_factory=dict)
    launch: dict[str, Any] = field(default_factory=dict)  # LaunchOptions; {}: cells run in the worker
    poll_s: float = 1.0  # how often a worker looks at its running job
    rehearse: bool = False  # the cells are their rehearsals on the kit (ablate.study.rehearsal)

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "WorkerSpec":
        return cls(**json.loads(Path(path).read_text()))


def run_fn_ref(fn: Callable[..., Any] | str | None) -> str:
    """'module:qualname' of a run function, so worker processes can import it."""
    if fn is None:
        return DEFAULT_RUN_FN
    if isinstance(fn, str):
        return fn
    ref = f"{fn.__module__}:{fn.__qualname__}"
    if "<" in ref or fn.__module__ == "__main__":
        raise AblateError(f"run function {ref}: worker processes cannot import it; pass a module-level function")
    return ref


class CellJobDied(Exception):
    """The cell's job was killed by a signal (SIGKILL of a rank or of its launcher): run it again."""


class Worker:
    def __init__(self, spec: WorkerSpec, run_fn: Callable[..., Any] | None = None, *,
                 progress_factory: Callable[[], Any] | None = None,
                 on_event: Callable[[str, Any, dict[str, Any]], None] | None = None):
        from ablate.study.cells import base_source, expand_cells
        from ablate.study.schema import load_study
        from ablate.study.storage import load_or_create, open_storage, optuna_study_name, queue_lock

        self.spec = spec
        self.study_file = load_study(spec.study_path)
        if spec.rehearse:
            from ablate.study.rehearsal import Rehearsal
            from ablate.zoo.kit import ensure_kit

            self.study_file.rehearsal = Rehearsal(ensure_kit(), self.study_file.name)
        self.label = self.study_file.scale_label(spec.scale)
        self.section = self.study_file.section(spec.scale)
        self.cells = {c.id: c for c in expand_cells(self.study_file, spec.scale, spec.seeds)}
        self.base = base_source(self.study_file, spec.scale)
        self.folder = Path(spec.folder)
        self.storage = open_storage(spec.storage, self.folder)
        self.study, _ = load_or_create(self.storage, optuna_study_name(self.study_file.name, self.label),
                                       self.study_file.spec.direction)
        self.lock = queue_lock(self.folder)
        self.launch = LaunchOptions(**spec.launch)
        self.run_fn = run_fn or (None if self.launch.as_job else import_run_fn(spec.run_fn))
        self.progress_factory = progress_factory  # a fresh rich Progress per cell, so bars do not pile up
        self.on_event = on_event or (lambda *_: None)

    def run(self, max_cells: int | None = None) -> int:
        """Drain the queue; returns the number of cells this worker completed."""
        done = 0
        while max_cells is None or done < max_cells:
            claimed = queue.claim(self.study, self.cells, self.lock)
            if claimed is None:
                break
            trial, cell = claimed
            done += self.execute(trial, cell)
        if self._leads_nodes:
            follow.post_done(self.folder)  # the other nodes stop
        return done

    @property
    def _leads_nodes(self) -> bool:
        """Whether this worker is node 0 of multi-node jobs that the other nodes follow (follow.py)."""
        return self.launch.nnodes > 1 and self.launch.kind != "slurm"

    def _outcome(self, trial, cell):
        """(the cell's result, its objective value), or None when it failed or its job died (the
        trial is told so)."""
        from optuna.trial import TrialState

        try:
            result = self._run_cell(trial, cell)
            return result, objective_value(result, self.section)
        except CellJobDied as exc:
            trial.set_user_attr(queue.DIED, str(exc)[:4000])  # like a dead worker's cell: it runs again
            self.study.tell(trial, state=TrialState.FAIL)
            self.on_event("fail", cell, {"trial": trial.number, "error": f"{exc} (queued to run again)"})
        except Exception as exc:  # noqa: BLE001 - a failing cell is recorded, the study goes on
            message = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr(queue.ERROR, message[:4000])
            if not isinstance(exc, AblateError):
                trial.set_user_attr("traceback", traceback.format_exc()[-8000:])
            self.study.tell(trial, state=TrialState.FAIL)
            self.on_event("fail", cell, {"trial": trial.number, "error": message})
        except BaseException:
            # Ctrl-C or a kill signal turned exception: the cell did not fail, it was stopped.
            trial.set_user_attr(queue.DIED, "interrupted")
            self.study.tell(trial, state=TrialState.FAIL)
            raise
        return None

    def execute(self, trial, cell) -> bool:
        from ablate.study.storage import heartbeat

        self.on_event("start", cell, {"trial": trial.number})
        t0 = time.perf_counter()
        with heartbeat(self.storage, self.study, trial.number):  # a silent trial is failed and requeued
            outcome = self._outcome(trial, cell)
        if outcome is None:
            return False
        result, value = outcome
        with interrupts_deferred():  # the run has finished: record it whole, or it runs again
            attrs = result_attrs(result, time.perf_counter() - t0)
            for key, val in attrs.items():
                trial.set_user_attr(key, val)
            log_cell_metrics(result, attrs)
            self.study.tell(trial, value)
            self.on_event("done", cell, {"trial": trial.number, "value": value, **attrs})
        return True

    def _run_cell(self, trial, cell) -> CellResult:
        from ablate.recipe.loading import recipe_hash
        from ablate.study.cells import cell_recipe

        recipe = cell_recipe(self.study_file, self.spec.scale, cell, self.base)
        rhash = recipe_hash(recipe)
        trial.set_user_attr("recipe_hash", rhash)
        if (earlier := self._finished_earlier(cell, rhash)) is not None:
            number, result = earlier
            trial.set_user_attr("result_of_trial", number)
            return result
        tags = cell_tags(self.study_file.name, self.label, cell, trial.number, rhash)
        if self.launch.as_job:
            return self._run_job(trial, cell, recipe, tags)
        with self.progress_factory() if self.progress_factory else contextlib.nullcontext() as progress:
            result = self.run_fn(
                recipe, recipe_path=self.study_file.base_path(self.spec.scale), tracking_uri=self.spec.tracking_uri,
                parent_run_id=self.spec.parent_run_id, tags=tags, progress=progress, **self.spec.run_kwargs,
            )
        cell_result = CellResult.from_run(result)
        # Kept before the trial is told: a worker killed in between leaves it for the next one.
        cell_result.save(self._cell_folder(cell, trial.number, make=True) / RESULT_FILE)
        return cell_result

    def _cell_folder(self, cell, number: int, make: bool = False) -> Path:
        folder = self.folder / "cells" / re.sub(r"[^\w.=-]+", "_", cell.id) / f"trial-{number}"
        if make:
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _finished_earlier(self, cell, rhash: str) -> tuple[int, CellResult] | None:
        """(trial number, result) of an earlier attempt at this cell whose run finished but whose
        worker died before telling Optuna (killed between the two): its result is the cell's,
        instead of a second run. Only a result kept in the attempt's folder, of the same recipe,
        whose MLflow run finished under this study's parent run."""
        for trial in queue.trials_by_cell(self.study).get(cell.id, []):
            if queue.DIED not in trial.user_attrs or trial.user_attrs.get("recipe_hash") != rhash:
                continue
            path = self._cell_folder(cell, trial.number) / RESULT_FILE
            result = read_result(path) if path.is_file() else None
            if result is not None and _finished_run(result, self.spec.parent_run_id, cell.id, rhash):
                return trial.number, result
        return None

    def _run_job(self, trial, cell, recipe, tags: dict[str, str]) -> CellResult:
        """The cell as a launched job: write its spec, launch, wait, read what rank 0 wrote."""
        folder = self._cell_folder(cell, trial.number)
        spec_path, cell_spec = write_cell(folder, recipe, {
            "tracking_uri": self.spec.tracking_uri, "parent_run_id": self.spec.parent_run_id, "tags": tags,
            "recipe_path": str(self.study_file.base_path(self.spec.scale)), "run_fn": self.spec.run_fn,
            "run_kwargs": self.spec.run_kwargs,
        })
        self._build_zoo(recipe)
        launcher = launcher_for(self.launch, deepspeed=any(stage.deepspeed for stage in recipe.stages))
        log = folder / "job.log"
        name = f"{self.study_file.name}-{self.label}-trial-{trial.number}"
        argv = [sys.executable, "-m", "ablate.study.cell", str(spec_path)]
        if self._leads_nodes:
            follow.post_job(self.folder, name, argv, folder)
        job = launcher.launch(argv, env=job_env(), log_path=log, name=name)
        try:
            code = wait_for(job, self.spec.poll_s, on_tick=_job_recorder(trial, job, log))
        except BaseException:
            job.kill()
            self._close_runs(trial.number, "KILLED")
            raise
        finally:
            if self._leads_nodes:
                follow.post_ended(self.folder, name)
        if code == 0 and Path(cell_spec.result_file).is_file():
            return CellResult.load(Path(cell_spec.result_file))
        return self._job_failed(trial.number, code, log, Path(cell_spec.error_file))

    def _build_zoo(self, recipe) -> None:
        """Build the cell's `zoo:` checkpoints here, in one process, before its ranks start: a zoo
        stand-in is pretrained with the Trainer, which under torchrun's environment would wrap it
        in DDP on rank 0 alone while the other ranks wait (a deadlock)."""
        from ablate.zoo import build, is_built, zoo_names

        names = [name for name in zoo_names(recipe.model) if not is_built(name)]
        if not names:
            return
        with self.progress_factory() if self.progress_factory else contextlib.nullcontext() as progress:
            for name in names:
                build(name, progress=progress)

    def _job_failed(self, number: int, code: int, log: Path, error_file: Path):
        """Raise what the failed job says: died of a signal (run again) or an error (recorded)."""
        sig = exit_signal(code, log)
        self._close_runs(number, "KILLED" if sig else "FAILED")
        if sig is not None:
            raise CellJobDied(f"cell job exited with {-sig} ({signal_label(sig)}); log: {log}")
        try:
            error = json.loads(error_file.read_text())["error"]
        except (OSError, ValueError, KeyError):
            error = "it wrote no result" if code == 0 else "no rank recorded an error"
        raise AblateError(f"cell job exited with {code}: {error}; log: {log}")

    def _close_runs(self, number: int, status: str) -> None:
        """A job that died leaves its nested MLflow run RUNNING: mark it, so the report ignores it."""
        parent = saved_parent(self.folder)
        if parent is None or parent.run_id != self.spec.parent_run_id:
            import mlflow

            run = mlflow.MlflowClient(self.spec.tracking_uri).get_run(self.spec.parent_run_id)
            parent = ParentRun(self.spec.parent_run_id, self.spec.tracking_uri, run.info.experiment_id)
        kill_orphans(parent, [number], status)


def _job_recorder(trial, job, log: Path) -> Callable[[], None]:
    """Keep the job's processes in the trial (what the next `ablate study` kills if this worker
    dies: queue.reap_dead), updated when the launcher starts more."""
    recorded: list[Any] = [None]

    def record() -> None:
        procs = job.processes() if hasattr(job, "processes") else []  # a SLURM job has no local processes
        if procs != recorded[0]:
            recorded[0] = procs
            trial.set_user_attr(queue.JOB, {"describe": job.describe(), "log": str(log), "processes": procs})

    record()
    return record


RESULT_FILE = "result.json"  # a finished attempt's CellResult (written by rank 0 of a launched job)


def read_result(path: Path) -> CellResult:
    """A kept CellResult; a StoredStateError naming the file when it is not one (never guessed at)."""
    from ablate.run.stage_store import StoredStateError

    try:
        return CellResult.load(path)
    except (OSError, ValueError, TypeError) as err:
        raise StoredStateError(f"cell result {path} cannot be read ({type(err).__name__}: {err}); delete it "
                               f"to run the cell again") from None


def _finished_run(result: CellResult, parent_run_id: str, cell_id: str, rhash: str) -> bool:
    """Whether `result` names a FINISHED MLflow run of this cell and recipe under the parent run."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from ablate.study.parent import TAG

    if not result.run_id:
        return False
    try:
        run = mlflow.MlflowClient(result.tracking_uri).get_run(result.run_id)
    except MlflowException:
        return False
    tags = run.data.tags
    return (run.info.status == "FINISHED" and tags.get("mlflow.parentRunId") == parent_run_id
            and tags.get(f"{TAG}.cell") == cell_id and tags.get("ablate.recipe_hash") == rhash)


def job_env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def objective_value(result, section) -> float:
    spec = section.metric(section.objective)
    metrics = result.eval_metrics or {}
    for key in (spec.name, spec.mlflow_key().split("/", 1)[-1]):
        if key in metrics:
            return float(metrics[key])
    raise AblateError(
        f"objective metric {section.objective!r} is not among the run's eval metrics "
        f"({', '.join(sorted(metrics)) or 'none: does the recipe have an eval section?'})"
    )


def result_attrs(result: CellResult, seconds: float) -> dict[str, Any]:
    """What the study summary needs from a cell's result, as JSON-friendly trial attributes."""
    cache = result.feature_cache or {}
    return {
        "run_id": result.run_id,
        "tracking_uri": result.tracking_uri,
        "seconds": float(result.seconds or seconds),
        "stages": result.stages,
        "stages_reused": result.stages_reused,
        "feature_cache_hits": int(cache.get("hits", 0)),
        "feature_cache_misses": int(cache.get("misses", 0)),
        "visual_tokens": int(result.visual_tokens),
        "parameter_counts": result.parameter_counts,
        "metrics": {k: float(v) for k, v in (result.eval_metrics or {}).items()},
    }


@contextlib.contextmanager
def interrupts_deferred():
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first that came.

    A cell whose run has finished is recorded in a few storage writes; a stop signal landing among
    them (its `ablate study` killed, Ctrl-C) would leave the trial running, so the next study
    would find its worker gone and run the finished cell again. Signal handlers can only be set
    on the main thread; elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
        if caught:
            signal.raise_signal(caught[0])


def log_cell_metrics(result, attrs: dict[str, Any]) -> None:
    """Log the figures the study report reads (cost, sharing, model size, each stage's steps and
    final loss) onto the cell's run."""
    if not result.run_id:
        return
    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    values = {
        "study/seconds": attrs["seconds"], "study/stages": attrs["stages"], "study/stages_reused": attrs["stages_reused"],
        "study/feature_cache_hits": attrs["feature_cache_hits"], "study/feature_cache_misses": attrs["feature_cache_misses"],
        "study/visual_tokens": attrs["visual_tokens"],
        **{f"study/params/{c}/{k}": v for c, d in (result.parameter_counts or {}).items() for k, v in d.items()},
        **{f"study/stage/{s}/{k}": v for s, d in (result.stage_figures or {}).items() for k, v in d.items()},
    }
    client = mlflow.MlflowClient(result.tracking_uri)
    client.log_batch(result.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ablate.study.worker SPEC.json", file=sys.stderr)
        return 2
    spec = WorkerSpec.load(argv[0])
    print(f"[worker] {apply_threads().line()}", flush=True)

    def report(event: str, cell, info: dict[str, Any]) -> None:
        detail = {"start": "", "done": f" value={info.get('value')}", "fail": f" error={info.get('error')}"}[event]
        print(f"[worker] {event} {cell.id} (trial {info.get('trial')}){detail}", flush=True)

    # A SIGTERM (its `ablate study` killed, or `kill`) stops the worker as Ctrl-C does: the cell is
    # marked interrupted and runs again, instead of waiting to be reaped as a dead worker's.
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        done = Worker(spec, on_event=report).run()
    except AblateError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"[worker] queue empty; completed {done} cell(s)", flush=True)
    return 0


def _interrupted(signum, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
