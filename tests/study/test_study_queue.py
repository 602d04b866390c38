"""The cell queue: every cell once, resume after a killed worker, failures, several workers."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from ablate.study import queue
from ablate.study.parent import nested_runs, saved_parent
from ablate.study.runner import run_study
from ablate.study.storage import open_storage, queue_lock, trial_id
from study_fakes import fake_run, quiet_console, run_log

CELLS = {f"{arm}|seed={seed}" for arm in ("linear", "mlp2") for seed in (7, 8)}
NAMES = {f"demo-{arm}-s{seed}" for arm in ("linear", "mlp2") for seed in (7, 8)}


def run(**kwargs):
    kwargs.setdefault("run_fn", fake_run)
    return run_study("demo", scale="tiny", console=quiet_console(), **kwargs)


def trials(outcome):
    storage = open_storage(None, outcome.prepared.folder)
    return optuna.load_study(study_name="demo-tiny", storage=storage).get_trials(deepcopy=False)


def completed_cells(outcome):
    return Counter(t.user_attrs["cell"] for t in trials(outcome) if t.state == TrialState.COMPLETE)


def test_every_cell_runs_exactly_once_and_rerun_redoes_nothing(project):
    outcome = run()
    assert outcome.counts()["done"] == 4
    assert completed_cells(outcome) == Counter({c: 1 for c in CELLS})
    log = run_log(project)
    assert Counter(e["name"] for e in log if e["event"] == "done") == Counter({n: 1 for n in NAMES})
    done = [t for t in trials(outcome) if t.state == TrialState.COMPLETE]
    assert {t.params["connector"] for t in done} == {"linear", "mlp2"} and {t.params["seed"] for t in done} == {7, 8}
    for t in done:
        assert t.user_attrs["stages_reused"] == 1 and t.user_attrs["feature_cache_hits"] == 3
        assert t.value == pytest.approx(t.user_attrs["metrics"]["accuracy"])
    # MLflow: one parent, one FINISHED nested run per cell, tagged with arm, seed and recipe hash
    parent = saved_parent(outcome.prepared.folder)
    runs = nested_runs(parent, status="FINISHED")
    assert sorted(r.data.tags["ablate.study.cell"] for r in runs) == sorted(CELLS)
    for r in runs:
        tags = r.data.tags
        assert tags["ablate.study"] == "demo" and tags["ablate.study.scale"] == "tiny"
        assert tags["ablate.study.axis.connector"] == tags["ablate.study.arm"]
        assert tags["ablate.recipe_hash"] and tags["ablate.study.seed"] in {"7", "8"}
        assert r.data.metrics["study/visual_tokens"] == 64
    assert parent.client().get_run(parent.run_id).info.status == "FINISHED"
    assert (outcome.prepared.folder / "report.md").is_file()

    again = run()
    assert again.parent.run_id == outcome.parent.run_id  # the parent run is reopened, not recreated
    assert len(run_log(project)) == len(log)  # nothing ran again
    assert completed_cells(again) == Counter({c: 1 for c in CELLS})
    # more seeds later: only the new cells run
    more = run(seeds=3)
    assert more.counts()["done"] == 6
    assert sorted(e["name"] for e in run_log(project)[len(log):] if e["event"] == "done") == ["demo-linear-s9", "demo-mlp2-s9"]


def test_cells_that_ran_an_older_recipe_are_named_not_silently_current(project):
    import io

    from rich.console import Console

    from study_fakes import BASE_RECIPE, write_project

    first = run()
    assert first.stale == {}
    changed = json.loads(json.dumps(BASE_RECIPE))
    changed["stages"][1]["lr"] = 5e-4  # the base recipe changes after the study ran
    write_project(project, base=changed)
    out = io.StringIO()
    again = run_study("demo", scale="tiny", run_fn=fake_run, console=Console(file=out, width=400))
    assert sorted(again.stale) == sorted(CELLS)
    assert all(why.startswith("recipe hash ") and why.endswith("; stage instruct key changed") for why in again.stale.values())
    assert "4 finished cell(s) ran another recipe than the study file gives now" in out.getvalue()
    assert "The report marks them stale" in out.getvalue()
    assert str(again.prepared.folder) in out.getvalue()
    assert len([e for e in run_log(project) if e["event"] == "done"]) == 4  # nothing reran on its own


def test_a_study_folder_is_not_resumed_into_another_tracking_store(project):
    from ablate.errors import AblateError

    first = run()
    saved = (first.prepared.folder / "mlflow.json").read_text()
    other = f"sqlite:///{project / 'other.db'}"
    with pytest.raises(AblateError) as raised:
        run(tracking_uri=other)
    message = str(raised.value)
    assert f"belongs to the MLflow store {first.parent.tracking_uri} (parent run {first.parent.run_id})" in message
    assert f"Run again with --tracking-uri {first.parent.tracking_uri}, or move the folder aside" in message
    assert (first.prepared.folder / "mlflow.json").read_text() == saved  # the link to the cells' runs is kept
    assert len([e for e in run_log(project) if e["event"] == "done"]) == 4  # and nothing ran


def test_a_half_written_parent_run_file_is_named_not_replaced_by_a_new_parent(project):
    """mlflow.json links the study folder to the parent run its finished cells nest under; read
    as missing when cut short (a kill mid-write), it made a new, empty parent run, and the
    report of the finished cells then found none of their runs."""
    from ablate.run.stage_store import StoredStateError

    first = run()
    path = first.prepared.folder / "mlflow.json"
    path.write_text(path.read_text()[:20])
    with pytest.raises(StoredStateError, match="mlflow.json"):
        run()
    client = first.parent.client()
    parents = client.search_runs([first.parent.experiment_id], filter_string="tags.`ablate.study.role` = 'parent'")
    assert [r.info.run_id for r in parents] == [first.parent.run_id]
    assert len([e for e in run_log(project) if e["event"] == "done"]) == 4  # and nothing ran


def test_failed_cell_is_reported_and_retried_only_when_asked(project, monkeypatch):
    monkeypatch.setenv("FAKE_RUN_FAIL", "mlp2-s8")
    outcome = run()
    counts = outcome.counts()
    assert counts["done"] == 3 and counts["failed"] == 1
    failed = outcome.states["mlp2|seed=8"]
    assert failed.error == "RuntimeError: synthetic failure in demo-mlp2-s8"
    assert "traceback" in failed.trial.user_attrs
    parent = saved_parent(outcome.prepared.folder)
    assert parent.client().get_run(parent.run_id).info.status == "FAILED"
    starts = len(run_log(project))
    again = run()  # not retried without --retry-failed
    assert again.counts()["failed"] == 1 and len(run_log(project)) == starts
    monkeypatch.delenv("FAKE_RUN_FAIL")
    fixed = run(retry_failed=True)
    assert fixed.counts()["done"] == 4
    assert completed_cells(fixed) == Counter({c: 1 for c in CELLS})
    assert fixed.states["mlp2|seed=8"].attempts == 2


def test_spare_trial_without_a_cell_is_pruned(project):
    outcome = run()
    storage = open_storage(None, outcome.prepared.folder)
    study = optuna.load_study(study_name="demo-tiny", storage=storage)
    study.enqueue_trial({"connector": "linear"})  # as if another machine asked while the queue emptied
    cells = {c.id: c for c in outcome.prepared.cells}
    assert queue.claim(study, cells, queue_lock(outcome.prepared.folder)) is None
    spare = study.get_trials(deepcopy=False)[-1]
    assert spare.state == TrialState.PRUNED and spare.user_attrs["spare"] is True
    # a second trial of a finished cell is pruned as a duplicate, never run
    study.enqueue_trial({"connector": "linear", "seed": 7}, user_attrs={"cell": "linear|seed=7"})
    assert queue.claim(study, cells, queue_lock(outcome.prepared.folder)) is None
    dup = study.get_trials(deepcopy=False)[-1]
    assert dup.state == TrialState.PRUNED and dup.user_attrs["duplicate_of"] == 0
    assert completed_cells(outcome) == Counter({c: 1 for c in CELLS})


def test_a_worker_killed_between_asking_for_a_trial_and_recording_itself_leaves_no_stuck_cell(project):
    """`claim` asks Optuna for the next trial (now RUNNING), then records its worker's host and
    pid; a worker killed between the two left a RUNNING trial that no pid or heartbeat could show
    dead, so its cell stayed "running" in every later study and never ran."""
    from ablate.study.runner import prepare_study
    from ablate.study.storage import load_or_create

    prepared = prepare_study("demo", "tiny")
    storage = open_storage(None, prepared.folder)
    study, _ = load_or_create(storage, prepared.optuna_name, "maximize")
    queue.sync(study, prepared.cells, queue_lock(prepared.folder), storage=storage)
    asked = study.ask()  # ... and the worker dies here, before its identity is recorded
    cell = asked.user_attrs["cell"]

    outcome = run()
    assert outcome.counts()["done"] == 4
    assert completed_cells(outcome) == Counter({c: 1 for c in CELLS})
    first = next(t for t in trials(outcome) if t.number == asked.number)
    assert first.state == TrialState.FAIL and first.user_attrs[queue.DIED] == "its worker died while claiming it"
    assert outcome.states[cell].attempts == 2
    assert Counter(e["name"] for e in run_log(project) if e["event"] == "done") == Counter({n: 1 for n in NAMES})


def test_a_cell_whose_run_finished_before_its_worker_died_is_recorded_not_run_again(project, monkeypatch):
    """Killed after a cell's run finished (its MLflow run FINISHED) but before the trial was told:
    the next study took the cell for unfinished and ran it again, a second finished run of it."""
    from ablate.study import worker

    value = worker.objective_value
    stopped = []

    def killed_once(result, section):
        if not stopped:
            stopped.append(result.run_id)
            raise KeyboardInterrupt  # Ctrl-C, SIGTERM or SIGKILL here: the trial is not told
        return value(result, section)

    monkeypatch.setattr(worker, "objective_value", killed_once)
    with pytest.raises(KeyboardInterrupt):
        run()
    assert sum(e["event"] == "done" for e in run_log(project)) == 1

    outcome = run()
    assert completed_cells(outcome) == Counter({c: 1 for c in CELLS})
    assert Counter(e["name"] for e in run_log(project) if e["event"] == "done") == Counter({n: 1 for n in NAMES})
    parent = saved_parent(outcome.prepared.folder)
    statuses = Counter((r.data.tags["ablate.study.cell"], r.info.status) for r in nested_runs(parent))
    assert statuses == Counter({(c, "FINISHED"): 1 for c in CELLS})  # one run per cell, none twice
    recorded = next(t for t in trials(outcome) if t.state == TrialState.COMPLETE and t.user_attrs["run_id"] == stopped[0])
    assert recorded.user_attrs["result_of_trial"] == 0 and recorded.number > 0


def _wait_for(path, timeout=120):
    t0 = time.time()
    while not path.exists():
        if time.time() - t0 > timeout:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.2)


@pytest.mark.slow
def test_two_worker_processes_share_the_journal(project, monkeypatch):
    monkeypatch.setenv("FAKE_RUN_SLEEP", "1.5")
    outcome = run(workers=2, run_fn="study_fakes:fake_run", poll_s=0.2)
    assert outcome.counts()["done"] == 4
    assert completed_cells(outcome) == Counter({c: 1 for c in CELLS})
    done = [e for e in run_log(project) if e["event"] == "done"]
    assert Counter(e["name"] for e in done) == Counter({n: 1 for n in NAMES})
    assert len({e["pid"] for e in done}) == 2 and os.getpid() not in {e["pid"] for e in done}
    hosts = {t.user_attrs["pid"] for t in trials(outcome) if t.state == TrialState.COMPLETE}
    assert hosts == {e["pid"] for e in done}
    logs = sorted((outcome.prepared.folder / "workers").glob("worker-*.log"))
    assert len(logs) == 2 and all("queue empty" in p.read_text() for p in logs)


def _study_with_a_hanging_worker(project, monkeypatch) -> tuple[subprocess.Popen, int]:
    """`run_study` with two workers in its own process, once one worker hangs in mlp2-s7: (that
    process, the hanging worker's pid)."""
    marker = project / "hang.pid"
    monkeypatch.setenv("FAKE_RUN_HANG", "mlp2-s7")
    monkeypatch.setenv("FAKE_RUN_HANG_MARKER", str(marker))
    driver = ("from study_fakes import quiet_console; from ablate.study.runner import run_study; "
              "run_study('demo', scale='tiny', run_fn='study_fakes:fake_run', workers=2, console=quiet_console(), poll_s=0.2)")
    proc = subprocess.Popen([sys.executable, "-c", driver], env=os.environ.copy())
    try:
        _wait_for(marker)
    except BaseException:
        proc.kill()
        raise
    return proc, int(marker.read_text())


@pytest.mark.slow
def test_killing_the_study_process_stops_its_workers_and_marks_their_cell_interrupted(project, monkeypatch):
    import psutil

    proc, hung = _study_with_a_hanging_worker(project, monkeypatch)
    try:
        workers = psutil.Process(proc.pid).children()  # both workers: one hangs in mlp2-s7 (10 minutes)
        assert hung in {w.pid for w in workers}
        proc.kill()  # SIGKILL: the study process gets no chance to stop its workers itself
        proc.wait(timeout=30)
        # every worker stops with its parent; the next study starts once they are gone, as a user's would
        _, alive = psutil.wait_procs(workers, timeout=60)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
    monkeypatch.delenv("FAKE_RUN_HANG")
    outcome = run()  # the next `ablate study` runs the interrupted cell again
    assert completed_cells(outcome) == Counter({c: 1 for c in CELLS})
    stopped = [t for t in trials(outcome) if t.state == TrialState.FAIL]
    # the hanging worker was in mlp2-s7 when the study died, and marked it interrupted as it stopped;
    # the other one may have been claiming its next cell, too early to mark it: then the next
    # study's sync found its trial without a worker. Either way the cell ran again, once.
    died = {t.user_attrs["cell"]: t.user_attrs[queue.DIED] for t in stopped}
    assert died["mlp2|seed=7"] == "interrupted"
    assert all(why in ("interrupted", "its worker died while claiming it") or re.fullmatch(r"worker pid \d+ on .+ is gone", why)
               for why in died.values())
    done = [e["name"] for e in run_log(project) if e["event"] == "done"]
    assert Counter(done) == Counter({n: 1 for n in NAMES})


@pytest.mark.slow
def test_a_stop_signal_while_a_finished_cell_is_recorded_waits_for_the_record(project, monkeypatch):
    """Ctrl-C landing after a cell's run returned, among the writes that record it: the cell is
    recorded done, the study stops after, and the next study does not run the cell again."""
    from ablate.study import worker

    record = worker.log_cell_metrics
    signals = []

    def interrupted_while_recording(result, attrs):
        if not signals:
            signals.append(signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        record(result, attrs)

    monkeypatch.setattr(worker, "log_cell_metrics", interrupted_while_recording)
    with pytest.raises(KeyboardInterrupt):
        run()
    first = Counter(e["name"] for e in run_log(project) if e["event"] == "done")
    assert sum(first.values()) == 1
    outcome = run()
    assert completed_cells(outcome) == Counter({c: 1 for c in CELLS})
    assert Counter(e["name"] for e in run_log(project) if e["event"] == "done") == Counter({n: 1 for n in NAMES})


def test_resume_after_sigkill_mid_trial_loses_and_duplicates_nothing(project, monkeypatch):
    proc, hung = _study_with_a_hanging_worker(project, monkeypatch)
    try:
        os.kill(hung, signal.SIGKILL)  # a worker dies mid-trial, its nested MLflow run left RUNNING
        assert proc.wait(timeout=120) == 0  # the other worker drains the rest of the queue
    finally:
        if proc.poll() is None:
            proc.kill()
    log = run_log(project)
    assert [e["name"] for e in log if e["event"] == "done"].count("demo-mlp2-s7") == 0
    monkeypatch.delenv("FAKE_RUN_HANG")
    outcome = run()  # resume in-process
    assert outcome.counts()["done"] == 4
    assert completed_cells(outcome) == Counter({c: 1 for c in CELLS})
    died = [t for t in trials(outcome) if t.state == TrialState.FAIL]
    assert len(died) == 1 and died[0].user_attrs["cell"] == "mlp2|seed=7"
    assert str(hung) in died[0].user_attrs[queue.DIED]
    done = [e["name"] for e in run_log(project) if e["event"] == "done"]
    assert Counter(done) == Counter({n: 1 for n in NAMES})  # nothing lost, nothing run twice
    parent = saved_parent(outcome.prepared.folder)
    statuses = Counter((r.data.tags["ablate.study.cell"], r.info.status) for r in nested_runs(parent))
    assert statuses[("mlp2|seed=7", "KILLED")] == 1  # the dead worker's run, closed on resume
    assert all(statuses[(c, "FINISHED")] == 1 for c in CELLS)
    report = json.loads((outcome.prepared.folder / "report.json").read_text())
    assert report["runs"] == 4


def test_stale_heartbeat_on_rdb_storage_requeues_the_cell(project, tmp_path):
    """A RUNNING trial on another machine whose heartbeat stopped is failed and its cell queued."""
    from ablate.study.runner import prepare_study
    from ablate.study.storage import load_or_create

    prepared = prepare_study("demo", "tiny")
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    storage = open_storage(url, prepared.folder, heartbeat_interval=1, grace_period=1)
    study, _ = load_or_create(storage, "demo-tiny", "maximize")
    lock = queue_lock(prepared.folder)
    states, _ = queue.sync(study, prepared.cells, lock, storage=storage)
    assert {s.state for s in states.values()} == {"queued"}
    trial, cell = queue.claim(study, {c.id: c for c in prepared.cells}, lock)
    ident = trial_id(storage, study, trial.number)
    storage.set_trial_user_attr(ident, "host", "another-machine")
    storage.record_heartbeat(ident)
    time.sleep(2.5)
    states, reaped = queue.sync(study, prepared.cells, lock, storage=storage)
    assert [t.number for t in reaped] == [trial.number]
    assert states[cell.id].state == "queued" and states[cell.id].attempts == 1
    assert queue.died_reason(study.get_trials(deepcopy=False)[trial.number]) == "heartbeat expired"


def test_rdb_storage_with_heartbeats_runs_the_study(project, tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    outcome = run(storage=url)
    assert outcome.counts()["done"] == 4
    study = optuna.load_study(study_name="demo-tiny", storage=url)
    assert Counter(t.user_attrs["cell"] for t in study.get_trials() if t.state == TrialState.COMPLETE) == \
        Counter({c: 1 for c in CELLS})
    assert not (outcome.prepared.folder / "optuna.journal").exists()


def test_bad_storage_and_unimportable_run_function(project):
    from ablate.errors import AblateError

    with pytest.raises(AblateError, match="expected a database URL"):
        run(storage="redis://localhost")
    with pytest.raises(AblateError, match="worker processes cannot import it"):
        run(workers=2, run_fn=lambda recipe, **kw: None)
    assert not (project / "runs" / "studies" / "demo-tiny" / "mlflow.json").exists()  # refused before starting
