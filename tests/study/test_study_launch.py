"""One cell = one launched job: `ablate study --nproc-per-node N` runs each cell as a torchrun
(or deepspeed) job, the worker records the trial from the job's exit, and killed jobs run again.

The slow tests run a real one-cell study (tests/study/launch_project.py) as a 2-process gloo
job on CPU; the others check the launchers, the error paths and the clean-up without training.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import launch_project
from shared_home import session_home
from ablate.cli import main
from ablate.errors import AblateError
from ablate.study import queue
from ablate.study.launch import (
    DeepSpeedLauncher,
    LaunchOptions,
    TorchrunLauncher,
    exit_signal,
    launcher_for,
    split_devices,
)
from ablate.study.parent import nested_runs, saved_parent
from ablate.study.runner import run_study
from ablate.study.storage import open_storage
from study_fakes import fake_run, quiet_console

CELL_ARGV = [sys.executable, "-m", "ablate.study.cell", "spec.json"]


# --- launchers, without training ---------------------------------------------------------------


def test_torchrun_wraps_one_cell_process_in_n_processes():
    assert TorchrunLauncher(2).command(CELL_ARGV, "t-3") == [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--standalone",
        "-m", "ablate.study.cell", "spec.json",
    ]
    assert TorchrunLauncher(8, nnodes=4, rdzv_endpoint="node0:29500").command(CELL_ARGV, "t-3")[3:8] == [
        "--nproc-per-node=8", "--nnodes=4", "--rdzv-backend=c10d", "--rdzv-endpoint=node0:29500", "--rdzv-id=t-3",
    ]


def test_deepspeed_keeps_a_worker_on_its_own_gpus():
    argv = DeepSpeedLauncher(2).command(CELL_ARGV, {"CUDA_VISIBLE_DEVICES": "4,5"})
    assert argv[:5] == [sys.executable, "-m", "deepspeed.launcher.runner", "--include", "localhost:4,5"]
    assert argv[-4:] == ["--no_local_rank", "--module", "ablate.study.cell", "spec.json"]
    assert DeepSpeedLauncher(2).command(CELL_ARGV, {})[3:5] == ["--num_gpus", "2"]


def test_deepspeed_recipes_get_the_deepspeed_launcher_on_one_node():
    assert isinstance(launcher_for(LaunchOptions(nproc_per_node=2), deepspeed=True), DeepSpeedLauncher)
    assert isinstance(launcher_for(LaunchOptions(nproc_per_node=2), deepspeed=False), TorchrunLauncher)
    assert isinstance(launcher_for(LaunchOptions(kind="torchrun", nproc_per_node=2), deepspeed=True), TorchrunLauncher)
    across = LaunchOptions(nproc_per_node=2, nnodes=2, rdzv_endpoint="node0:29500")  # deepspeed would need pdsh
    assert isinstance(launcher_for(across, deepspeed=True), TorchrunLauncher)


def test_slurm_launcher_is_imported_only_when_asked(monkeypatch):
    monkeypatch.setitem(sys.modules, "ablate.study.slurm", None)  # as if it were not installed
    with pytest.raises(AblateError, match="--launcher slurm is not available"):
        launcher_for(LaunchOptions(kind="slurm"))


def test_workers_get_their_own_gpus_and_too_few_is_one_clear_error(monkeypatch, project, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    assert split_devices(2, 2) == [{"CUDA_VISIBLE_DEVICES": "0,1"}, {"CUDA_VISIBLE_DEVICES": "2,3"}]
    assert main(["study", "demo", "--scale", "tiny", "--workers", "3", "--nproc-per-node", "2"]) == 2
    assert "--workers 3 x --nproc-per-node 2 needs 6 GPUs, but 4 are visible" in capsys.readouterr().err
    assert not (project / "runs").exists()  # refused before anything is created
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert split_devices(3, 2) == [{}, {}, {}]  # CPU: nothing to split


def test_bad_launch_options_are_one_message(project, capsys):
    assert main(["study", "demo", "--scale", "tiny", "--nnodes", "2"]) == 2
    assert "--nnodes 2 needs --rdzv-endpoint HOST:PORT" in capsys.readouterr().err
    assert main(["study", "demo", "--scale", "tiny", "--launcher", "local", "--nproc-per-node", "2"]) == 2
    assert "--launcher local runs one process" in capsys.readouterr().err
    assert main(["study", "demo", "--scale", "tiny", "--launcher", "slurm", "--slurm", "partition"]) == 2
    assert "--slurm 'partition': expected KEY=VALUE" in capsys.readouterr().err


def test_the_exit_signal_of_a_rank_is_read_from_torchruns_summary(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("Root Cause (first observed failure):\n[0]:\n  rank      : 1 (local_rank: 1)\n"
                   "  exitcode  : -9 (pid: 4242)\n")
    assert exit_signal(1, log) == signal.SIGKILL
    assert exit_signal(-15, log) == signal.SIGTERM  # the launcher itself
    log.write_text("  exitcode  : 1 (pid: 4242)\n")
    assert exit_signal(1, log) is None
    log.write_text("[launch.py:259:sigkill_handler] ['python', '-u', '-m', 'ablate.study.cell'] exits with return code = -9\n")
    assert exit_signal(247, log) == signal.SIGKILL


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def _wait_until(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_killing_the_launcher_kills_its_ranks(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text("import time\nprint('up', flush=True)\ntime.sleep(600)\n")
    job = TorchrunLauncher(2).launch([sys.executable, str(script)], env=dict(os.environ),
                                     log_path=tmp_path / "job.log", name="sleepers")

    def ranks():
        import psutil

        pids = [p.pid for p in psutil.Process(job.pid).children(recursive=True) if str(script) in _cmdline(p.pid)]
        return pids if len(pids) == 2 else None

    ranks = _wait_until(ranks, what="two ranks")
    job.wait(timeout=0.1)  # what a worker's poll does: the job notes its processes
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait(timeout=30) == -signal.SIGKILL
    _wait_until(lambda: not any(queue.process_alive(p) for p in ranks), timeout=10, what="the ranks to go")
    assert "sleepers" in job.describe() and str(tmp_path / "job.log") in job.describe()


def test_a_dead_workers_job_is_killed_when_its_cell_is_reaped():
    import psutil

    launcher = subprocess.Popen(["sleep", "600"], start_new_session=True)
    rank = subprocess.Popen(["sleep", "600"], start_new_session=True)  # torchrun's ranks have sessions of their own
    dead = subprocess.Popen(["true"])
    dead.wait()
    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    procs = [[p.pid, psutil.Process(p.pid).create_time()] for p in (launcher, rank)]
    for key, value in {"cell": "c", "host": queue.worker_identity()["host"], "pid": dead.pid,
                       queue.JOB: {"processes": procs}}.items():
        trial.set_user_attr(key, value)
    assert [t.number for t in queue.reap_dead(study, storage)] == [trial.number]
    assert launcher.wait(timeout=10) == rank.wait(timeout=10) == -signal.SIGKILL


def test_a_failing_cell_job_is_failed_with_the_ranks_error_and_its_log(project, monkeypatch):
    """Cells as one-process jobs (`--launcher local`), run function from the test fakes."""
    monkeypatch.setenv("FAKE_RUN_FAIL", "mlp2")
    outcome = run_study("demo", scale="tiny", seeds=1, run_fn=fake_run, console=quiet_console(),
                        launch=LaunchOptions(kind="local"), report=False)
    states = outcome.states
    assert states["linear|seed=7"].state == "done" and states["linear|seed=7"].trial.value > 0
    failed = states["mlp2|seed=7"]
    assert failed.state == "failed"
    assert failed.error.startswith("AblateError: cell job exited with 1: RuntimeError: synthetic failure in demo-mlp2-s7")
    log = Path(failed.error.rsplit("log: ", 1)[1])
    assert log.name == "job.log" and "synthetic failure" in log.read_text()
    runs = nested_runs(saved_parent(outcome.prepared.folder))
    assert Counter(r.info.status for r in runs) == {"FINISHED": 1}  # the fake fails before its run starts


@pytest.mark.slow
def test_two_nodes_run_each_cell_as_one_job_node_0_claims_node_1_follows(project):
    """Two "nodes" (one process each) on this machine: node 1 only joins the jobs node 0 posts."""
    from ablate.study.launch import free_port

    endpoint = f"127.0.0.1:{free_port()}"
    nodes = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-endpoint", endpoint]
    follower = subprocess.Popen([sys.executable, "-m", "ablate.cli", "study", "demo", "--scale", "tiny", "--seeds", "1",
                                 *nodes, "--node-rank", "1"], cwd=project, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    outcome = run_study("demo", scale="tiny", seeds=1, run_fn="launch_project:ranked_fake_run", console=quiet_console(),
                        launch=LaunchOptions(nnodes=2, nproc_per_node=1, rdzv_endpoint=endpoint), report=False)
    out = follower.communicate(timeout=60)[0]
    assert follower.returncode == 0 and "joined 2 cell job(s)" in out, out[-3000:]
    assert outcome.counts()["done"] == 2
    runs = nested_runs(saved_parent(outcome.prepared.folder))
    assert sorted((r.data.tags["ablate.world_size"], r.data.tags["test.rank_sum"]) for r in runs) == [("2", "2")] * 2
    logs = sorted(p.name for p in (outcome.prepared.folder / "cells").glob("*/trial-*/job*.log"))
    assert logs == ["job-node1.log", "job-node1.log", "job.log", "job.log"]


# --- real cells as 2-process gloo jobs ----------------------------------------------------------


def _cell_runs(root: Path) -> list:
    folder = root / "out" / "studies" / "tiny_cell-tiny"
    return nested_runs(saved_parent(folder))


def _losses(root: Path, run) -> list[float]:
    from mlflow import MlflowClient

    history = MlflowClient(f"sqlite:///{root / 'mlflow.db'}").get_metric_history(run.info.run_id, "align/loss")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def _trials(root: Path) -> list:
    folder = root / "out" / "studies" / "tiny_cell-tiny"
    study = optuna.load_study(study_name="tiny_cell-tiny", storage=open_storage(None, folder))
    return study.get_trials(deepcopy=False)


def _kill_one_rank(proc: subprocess.Popen, root: Path) -> int:
    """SIGKILL one rank of the running cell once it is training; returns its pid."""
    def ranks():
        out = []
        for entry in Path("/proc").iterdir():
            try:
                cmd = (entry / "cmdline").read_text().split("\0")
            except OSError:
                continue
            if "ablate.study.cell" in cmd and "torch.distributed.run" not in cmd and str(root) in " ".join(cmd):
                out.append(int(entry.name))
        return sorted(out) if len(out) == 2 else None

    pids = _wait_until(ranks, timeout=120, what="the cell's two ranks")
    logs = list((root / "out" / "studies").glob("*/cells/*/trial-*/job.log"))
    _wait_until(lambda: "plan:" in logs[0].read_text() if logs else None, timeout=180, what="training to start")
    assert proc.poll() is None
    os.kill(pids[-1], signal.SIGKILL)
    return pids[-1]


@pytest.fixture(scope="module")
def two_process_cells(tmp_path_factory, empty_mlflow_db):
    """The same cell, once in-process (1 x batch 4) and once as a 2-process job (2 x batch 2):
    the job's first attempt loses a rank to SIGKILL, the same command run again completes it."""
    import tiny_run

    tiny_run.MLFLOW_TEMPLATE = empty_mlflow_db
    home = session_home(tmp_path_factory)
    one, two = tmp_path_factory.mktemp("one-process"), tmp_path_factory.mktemp("two-processes")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ABLATE_HOME", home)
        reference = run_study(launch_project.write_study(one, batch_size=4), scale="tiny", console=quiet_console(),
                              report=False)
    assert reference.counts()["done"] == 1
    path = launch_project.write_study(two, batch_size=2)
    cmd, env = launch_project.study_cmd(path, "--nproc-per-node", "2"), launch_project.env(ABLATE_HOME=home)
    first = subprocess.Popen(cmd, cwd=two, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = _kill_one_rank(first, two)
    first_out = first.communicate(timeout=120)[0]
    states_after_kill = Counter(t.state for t in _trials(two))
    rerun = subprocess.run(cmd, cwd=two, env=env, capture_output=True, text=True, timeout=600)
    return {"one": one, "two": two, "killed": killed, "first_out": first_out, "states_after_kill": states_after_kill,
            "rerun": rerun}


@pytest.mark.slow
def test_a_two_process_cell_equals_the_same_cell_in_one_process(two_process_cells):
    rerun = two_process_cells["rerun"]
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    [reference] = _cell_runs(two_process_cells["one"])
    [job] = [r for r in _cell_runs(two_process_cells["two"]) if r.info.status == "FINISHED"]
    assert reference.data.tags["ablate.world_size"] == "1" and job.data.tags["ablate.world_size"] == "2"
    ref_losses, job_losses = _losses(two_process_cells["one"], reference), _losses(two_process_cells["two"], job)
    assert len(ref_losses) == len(job_losses) == 3
    assert job_losses == pytest.approx(ref_losses, abs=1e-4)
    assert job.data.metrics["eval/accuracy"] == reference.data.metrics["eval/accuracy"]


@pytest.mark.slow
def test_a_killed_rank_requeues_the_cell_and_the_same_command_completes_it(two_process_cells):
    out = two_process_cells["first_out"]
    assert "cell job exited with -9 (killed)" in out and "queued to run again" in out, out[-3000:]
    assert two_process_cells["states_after_kill"] == {TrialState.FAIL: 1}
    rerun = two_process_cells["rerun"]
    assert rerun.returncode == 0 and "1 cell(s) whose worker died" not in rerun.stdout
    trials = _trials(two_process_cells["two"])
    assert Counter(t.user_attrs["cell"] for t in trials if t.state == TrialState.COMPLETE) == {"d2|seed=42": 1}
    assert "cell job exited with -9 (killed)" in trials[0].user_attrs[queue.DIED]
    runs = _cell_runs(two_process_cells["two"])
    # 0 lost, 0 duplicated: one finished run; the killed attempt's is FAILED (rank 0 saw its peer
    # go) or KILLED (the worker closed it), never FINISHED
    assert sorted(r.info.status for r in runs) in (["FAILED", "FINISHED"], ["FINISHED", "KILLED"])
    assert not queue.process_alive(two_process_cells["killed"])


@pytest.mark.slow
def test_a_deepspeed_zero2_cell_on_two_cpu_processes(tmp_path, empty_mlflow_db):
    import tiny_run

    tiny_run.MLFLOW_TEMPLATE = empty_mlflow_db
    # adamw_torch: the Trainer hands DeepSpeed a torch optimizer, so no fused Adam op is built
    path = launch_project.write_study(tmp_path, batch_size=2,
                                      stage_fields={"deepspeed": "zero2.json", "optimizer": "adamw_torch",
                                                    "save_steps": 2})
    proc = subprocess.run(launch_project.study_cmd(path, "--nproc-per-node", "2"),  # a deepspeed recipe: its launcher
                          cwd=tmp_path, env=launch_project.env(ABLATE_HOME=os.environ["ABLATE_HOME"]),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [run] = _cell_runs(tmp_path)
    assert run.info.status == "FINISHED" and run.data.tags["ablate.world_size"] == "2"
    assert len(_losses(tmp_path, run)) == 3 and "eval/accuracy" in run.data.metrics
    [log] = (tmp_path / "out" / "studies").glob("*/cells/*/trial-0/job.log")
    assert "deepspeed.launcher.launch" in log.read_text()  # the deepspeed launcher started the ranks
    # ZeRO-2 really ran: DeepSpeed's own checkpoint layout in the stage store
    [stage] = [p.parents[2] for p in (tmp_path / "out" / "stages").glob("*/checkpoints/checkpoint-2/global_step2")]
    weights = tiny_run.stage_weights(tmp_path / "out", stage.name)  # rank 0 stored the whole stage
    assert weights and all(k.startswith("connector.") and bool(v.isfinite().all()) for k, v in weights.items())
    assert json.loads((stage / "meta.json").read_text())["run_id"] == run.info.run_id
    [result] = (tmp_path / "out" / "studies").glob("*/cells/*/trial-0/result.json")
    assert json.loads(result.read_text())["run_id"] == run.info.run_id
