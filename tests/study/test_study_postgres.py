"""Studies on a real PostgreSQL server: two "machines" drain one study, a machine killed mid-cell
loses and duplicates nothing, and a bad --storage URL is one clear message.

A machine here is a process with its own working folder (its own copy of the project) and its
own host name (a UTS namespace, so the queue treats it as another computer: only its heartbeat
tells whether it lives). The machines share only the PostgreSQL server (Optuna's storage and
MLflow's store) and the output folder the recipes name.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ablate.cli import main
from ablate.study import queue
from ablate.study.parent import nested_runs, saved_parent
from ablate.study.runner import run_study
from postgres_server import PostgresMissing, free_port, start_server
from study_fakes import BASE_RECIPE, fake_run, quiet_console, run_log, write_project

CELLS = {f"{arm}|seed={seed}" for arm in ("linear", "mlp2") for seed in (7, 8)}
NAMES = {f"demo-{arm}-s{seed}" for arm in ("linear", "mlp2") for seed in (7, 8)}
MLFLOW_TEMPLATE = "mlflow_template"
GRACE_S = 3


@pytest.fixture(scope="session")
def postgres(request):
    """One PostgreSQL server for the session, with an MLflow database template (creating MLflow's
    tables takes seconds; CREATE DATABASE ... TEMPLATE copies them at once)."""
    t0 = time.perf_counter()
    try:
        server = start_server()
    except PostgresMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        _make_mlflow_template(server)
        say(request, f"{server.version} started on 127.0.0.1:{server.port} in {time.perf_counter() - t0:.1f} s "
                     f"(data {server.data_dir})")
        yield server
    finally:
        server.stop()
        say(request, f"PostgreSQL on 127.0.0.1:{server.port} stopped")


def say(request, line: str) -> None:
    """A line in pytest's own output, outside output capture (so the CI log shows the server)."""
    plugins = request.config.pluginmanager
    with plugins.getplugin("capturemanager").global_and_fixture_disabled():
        plugins.getplugin("terminalreporter").write_line(line)


def _make_mlflow_template(server) -> None:
    import mlflow

    mlflow.MlflowClient(server.create_database(MLFLOW_TEMPLATE)).search_experiments()
    with server.connect() as conn:  # a template must have no open connections; ours are done with it
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (MLFLOW_TEMPLATE,))


@pytest.fixture
def cluster(project, postgres, monkeypatch, request):
    """Two machines' working folders, a shared output folder, and fresh Optuna and MLflow databases."""
    shared = project / "shared"
    base = {**json.loads(json.dumps(BASE_RECIPE)), "output_dir": str(shared / "runs")}
    for stage in base["stages"]:  # the fake run hashes each stage's samples: keep that quick
        stage["data"]["sources"][0]["source"]["limit"] = 16
    machines = {}
    for name in ("machine-a", "machine-b"):
        machines[name] = project / name
        write_project(machines[name], base=base)
    tag = request.node.name.replace("test_", "")[:40]
    optuna_url = postgres.create_database(f"optuna_{tag}")
    mlflow_url = postgres.create_database(f"mlflow_{tag}", template=MLFLOW_TEMPLATE)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    monkeypatch.setenv("FAKE_RUN_LOG", str(shared / "runs.log"))
    monkeypatch.setenv("ABLATE_MLFLOW_ARTIFACTS", str(shared / "mlartifacts"))  # not ./mlruns of one machine
    monkeypatch.setenv("ABLATE_STUDY_HEARTBEAT_S", "1")
    monkeypatch.setenv("ABLATE_STUDY_GRACE_S", str(GRACE_S))
    shared.mkdir()
    return {"shared": shared, "machines": machines, "optuna": optuna_url, "mlflow": mlflow_url}


def start_machine(host: str, cwd: Path, storage: str, **env: str) -> subprocess.Popen:
    """`run_study` in a process of its own, in `cwd`, under host name `host`."""
    if shutil.which("unshare") is None:
        pytest.fail("the two-machine tests need `unshare` (util-linux) to give a process its own host name")
    ns = ["unshare", "--uts"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--uts"]
    driver = ("import sys; from study_fakes import quiet_console; from ablate.study.runner import run_study; "
              f"run_study('demo', scale='tiny', run_fn='study_fakes:fake_run', storage={storage!r}, "
              "console=quiet_console(), report=False)")
    script = 'hostname "$0" && exec "$@"'
    with (cwd / "machine.log").open("w") as log:  # the child keeps its own handle
        proc = subprocess.Popen([*ns, "sh", "-c", script, host, sys.executable, "-c", driver], cwd=cwd,
                                env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    proc.log_path = cwd / "machine.log"
    return proc


def wait_for(predicate, what: str, proc: subprocess.Popen | None = None, timeout: float = 90) -> None:
    t0 = time.time()
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the machine exited with {proc.returncode} before {what}:\n"
                                 + proc.log_path.read_text()[-3000:])
        if time.time() - t0 > timeout:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def run_here(cluster, monkeypatch, **kwargs):
    """This test process as machine B: its own working folder, the same databases."""
    monkeypatch.chdir(cluster["machines"]["machine-b"])
    return run_study("demo", scale="tiny", run_fn=fake_run, storage=cluster["optuna"], console=quiet_console(),
                     report=False, **kwargs)


def optuna_trials(url: str):
    return optuna.load_study(study_name="demo-tiny", storage=url).get_trials(deepcopy=False)


def finished_per_cell(url: str) -> Counter:
    return Counter(t.user_attrs["cell"] for t in optuna_trials(url) if t.state == TrialState.COMPLETE)


def assert_each_cell_once(cluster, outcome) -> None:
    """Optuna: one COMPLETE trial per cell; the run function: one finished run per cell; MLflow: one
    FINISHED nested run per cell, all under the one parent run both machines share."""
    assert finished_per_cell(cluster["optuna"]) == Counter({c: 1 for c in CELLS})
    done = [e["name"] for e in run_log(cluster["shared"]) if e["event"] == "done"]
    assert Counter(done) == Counter({n: 1 for n in NAMES})
    parent = saved_parent(outcome.prepared.folder)
    assert parent.run_id == outcome.parent.run_id and parent.tracking_uri == cluster["mlflow"]
    finished = Counter(r.data.tags["ablate.study.cell"] for r in nested_runs(parent, status="FINISHED"))
    assert finished == Counter({c: 1 for c in CELLS})
    assert parent.client().get_run(parent.run_id).info.status == "FINISHED"


@pytest.mark.slow
def test_two_machines_drain_one_study_on_postgresql(cluster, monkeypatch):
    machine_a = cluster["machines"]["machine-a"]
    # machine A names the database without a driver: postgresql:// picks psycopg 3
    url_a = cluster["optuna"].replace("postgresql+psycopg://", "postgresql://")
    # A's cells take longer, so B (joining once A is busy) surely gets some of them
    proc = start_machine("machine-a", machine_a, url_a, FAKE_RUN_SLEEP="2.5")
    try:
        # B joins once A has opened the study's parent run and started a cell
        wait_for(lambda: any(e["event"] == "start" for e in run_log(cluster["shared"])), "machine A's first cell", proc)
        monkeypatch.setenv("FAKE_RUN_SLEEP", "0.5")
        outcome = run_here(cluster, monkeypatch)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert_each_cell_once(cluster, outcome)  # B's outcome may still show A's last cell running
    hosts = Counter(t.user_attrs["host"] for t in optuna_trials(cluster["optuna"]) if t.state == TrialState.COMPLETE)
    assert set(hosts) == {"machine-a", os.uname().nodename} and sum(hosts.values()) == 4
    # both wrote runs and artifacts to the shared folder, nothing to their own working folders
    assert (cluster["shared"] / "runs" / "studies" / "demo-tiny" / "mlflow.json").is_file()
    assert len(list((cluster["shared"] / "mlartifacts").glob("*/*/artifacts/predictions.jsonl"))) == 4
    assert [sorted(p.name for p in m.iterdir()) for m in cluster["machines"].values()] == \
        [["machine.log", "recipes", "studies"], ["recipes", "studies"]]


@pytest.mark.slow
def test_machine_killed_mid_cell_loses_and_duplicates_nothing(cluster, monkeypatch, capsys):
    marker = cluster["shared"] / "hang.pid"
    proc = start_machine("machine-a", cluster["machines"]["machine-a"], cluster["optuna"],
                         FAKE_RUN_HANG="demo-", FAKE_RUN_HANG_MARKER=str(marker))
    try:
        wait_for(marker.exists, "machine A to start its cell", proc)
        os.kill(int(marker.read_text()), signal.SIGKILL)  # mid-cell: its trial RUNNING, its MLflow run open
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = time.time()
    (dead,) = [t for t in optuna_trials(cluster["optuna"]) if t.state == TrialState.RUNNING]
    assert dead.user_attrs["host"] == "machine-a"

    first = run_here(cluster, monkeypatch)  # B drains the rest; A's cell may still have a recent heartbeat
    # On a loaded machine B's drain can outlast the grace period: then B already failed the silent
    # trial and ran its cell. Either way, what follows must hold.
    assert first.counts()["done"] in (3, 4)
    if first.counts()["done"] == 3:
        assert first.states[dead.user_attrs["cell"]].state in ("running", "pending")
    time.sleep(max(0.0, killed_at + GRACE_S + 1 - time.time()))  # A's heartbeat is now older than the grace period
    outcome = run_here(cluster, monkeypatch)  # a rerun fails the silent trial and runs its cell
    assert outcome.counts()["done"] == 4
    assert_each_cell_once(cluster, outcome)
    failed = [t for t in optuna_trials(cluster["optuna"]) if t.state == TrialState.FAIL]
    assert [(t.number, queue.died_reason(t)) for t in failed] == [(dead.number, "heartbeat expired")]
    statuses = Counter(r.info.status for r in nested_runs(outcome.parent) if r.data.tags["ablate.study.cell"] == dead.user_attrs["cell"])
    assert statuses == Counter({"KILLED": 1, "FINISHED": 1})  # the dead machine's run closed, not counted

    # the command line on the finished study: nothing runs again
    starts = len(run_log(cluster["shared"]))
    capsys.readouterr()
    assert main(["study", "demo", "--scale", "tiny", "--storage", cluster["optuna"]]) == 0
    assert len(run_log(cluster["shared"])) == starts and finished_per_cell(cluster["optuna"]) == Counter({c: 1 for c in CELLS})
    assert "4 done" in capsys.readouterr().out


def test_unreachable_or_refused_postgresql_is_one_clear_message(project, postgres, capsys):
    wrong_password = postgres.dsn("postgres").replace(postgres.password, "not-the-password")
    nobody_listens = postgres.dsn("postgres").replace(f":{postgres.port}/", f":{free_port()}/")  # bound and released
    for url, reason in ((wrong_password, 'password authentication failed for user "ablate"'),
                        (nobody_listens, "Connection refused")):
        assert main(["study", "demo", "--scale", "tiny", "--storage", url]) == 2
        err = " ".join(capsys.readouterr().err.split())
        assert "cannot open the Optuna storage: OperationalError" in err and reason in err
        assert "Traceback" not in err and "not-the-password" not in err and postgres.password not in err
        assert f"--storage 'postgresql+psycopg://ablate:***@127.0.0.1:" in err
    assert not (project / "runs" / "studies" / "demo-tiny" / "mlflow.json").exists()


def test_database_urls_pick_psycopg_and_hide_passwords(monkeypatch):
    from importlib.util import find_spec

    from ablate.errors import AblateError
    from ablate.study.storage import database_url, masked, open_storage

    assert find_spec("psycopg2") is None  # the `cluster` extra installs psycopg 3 only
    assert database_url("postgresql://u:p%40ss@db:5432/s") == "postgresql+psycopg://u:p%40ss@db:5432/s"
    assert database_url("postgres://u:p@db/s") == "postgresql+psycopg://u:p@db/s"  # as hosting services print it
    assert database_url("postgresql+psycopg2://u:p@db/s") == "postgresql+psycopg2://u:p@db/s"  # asked for: kept
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert masked("postgresql+psycopg://u:secret@db/s") == "postgresql+psycopg://u:***@db/s"
    with pytest.raises(AblateError, match=r"--storage 'redis://u:\*\*\*@db': expected a database URL"):
        database_url("redis://u:secret@db")
    with pytest.raises(AblateError, match=r"--storage 'postgresql://u:\*\*\*@db:port/s': not a database URL"):
        database_url("postgresql://u:secret@db:port/s")
    monkeypatch.setenv("ABLATE_STUDY_GRACE_S", "soon")
    with pytest.raises(AblateError, match=r"ABLATE_STUDY_GRACE_S='soon': expected a whole number of seconds"):
        open_storage("sqlite:///:memory:", Path("."))
