"""The cell queue on top of Optuna's trial queue.

Every cell is enqueued (`study.enqueue_trial`, the cell id in its user attrs); workers pop
them with `study.ask()`. A cell's state is read from its trials:

    done     a COMPLETE trial
    running  a RUNNING trial
    queued   a WAITING trial
    failed   its latest trial FAILed with an error (kept until --retry-failed)
    pending  never enqueued, or its worker died (killed, machine lost, heartbeat expired)

`sync` (run at the start of every `ablate study`) fails RUNNING trials whose worker is gone
and enqueues every pending cell, so re-running the command resumes without redoing finished
cells. `claim` asks for the next cell under a file lock; a trial that arrives without a cell
(the queue emptied meanwhile on another machine) or whose cell already ran is PRUNED.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

CELL = "cell"
ERROR = "error"
DIED = "died"  # why the worker of a FAILed trial vanished; such cells run again
JOB = "job"  # the launched job of a running cell: its process group, log and description

STATES = ("done", "running", "queued", "failed", "pending")


@dataclass
class CellState:
    cell: str
    state: str
    trial: Any = None  # the FrozenTrial that decided the state
    attempts: int = 0
    history: list[Any] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        return self.trial.user_attrs.get(ERROR) if self.trial is not None else None


def _trial_state():
    from optuna.trial import TrialState

    return TrialState


def trials_by_cell(study) -> dict[str, list[Any]]:
    TrialState = _trial_state()
    out: dict[str, list[Any]] = {}
    for trial in study.get_trials(deepcopy=False):
        cell = trial.user_attrs.get(CELL)
        if cell is None or trial.state == TrialState.PRUNED:
            continue
        out.setdefault(cell, []).append(trial)
    return out


def cell_states(study, cell_ids: list[str]) -> dict[str, CellState]:
    TrialState = _trial_state()
    grouped = trials_by_cell(study)
    states: dict[str, CellState] = {}
    for cell in cell_ids:
        trials = sorted(grouped.get(cell, []), key=lambda t: t.number)
        started = [t for t in trials if t.state != TrialState.WAITING]

        def first(state):
            return next((t for t in trials if t.state == state), None)

        if (t := first(TrialState.COMPLETE)) is not None:
            state = CellState(cell, "done", t)
        elif (t := first(TrialState.RUNNING)) is not None:
            state = CellState(cell, "running", t)
        elif (t := first(TrialState.WAITING)) is not None:
            state = CellState(cell, "queued", t)
        elif trials and trials[-1].state == TrialState.FAIL and ERROR in trials[-1].user_attrs:
            state = CellState(cell, "failed", trials[-1])
        else:
            state = CellState(cell, "pending", trials[-1] if trials else None)
        state.attempts, state.history = len(started), trials
        states[cell] = state
    return states


# --- liveness of workers ---------------------------------------------------------------------


def process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (guards against pid reuse); None off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_alive(pid: int, start: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":  # killed, not yet reaped by its parent
                return False
    except (OSError, IndexError):
        pass
    return start is None or process_start(pid) in (None, start)


def worker_identity() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "proc_start": process_start(pid), "started": time.time()}


def reap_dead(study, storage) -> list[Any]:
    """FAIL the RUNNING trials whose worker is gone; returns them (their cells become pending).

    Only Optuna's public API: `fail_stale_trials` for RDB storages' expired heartbeats, and the
    storage's own methods for trials whose worker process on this machine is gone."""
    import optuna
    from optuna.storages import fail_stale_trials

    from ablate.study.storage import trial_id

    TrialState = _trial_state()
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # marked experimental since Optuna 2.9, public all the same
        fail_stale_trials(study)  # RDB storages: trials whose heartbeat stopped
    reaped = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number in running]
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        why = _why_dead(trial, storage)
        if why is None:
            continue
        _kill_job(trial.user_attrs.get(JOB))
        ident = trial_id(storage, study, trial.number)
        try:
            storage.set_trial_user_attr(ident, DIED, why)
            storage.set_trial_state_values(ident, TrialState.FAIL)
            reaped.append(trial)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # it finished after all
    return reaped


def _why_dead(trial, storage) -> str | None:
    """Why a RUNNING trial's worker is gone, or None while it may be alive (or is another
    machine's, whose heartbeat tells)."""
    attrs, host = trial.user_attrs, socket.gethostname()
    if "pid" not in attrs:
        return "its worker died while claiming it" if _died_claiming(trial, storage) else None
    if attrs.get("host") != host or process_alive(int(attrs["pid"]), attrs.get("proc_start")):
        return None
    return f"worker pid {attrs['pid']} on {host} is gone"


def _died_claiming(trial, storage) -> bool:
    """Whether a RUNNING trial without its worker's identity was left by a worker that died
    between `study.ask()` and recording who it is (`claim`), a trial no heartbeat ever covers.
    Local workers claim under the queue lock the caller holds, so on the journal file no claim is
    under way; on a database other machines claim under their own locks, so there it counts as
    dead once it is older than the heartbeat grace period (a claim takes milliseconds)."""
    from datetime import datetime

    grace = getattr(storage, "grace_period", None)
    if not grace:
        return True
    started = trial.datetime_start
    return started is not None and (datetime.now() - started).total_seconds() > grace


def died_reason(trial) -> str | None:
    """Why a FAILed trial's worker vanished, or None: a worker that fails a cell itself records an
    error, so a failed trial with neither reason nor error was failed by its expired heartbeat."""
    if trial is None:
        return None
    if DIED in trial.user_attrs:
        return trial.user_attrs[DIED]
    if trial.state == _trial_state().FAIL and ERROR not in trial.user_attrs:
        return "heartbeat expired"
    return None


def _kill_job(job: dict[str, Any] | None) -> None:
    """Kill what is left of the job a dead worker launched (its ranks would still write to the
    cell's MLflow run); it normally stopped with its worker (launch.py's parent-death signal)."""
    if job and job.get("processes"):
        from ablate.study.launch import kill_processes, running

        launcher = job["processes"][0]  # its group too, while it is the launcher (not a reused pid)
        kill_processes(job["processes"], group=int(launcher[0]) if running(*launcher) else None)


# --- enqueue and claim -----------------------------------------------------------------------


def sync(study, cells, lock, *, storage, retry_failed: bool = False) -> tuple[dict[str, CellState], list[Any]]:
    """Reap dead workers' trials and enqueue every cell that is pending (or failed, if asked)."""
    with lock:
        reaped = reap_dead(study, storage)
        states = cell_states(study, [c.id for c in cells])
        for cell in cells:
            state = states[cell.id]
            if state.state == "pending" or (retry_failed and state.state == "failed"):
                study.enqueue_trial(cell.params, user_attrs={CELL: cell.id, "attempt": state.attempts + 1})
        return cell_states(study, [c.id for c in cells]), reaped


def claim(study, cells_by_id: dict[str, Any], lock):
    """(trial, cell) for the next queued cell, or None when the queue is empty."""
    TrialState = _trial_state()
    while True:
        with lock:
            if not study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                return None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with optimize"
                trial = study.ask()
            for key, value in worker_identity().items():
                trial.set_user_attr(key, value)
            cell_id = trial.user_attrs.get(CELL)
            if cell_id is None or cell_id not in cells_by_id:
                # A spare trial (the queue emptied between our check and ask, on another machine),
                # or a cell the study file no longer has: not ours to run.
                trial.set_user_attr("spare", cell_id or True)
                study.tell(trial, state=TrialState.PRUNED)
                continue
            twin = _twin(study, trial.number, cell_id)
            if twin is not None:
                trial.set_user_attr("duplicate_of", twin.number)
                study.tell(trial, state=TrialState.PRUNED)
                continue
        cell = cells_by_id[cell_id]
        _suggest(trial, cell, cells_by_id)
        return trial, cell


def _twin(study, number: int, cell_id: str):
    """Another trial of the same cell that is finished or running (enqueued twice by two machines)."""
    TrialState = _trial_state()
    for other in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if other.number != number and other.user_attrs.get(CELL) == cell_id:
            if other.state == TrialState.COMPLETE or other.number < number:
                return other
    return None


def _suggest(trial, cell, cells_by_id) -> None:
    """Record the cell's arm labels and seed as Optuna params (readable in optuna-dashboard)."""
    choices: dict[str, list[Any]] = {}
    for other in cells_by_id.values():
        for name, value in other.params.items():
            if value not in choices.setdefault(name, []):
                choices[name].append(value)
    try:
        for name, value in cell.params.items():
            if name == "seed":
                trial.suggest_int("seed", min(choices["seed"]), max(choices["seed"]))
            else:
                trial.suggest_categorical(name, choices[name])
    except ValueError:
        pass  # the study file's arms changed since the trial was enqueued; the user attrs still say it all
