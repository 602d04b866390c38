"""`--launcher slurm`: each cell a SLURM job, submitted through submitit.

The worker (on a login node, or anywhere `sbatch` works) claims a cell and hands this launcher
the command of ONE cell process. The job asks for `nodes` nodes with `gpus_per_node` GPUs and
runs one submitit task per node; each task starts torchrun for its node
(`--nnodes $SLURM_JOB_NUM_NODES --node-rank $SLURM_NODEID --nproc-per-node G`, the first node of
the allocation as the rendezvous host), or the plain command when the job is one process.
The worker waits on the job (its Optuna heartbeat goes on meanwhile) and records the trial
from the job's exit code, as it does for a local torchrun job.

Settings come from the study file's `slurm:` section and the command line (`SlurmOptions`,
merged by `slurm_options_from`). `cluster: local` runs the same jobs with submitit's local
executor (one node), which is how the tests run them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal, Mapping, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ablate.errors import AblateError
from ablate.study.launch import stop_with_parent

DEFAULT_TIME = "24:00:00"
RDZV_PORT_BASE = 29500
# The worker's environment travels to the job, except what describes the worker's own machine
# or allocation: the node's SLURM and device variables must win there.
NODE_ONLY_PREFIXES = ("SLURM_", "SLURMD_", "SUBMITIT_", "PMI_", "PMIX_", "OMPI_")
NODE_ONLY_VARS = {"CUDA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL",
                  "HOSTNAME", "TMPDIR", "LOCAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                  "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"}
# Ends of a SLURM job that say nothing against the cell: it runs again (as a negative exit code
# does for a local job). A TIMEOUT would only time out again: it fails the cell, with 124.
REQUEUE_STATES = {"CANCELLED", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "REQUEUED", "INTERRUPTED"}
TIMEOUT_CODE = 124


class CellJob(Protocol):  # the contract of ablate.study.launch (copied here until both are on one branch)
    def wait(self, timeout: float | None = None) -> int | None: ...
    def kill(self) -> None: ...
    def describe(self) -> str: ...


class SlurmOptions(BaseModel):
    """What each cell's SLURM job asks for (the study file's `slurm:` section, then the CLI)."""

    model_config = ConfigDict(extra="forbid")

    partition: str | None = Field(None, description="sbatch --partition (default: the cluster's)")
    nodes: int = Field(1, ge=1, description="nodes per cell job")
    gpus_per_node: int = Field(0, ge=0, description="GPUs per node (sbatch --gpus-per-node)")
    nproc_per_node: int | None = Field(None, ge=1, description="processes per node (default: gpus_per_node, or 1)")
    time_limit: str = Field(DEFAULT_TIME, description="wall-clock limit per cell: minutes, HH:MM:SS or D-HH:MM:SS")
    cpus_per_task: int | None = Field(None, ge=1, description="CPUs per node's task (sbatch --cpus-per-task)")
    mem_gb: float | None = Field(None, gt=0, description="memory per node in GB (sbatch --mem)")
    account: str | None = Field(None, description="sbatch --account")
    qos: str | None = Field(None, description="sbatch --qos")
    constraint: str | None = Field(None, description="sbatch --constraint, e.g. a100")
    setup: list[str] = Field([], description="shell lines run before the job, e.g. 'module load cuda'")
    additional: dict[str, bool | int | str] = Field(
        {}, description="more sbatch options: name -> value (true: a bare flag), e.g. {exclusive: true, gres: 'gpu:8'}")
    folder: str | None = Field(None, description="submitit's folder on the shared filesystem (default: beside the cell log)")
    cluster: Literal["slurm", "local"] = Field("slurm", description="local: submitit's local executor (tests)")

    @field_validator("time_limit", mode="before")
    @classmethod
    def _time_as_text(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("time_limit")
    @classmethod
    def _time_parses(cls, value: str) -> str:
        minutes_of(value)
        return value

    @property
    def timeout_min(self) -> int:
        return minutes_of(self.time_limit)

    @property
    def procs_per_node(self) -> int:
        return self.nproc_per_node or max(1, self.gpus_per_node)


def minutes_of(text: str) -> int:
    """SLURM's time formats (`MM`, `HH:MM:SS`, `D-HH:MM[:SS]`, `MM:SS`) as whole minutes (rounded up)."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise ValueError(f"time limit {text!r}: expected minutes, HH:MM:SS or D-HH:MM:SS")
    days, a, b, c = match.groups()
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = int(days) * 86400 + int(a) * 3600 + int(b or 0) * 60 + int(c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = int(a) * 3600 + int(b) * 60 + int(c)
    elif b is not None:  # MM:SS
        seconds = int(a) * 60 + int(b)
    else:  # MM
        seconds = int(a) * 60
    if seconds <= 0:
        raise ValueError(f"time limit {text!r}: must be more than 0")
    return -(-seconds // 60)


def slurm_options_from(study_section: SlurmOptions | Mapping[str, Any] | None,
                       cli_values: Mapping[str, Any] | None = None) -> SlurmOptions:
    """The study file's `slurm:` settings, with the command line's (those not None) on top."""
    base = study_section.model_dump(exclude_unset=True) if isinstance(study_section, SlurmOptions) else dict(study_section or {})
    merged = {**base, **{k: v for k, v in (cli_values or {}).items() if v is not None}}
    try:
        return SlurmOptions.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'slurm'}: {e['msg']}" for e in exc.errors())
        raise AblateError(f"SLURM settings: {problems}") from None


def _launch_settings(options: Any) -> SlurmOptions:
    """SlurmOptions from `ablate.study.launch.LaunchOptions`: its `slurm` dict (the study file's
    section merged with the SLURM flags by `slurm_options_from`), then --nproc-per-node and
    --nnodes > 1, which are command-line values too and so win over the study file."""
    if isinstance(options, SlurmOptions):
        return options
    settings = dict(getattr(options, "slurm", None) or {})
    if getattr(options, "nproc_per_node", None):
        settings["nproc_per_node"] = options.nproc_per_node
    if getattr(options, "nnodes", 1) > 1:
        settings["nodes"] = options.nnodes
    return slurm_options_from(settings)


class SlurmLauncher:
    """The `Launcher` of ablate.study.launch for SLURM: `launch()` submits one job per cell."""

    def __init__(self, options: Any = None):
        self.options = _launch_settings(options if options is not None else SlurmOptions())
        if self.options.cluster == "local" and self.options.nodes > 1:
            raise AblateError(f"SLURM settings: nodes {self.options.nodes} with cluster: local (submitit's local "
                              f"executor runs one node)")

    def executor_parameters(self, name: str) -> dict[str, Any]:
        """submitit `update_parameters` keywords: generic ones, and `slurm_`-prefixed ones the
        local executor ignores. One task per node: each task starts its node's torchrun."""
        o = self.options
        params: dict[str, Any] = {"name": name, "timeout_min": o.timeout_min, "nodes": o.nodes, "tasks_per_node": 1,
                                  "stderr_to_stdout": True}
        if o.gpus_per_node:
            params["gpus_per_node"] = o.gpus_per_node
        if o.cpus_per_task:
            params["cpus_per_task"] = o.cpus_per_task
        if o.mem_gb:
            params["mem_gb"] = o.mem_gb
        named = {"partition": o.partition, "account": o.account, "qos": o.qos, "constraint": o.constraint}
        params.update({f"slurm_{k}": v for k, v in named.items() if v is not None})
        if o.setup:
            params["slurm_setup"] = list(o.setup)
        if o.additional:
            params["slurm_additional_parameters"] = dict(o.additional)
        return params

    def executor(self, folder: Path, name: str):
        import submitit

        try:
            executor = submitit.AutoExecutor(folder=folder, cluster=self.options.cluster)
        except RuntimeError as exc:  # SlurmExecutor without srun on PATH
            raise AblateError(f"--launcher slurm: no SLURM on this machine ({exc}); run `ablate study` where sbatch "
                              f"and srun work (a login node), or use --launcher torchrun") from None
        executor.update_parameters(**self.executor_parameters(name))
        return executor

    def sbatch_script(self, name: str, folder: Path) -> str:
        """The sbatch file a cell's job would be submitted with (needs srun on PATH, as submitting does).
        submitit has no public call for it: this is the text its SlurmExecutor writes."""
        inner = self.executor(folder, name)._executor
        return inner._make_submission_file_text(inner._submitit_command_str, uid="preview")

    def launch(self, argv: list[str], *, env: dict[str, str], log_path: Path, name: str) -> "SubmititCellJob":
        folder = Path(self.options.folder) if self.options.folder else Path(log_path).parent / "slurm"
        executor = self.executor(folder, name)
        try:
            job = executor.submit(run_on_node, list(argv), dict(env), str(log_path), self.options.procs_per_node)
        except Exception as exc:  # noqa: BLE001 - sbatch's refusals (partition, account, limits) in many types
            raise AblateError(f"SLURM refused the job for {name}: {type(exc).__name__}: {exc}") from None
        return SubmititCellJob(job, name, Path(log_path), self.options)


class SubmititCellJob:
    """A cell's submitit job, as the `CellJob` the worker waits on."""

    def __init__(self, job, name: str, log_path: Path, options: SlurmOptions, poll_s: float = 1.0):
        self.job, self.name, self.log_path, self.options, self.poll_s = job, name, log_path, options, poll_s

    @property
    def job_id(self) -> str:
        return str(self.job.job_id)

    def wait(self, timeout: float | None = None) -> int | None:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.job.done():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            time.sleep(self.poll_s if left is None else min(self.poll_s, left))
        return self._exit_code()

    def _exit_code(self) -> int:
        try:
            codes = self.job.results()
        except Exception:  # noqa: BLE001 - the job ended without a result: how SLURM ended it says why
            state = self.state()
            if state == "TIMEOUT":
                return TIMEOUT_CODE
            return -signal.SIGTERM if state in REQUEUE_STATES else 1
        failed = [int(c) for c in codes if c]
        return failed[0] if failed else 0

    def state(self) -> str:
        return str(self.job.state).split()[0].upper()  # "CANCELLED by 1234" -> CANCELLED

    def kill(self) -> None:
        """scancel, and return once the job has ended. submitit's local executor cancels with
        SIGINT, which a process started with SIGINT ignored (`nohup`, a background job of a
        script) ignores too; SIGTERM, which its job process forwards to the tasks as scancel's
        does on SLURM, follows."""
        self.job.cancel(check=False)
        if self.options.cluster == "local" and self.wait(timeout=5) is None:
            try:
                os.kill(int(self.job_id), signal.SIGTERM)  # a local job's id is its process id
            except (ValueError, ProcessLookupError):
                pass
        self.wait(timeout=120)

    def describe(self) -> str:
        o = self.options
        kind = "SLURM job" if o.cluster == "slurm" else "submitit local job"
        where = f"{o.nodes} node(s) x {o.procs_per_node} process(es)" + (f" on {o.partition}" if o.partition else "")
        return (f"{self.name}: {kind} {self.job_id} ({self.state()}), {where}; log {self.log_path}; "
                f"submitit log {self.job.paths.stdout}")


# --- on the allocation ----------------------------------------------------------------------


def node_command(argv: list[str], nproc_per_node: int, nnodes: int, node_rank: int, master_addr: str,
                 master_port: int) -> list[str]:
    """What one node of the job runs: the cell command itself for a one-process job, else
    torchrun with this node's rank and the first node as the rendezvous host."""
    if nnodes == 1 and nproc_per_node == 1:
        return list(argv)
    if len(argv) < 2:
        raise AblateError(f"cell command {argv}: expected [python, -m, module, ...] or [python, script, ...]")
    opts = [f"--nproc-per-node={nproc_per_node}"]
    if nnodes == 1:
        opts.append("--standalone")
    else:
        opts += [f"--nnodes={nnodes}", f"--node-rank={node_rank}", f"--master-addr={master_addr}",
                 f"--master-port={master_port}"]
    return [argv[0], "-m", "torch.distributed.run", *opts, *argv[1:]]


def node_environment(worker_env: Mapping[str, str], node_env: Mapping[str, str]) -> dict[str, str]:
    """The worker's environment, except the variables that describe a machine or an allocation:
    those come from the node."""
    def node_only(key: str) -> bool:
        return key in NODE_ONLY_VARS or key.startswith(NODE_ONLY_PREFIXES)

    return {**{k: v for k, v in worker_env.items() if not node_only(k)},
            **{k: v for k, v in node_env.items() if node_only(k)}}


def rendezvous_port(job_id: str) -> int:
    """The same port on every node of one job, and another for the next job on the same nodes."""
    digits = re.sub(r"\D", "", job_id)
    return RDZV_PORT_BASE + (int(digits) % 10000 if digits else 0)


def run_on_node(argv: list[str], env: dict[str, str], log_path: str, nproc_per_node: int) -> int:
    """The function each submitit task (one per node) runs; its node's exit code."""
    import submitit

    job_env = submitit.JobEnvironment()
    command = node_command(argv, nproc_per_node, job_env.num_nodes, job_env.node, job_env.hostnames[0],
                           rendezvous_port(job_env.job_id))
    # the first node's output goes to the cell log the worker reads; the others' to submitit's logs
    out = open(log_path, "ab") if job_env.node == 0 else None
    try:
        proc = subprocess.Popen(command, env=node_environment(env, os.environ), stdout=out or sys.stdout,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=stop_with_parent)

        def stop(signum, _frame):  # scancel / the local executor's SIGINT: end every rank
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        return proc.wait()
    finally:
        if out is not None:
            out.close()

