"""`--launcher slurm`: cells as submitit jobs, run here with submitit's local executor, and the
sbatch file a 4-node x 8-GPU cell would be submitted with."""

import os
import signal
import sys
import time

import pytest

from ablate.errors import AblateError
from ablate.study.slurm import (
    SlurmLauncher,
    SlurmOptions,
    minutes_of,
    node_command,
    node_environment,
    rendezvous_port,
    slurm_options_from,
)

LOCAL = SlurmOptions(cluster="local", time_limit="5")


def launch(tmp_path, code: str, env=None, options=LOCAL, argv=None):
    log = tmp_path / "cells" / "trial-1.log"
    log.parent.mkdir(exist_ok=True)
    return SlurmLauncher(options).launch(argv or [sys.executable, "-c", code], env={**os.environ, **(env or {})},
                                         log_path=log, name="demo-trial-1"), log


def test_cell_job_that_succeeds_gets_the_workers_environment_but_not_its_devices(tmp_path):
    out = tmp_path / "out.txt"
    code = ("import os, sys; print('cell says hi'); "
            f"open({str(out)!r}, 'w').write(os.environ['CELL_SETTING'] + '|' + os.environ.get('CUDA_VISIBLE_DEVICES', '-'))")
    t0 = time.monotonic()
    job, log = launch(tmp_path, code, env={"CELL_SETTING": "from-the-worker", "CUDA_VISIBLE_DEVICES": "5,6"})
    assert job.wait(timeout=60) == 0
    assert time.monotonic() - t0 < 30
    assert out.read_text() == "from-the-worker|"  # the allocation's devices (none here), not the worker's
    assert "cell says hi" in log.read_text()
    assert (tmp_path / "cells" / "slurm").is_dir()  # submitit's folder beside the cell log
    assert job.state() == "FINISHED"


def test_cell_job_exit_code_and_description(tmp_path):
    job, log = launch(tmp_path, "import sys; print('bad cell'); sys.exit(3)")
    assert job.wait(timeout=60) == 3
    text = job.describe()
    assert text.startswith(f"demo-trial-1: submitit local job {job.job_id} (FINISHED), 1 node(s) x 1 process(es); ")
    assert f"log {log};" in text and "submitit log " in text
    assert "bad cell" in log.read_text()


def assert_kill_ends_the_job_and_its_processes(tmp_path):
    pid_file = tmp_path / "cell.pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    job, _ = launch(tmp_path, code)
    deadline = time.monotonic() + 60
    while not pid_file.exists():
        assert time.monotonic() < deadline, "the cell process did not start"
        assert job.wait(timeout=0.2) is None
    pid = int(pid_file.read_text())
    t0 = time.monotonic()
    job.kill()
    code = job.wait(timeout=90)  # generous: on a loaded 2-core machine the job's teardown is slow
    assert code == -signal.SIGTERM and time.monotonic() - t0 < 60  # a killed job: the cell runs again
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_killed_cell_job_ends_with_its_processes(tmp_path):
    assert_kill_ends_the_job_and_its_processes(tmp_path)


def test_a_study_started_with_sigint_ignored_still_kills_its_cell_jobs(tmp_path):
    # `nohup ablate study ... &` from a script: the local executor's job inherits SIGINT ignored,
    # and submitit cancels local jobs with SIGINT alone (this took 210 s and failed before)
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        assert_kill_ends_the_job_and_its_processes(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow
def test_two_process_cell_job_runs_under_torchrun(tmp_path):
    script = tmp_path / "cell.py"
    script.write_text("import os\n"
                      "open(os.path.join(os.path.dirname(__file__), 'rank-' + os.environ['RANK']), 'w')"
                      ".write(os.environ['WORLD_SIZE'] + ' ' + os.environ['LOCAL_RANK'])\n")
    options = SlurmOptions(cluster="local", nproc_per_node=2)
    job, _ = launch(tmp_path, "", options=options, argv=[sys.executable, str(script)])
    assert job.wait(timeout=120) == 0
    assert sorted(p.read_text() for p in tmp_path.glob("rank-*")) == ["2 0", "2 1"]


def test_sbatch_file_for_four_nodes_of_eight_gpus(tmp_path, monkeypatch):
    # submitit's SlurmExecutor insists on srun being on PATH; rendering the file runs nothing
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    options = slurm_options_from(
        {"partition": "gpu", "time_limit": "2-00:00:00", "account": "vlm", "setup": ["module load cuda/12.4"]},
        {"nodes": 4, "gpus_per_node": 8, "cpus_per_task": 64, "partition": None, "additional": {"exclusive": True, "gres": "gpu:8"}},
    )
    script = SlurmLauncher(options).sbatch_script("clip_layer-trial-7", tmp_path / "slurm")
    lines = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    for expected in ("#SBATCH --nodes=4", "#SBATCH --gpus-per-node=8", "#SBATCH --ntasks-per-node=1",
                     "#SBATCH --partition=gpu", "#SBATCH --time=2880", "#SBATCH --account=vlm",
                     "#SBATCH --cpus-per-task=64", "#SBATCH --job-name=clip_layer-trial-7", "#SBATCH --exclusive",
                     "#SBATCH --gres=gpu:8"):
        assert expected in lines, f"{expected} not in:\n" + "\n".join(lines)
    assert "module load cuda/12.4" in script and "srun" in script
    assert f"#SBATCH --output={tmp_path / 'slurm'}/%j_0_log.out" in lines


def test_each_node_runs_torchrun_with_its_rank_and_the_first_node_as_host():
    argv = ["/venv/bin/python", "-m", "ablate.study.cell", "/shared/cell-7.json"]
    assert node_command(argv, 8, 4, 2, "gpu-node01", 29507) == [
        "/venv/bin/python", "-m", "torch.distributed.run", "--nproc-per-node=8", "--nnodes=4", "--node-rank=2",
        "--master-addr=gpu-node01", "--master-port=29507", "-m", "ablate.study.cell", "/shared/cell-7.json"]
    assert node_command(argv, 8, 1, 0, "gpu-node01", 29507)[3:5] == ["--nproc-per-node=8", "--standalone"]
    assert node_command(argv, 1, 1, 0, "gpu-node01", 29507) == argv  # one process: no torchrun
    assert rendezvous_port("4242") == 29500 + 4242 and rendezvous_port("123_4") == 29500 + 1234
    env = node_environment({"HF_HOME": "/shared/hf", "CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_ID": "1", "RANK": "3"},
                           {"SLURM_NODEID": "2", "CUDA_VISIBLE_DEVICES": "0,1,2,3", "HF_HOME": "/home/me/.cache"})
    assert env == {"HF_HOME": "/shared/hf", "SLURM_NODEID": "2", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}


def test_options_merge_the_study_file_and_the_command_line():
    merged = slurm_options_from({"partition": "gpu", "nodes": 2, "time_limit": 90}, {"nodes": 4, "partition": None})
    assert (merged.partition, merged.nodes, merged.timeout_min, merged.procs_per_node) == ("gpu", 4, 90, 1)
    assert slurm_options_from(None, {"gpus_per_node": 8}).procs_per_node == 8
    assert [minutes_of(t) for t in ("45", "01:30:00", "1-00:00", "00:00:30")] == [45, 90, 1440, 1]
    with pytest.raises(AblateError, match=r"SLURM settings: nodes: Input should be greater than or equal to 1; "
                                          r"time_limit: Value error, time limit '1 day'"):
        slurm_options_from({"nodes": 0, "time_limit": "1 day"})
    with pytest.raises(AblateError, match="SLURM settings: partiton: Extra inputs are not permitted"):
        slurm_options_from({"partiton": "gpu"})
    with pytest.raises(AblateError, match="nodes 2 with cluster: local"):
        SlurmLauncher(SlurmOptions(cluster="local", nodes=2))


def test_launch_options_fill_in_processes_and_nodes():
    from types import SimpleNamespace

    study_and_flags = slurm_options_from({"partition": "gpu", "nodes": 2, "gpus_per_node": 8}, {"time_limit": "60"})
    launch_options = SimpleNamespace(slurm=study_and_flags.model_dump(exclude_unset=True), nproc_per_node=None, nnodes=4)
    options = SlurmLauncher(launch_options).options
    assert (options.partition, options.nodes, options.procs_per_node, options.timeout_min) == ("gpu", 4, 8, 60)
    launch_options = SimpleNamespace(slurm={"gpus_per_node": 8}, nproc_per_node=2, nnodes=1)
    assert (SlurmLauncher(launch_options).options.nodes, SlurmLauncher(launch_options).options.procs_per_node) == (1, 2)


def test_no_slurm_here_is_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no srun, no sbatch
    with pytest.raises(AblateError, match=r"--launcher slurm: no SLURM on this machine .*srun.*use --launcher torchrun"):
        SlurmLauncher(SlurmOptions(partition="gpu")).launch([sys.executable, "-c", "pass"], env={},
                                                            log_path=tmp_path / "c.log", name="x")


def test_study_file_slurm_section(tmp_path):
    import json

    from ablate.study.schema import StudyError, load_study
    from study_fakes import STUDY, write_project

    study = json.loads(json.dumps(STUDY))
    study["slurm"] = {"partition": "gpu", "nodes": 4, "gpus_per_node": 8, "time_limit": "2-00:00:00"}
    loaded = load_study(write_project(tmp_path, study=study))
    options = slurm_options_from(loaded.spec.slurm, {"time_limit": "12:00:00", "partition": None})
    assert (options.partition, options.nodes, options.procs_per_node, options.timeout_min) == ("gpu", 4, 8, 720)
    study["slurm"] = {"partiton": "gpu", "time_limit": "soon"}
    with pytest.raises(StudyError) as err:
        load_study(write_project(tmp_path, study=study))
    text = str(err.value)
    assert "slurm.partiton" in text and "slurm.time_limit" in text and "time limit 'soon'" in text


def test_a_study_runs_its_cells_as_slurm_jobs_through_submitits_local_executor(project, monkeypatch):
    """End to end on this machine: the worker submits each cell with submitit (local executor),
    waits for it, and records the trial; the cell's ranks write the nested MLflow run."""
    from collections import Counter

    from ablate.study.launch import LaunchOptions
    from ablate.study.parent import nested_runs, saved_parent
    from ablate.study.runner import run_study
    from study_fakes import fake_run, quiet_console

    monkeypatch.setenv("ABLATE_COLLECTIVE_TIMEOUT_MIN", "7")
    outcome = run_study("demo", scale="tiny", seeds=1, run_fn=fake_run, console=quiet_console(), report=False,
                        launch=LaunchOptions(kind="slurm", slurm={"cluster": "local", "time_limit": 5}))
    assert outcome.counts()["done"] == 2
    runs = nested_runs(saved_parent(outcome.prepared.folder))
    assert Counter(r.info.status for r in runs) == {"FINISHED": 2}
    assert {r.data.tags["ablate.study.cell"] for r in runs} == {"linear|seed=7", "mlp2|seed=7"}
    assert list(outcome.prepared.folder.rglob("*_log.out"))  # submitit's own job logs


def test_the_readme_slurm_flags_reach_the_launcher(project, monkeypatch):
    """`--gpus-per-node`, `--partition`, `--time-limit` (and `--slurm KEY=VALUE`) become the
    SLURM settings; `--collective-timeout` is what the cells' ranks inherit."""
    from ablate.cli import main
    from ablate.ranks import TIMEOUT_ENV
    from ablate.study import runner

    seen = {}
    monkeypatch.setattr(runner, "run_study", lambda name, **kw: seen.update(name=name, **kw))
    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert main(["study", "demo", "--launcher", "slurm", "--nnodes", "4", "--gpus-per-node", "8", "--partition", "gpu",
                 "--time-limit", "2-00:00:00", "--slurm", "account=vlm", "--collective-timeout", "240"]) == 0
    launch = seen["launch"]
    assert (launch.kind, launch.nnodes) == ("slurm", 4)
    assert launch.slurm == {"account": "vlm", "gpus_per_node": 8, "partition": "gpu", "time_limit": "2-00:00:00"}
    options = SlurmLauncher(launch).options
    assert (options.nodes, options.procs_per_node, options.partition, options.timeout_min) == (4, 8, "gpu", 2880)
    assert os.environ[TIMEOUT_ENV] == "240.0"
