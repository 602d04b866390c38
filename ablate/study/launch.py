"""How a study worker runs one cell: as a job of N processes, and how it waits for it.

The worker builds the command for ONE cell process (`python -m ablate.study.cell SPEC.json`);
a `Launcher` turns it into a job of `nproc_per_node` x `nnodes` processes and returns a
`CellJob` to wait on. The job's processes never touch the Optuna queue: the worker claimed the
cell and records the trial from the job's exit code and the result file rank 0 writes.

    launcher = launcher_for(LaunchOptions(kind="torchrun", nproc_per_node=2))
    job = launcher.launch([sys.executable, "-m", "ablate.study.cell", "spec.json"],
                          env=dict(os.environ), log_path=Path("cell.log"), name="trial-3")
    while (code := job.wait(timeout=1.0)) is None:
        ...  # keep the Optuna heartbeat alive

Kinds (`--launcher`):
    local      the cell as one plain subprocess (nproc_per_node must be 1)
    torchrun   `python -m torch.distributed.run` (single node: --standalone; many: c10d rendezvous)
    deepspeed  the `deepspeed` launcher (`python -m deepspeed.launcher.runner`), for recipes with a
               `deepspeed:` stage. It runs on CPU-only machines too (DeepSpeed's CPU accelerator:
               gloo). Across nodes it needs a hostfile and pdsh, so there the job runs under
               torchrun, which DeepSpeed (through transformers' Trainer) supports as well.
    slurm      `ablate.study.slurm.SlurmLauncher(options)` (submitit), imported only when asked;
               `options.slurm` holds its settings (`--slurm KEY=VALUE`, e.g. partition=gpu)
Without a kind, a recipe with DeepSpeed gets `deepspeed`, any other `torchrun`.

Every job runs in its own session (process group): killing the job kills all its ranks, and
the launcher process is told to stop (SIGTERM, which torchrun and deepspeed pass on to their
ranks) if the worker that started it dies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ablate.errors import AblateError

KINDS = ("local", "torchrun", "deepspeed", "slurm")


@runtime_checkable
class CellJob(Protocol):
    """One launched cell job (all its processes)."""

    def wait(self, timeout: float | None = None) -> int | None:
        """The job's exit code (negative: killed by that signal), or None if still running after `timeout`."""

    def kill(self) -> None:
        """Stop every process of the job (and return once they are gone)."""

    def describe(self) -> str:
        """One line for messages: what runs where, and its log."""

    # A job may also offer `processes() -> [[pid, start time], ...]` (its local processes): the
    # worker records them in the trial, and the next `ablate study` kills them if it died.


@runtime_checkable
class Launcher(Protocol):
    """Turns the command of one cell process into a job of N processes."""

    def launch(self, argv: list[str], *, env: dict[str, str], log_path: Path, name: str) -> CellJob:
        """Start the job; `argv` is `[python, "-m", module, *args]`, `log_path` gets its output."""


@dataclass(frozen=True)
class LaunchOptions:
    """What `ablate study` was asked for; JSON-friendly (it travels in the worker spec)."""

    kind: str | None = None  # one of KINDS; None: the recipe decides (see module docstring)
    nproc_per_node: int | None = None  # None and no kind: the cell runs inside the worker process
    nnodes: int = 1
    rdzv_endpoint: str | None = None  # HOST:PORT of the c10d rendezvous, for nnodes > 1
    slurm: dict[str, Any] = field(default_factory=dict)  # SlurmLauncher's settings (partition, time, ...)

    def __post_init__(self) -> None:
        if self.kind is not None and self.kind not in KINDS:
            raise AblateError(f"--launcher {self.kind!r}: expected one of {', '.join(KINDS)}")
        if self.nproc_per_node is not None and self.nproc_per_node < 1:
            raise AblateError(f"--nproc-per-node must be >= 1, got {self.nproc_per_node}")
        if self.nnodes < 1:
            raise AblateError(f"--nnodes must be >= 1, got {self.nnodes}")
        if self.nnodes > 1 and not self.rdzv_endpoint and self.kind != "slurm":
            raise AblateError(f"--nnodes {self.nnodes} needs --rdzv-endpoint HOST:PORT (a port on the first node)")
        if self.kind == "local" and self.procs > 1:
            raise AblateError("--launcher local runs one process; use torchrun for --nproc-per-node > 1 or --nnodes > 1")

    @property
    def procs(self) -> int:
        return (self.nproc_per_node or 1) * self.nnodes

    @property
    def as_job(self) -> bool:
        """Whether cells run as launched jobs (else in the worker process, as before)."""
        return self.kind is not None or self.nproc_per_node is not None or self.nnodes > 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def launcher_for(options: LaunchOptions, *, deepspeed: bool = False) -> Launcher:
    """The launcher for `options`; `deepspeed`: the cell's recipe has a stage with `deepspeed:` set."""
    kind = options.kind or ("deepspeed" if deepspeed else "torchrun")
    nproc = options.nproc_per_node or 1
    if kind == "local":
        return LocalLauncher()
    if kind == "slurm":
        try:
            from ablate.study.slurm import SlurmLauncher
        except ImportError as exc:
            raise AblateError(f"--launcher slurm is not available here ({exc}); install ablate[cluster]") from None
        return SlurmLauncher(options)
    if kind == "deepspeed" and options.nnodes == 1:
        return DeepSpeedLauncher(nproc)
    # torchrun, or deepspeed across nodes (see the module docstring)
    return TorchrunLauncher(nproc, nnodes=options.nnodes, rdzv_endpoint=options.rdzv_endpoint)


# --- jobs as local process groups --------------------------------------------------------------


class ProcessJob:
    """A launcher process in its own session; its output goes to `log_path` and our stdout.

    torchrun starts every rank in a session of its own, so the job's process group does not
    hold its ranks: the job remembers every process the launcher started (pid and start time,
    looked up with psutil at each `wait`) and kills those that are left when it ends."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, name: str, echo: bool = True):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.argv, self.log_path, self.name = argv, log_path, name
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=stop_with_parent)
        self._seen: dict[int, float] = {}
        self._tee = threading.Thread(target=_tee, args=(self.proc.stdout, log_path, echo), daemon=True)
        self._tee.start()
        self.processes()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def processes(self) -> list[list[float]]:
        """[pid, start time] of the launcher and of every process it started so far."""
        import psutil

        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        for proc in procs:
            try:
                self._seen.setdefault(proc.pid, proc.create_time())
            except psutil.NoSuchProcess:
                pass
        return [[pid, start] for pid, start in self._seen.items()]

    def wait(self, timeout: float | None = None) -> int | None:
        self.processes()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reap()
        return code

    def kill(self, grace: float = 10.0) -> None:
        """SIGTERM the launcher (torchrun and deepspeed pass it on to their ranks); SIGKILL what is
        left after `grace` seconds."""
        self.processes()
        if self.proc.poll() is None:
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.proc.kill()
        self.proc.wait()
        self._reap()

    def _reap(self) -> None:
        """Kill the ranks a launcher left behind (it was SIGKILLed, or died on its own)."""
        kill_processes(self.processes(), group=self.pid)  # the group of a launcher we just waited for
        self._tee.join(timeout=10)

    def describe(self) -> str:
        cmd = " ".join(self.argv[:8]) + (" ..." if len(self.argv) > 8 else "")
        return f"{self.name}: pid {self.pid} ({cmd}); log {self.log_path}"


def _tee(stream, log_path: Path, echo: bool) -> None:
    with stream, log_path.open("ab") as log:
        for line in iter(stream.readline, b""):
            log.write(line)
            log.flush()
            if echo:
                try:
                    sys.stdout.buffer.write(line)
                    sys.stdout.flush()
                except (AttributeError, OSError, ValueError):
                    echo = False  # stdout replaced or closed: keep draining the pipe into the log


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def running(pid: int, start: float) -> bool:
    """Whether `pid` is the process that started at `start` (not a later one that reused the pid)."""
    import psutil

    try:
        proc = psutil.Process(int(pid))
        return abs(proc.create_time() - start) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def kill_processes(processes: list[list[float]], group: int | None = None) -> None:
    """SIGKILL the recorded processes ([pid, start time]) that still run, and process group
    `group` (pass it only when it is known to be the job's)."""
    import psutil

    if group:
        _signal_group(int(group), signal.SIGKILL)
    for pid, start in processes:
        if running(pid, start):
            try:
                psutil.Process(int(pid)).kill()
            except psutil.Error:
                pass


PR_SET_PDEATHSIG = 1


def stop_with_parent() -> None:
    """In the child before exec: get SIGTERM when the process that started it dies (Linux), so no
    job outlives its worker, no rank its job, and no worker its `ablate study`."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the next `ablate study` kills the orphaned group (queue.reap_dead)


class LocalLauncher:
    """The cell as one plain subprocess (no torch.distributed)."""

    def launch(self, argv: list[str], *, env: dict[str, str], log_path: Path, name: str) -> CellJob:
        return ProcessJob(argv, env, log_path, name)


@dataclass
class TorchrunLauncher:
    """`python -m torch.distributed.run` with N processes per node (the module form of torchrun)."""

    nproc_per_node: int
    nnodes: int = 1
    rdzv_endpoint: str | None = None
    rdzv_id: str | None = None  # nodes of one job meet under one id; default: the job's name

    def command(self, argv: list[str], name: str) -> list[str]:
        opts = [f"--nproc-per-node={self.nproc_per_node}"]
        if self.nnodes == 1 and not self.rdzv_endpoint:
            opts.append("--standalone")  # a c10d store on a free port: concurrent jobs never collide
        else:
            opts += [f"--nnodes={self.nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={self.rdzv_endpoint}",
                     f"--rdzv-id={self.rdzv_id or name}"]
        return [argv[0], "-m", "torch.distributed.run", *opts, *_script(argv)]

    def launch(self, argv: list[str], *, env: dict[str, str], log_path: Path, name: str) -> CellJob:
        return ProcessJob(self.command(argv, name), env, log_path, name)


@dataclass
class DeepSpeedLauncher:
    """The `deepspeed` launcher on this node's GPUs (those in CUDA_VISIBLE_DEVICES, if set)."""

    num_gpus: int

    def command(self, argv: list[str], env: dict[str, str]) -> list[str]:
        # deepspeed ignores CUDA_VISIBLE_DEVICES when given --num_gpus; --include keeps a worker on its own GPUs
        visible = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        devices = ["--include", f"localhost:{','.join(visible[:self.num_gpus])}"] if visible else ["--num_gpus", str(self.num_gpus)]
        script = _script(argv)
        module = ["--module", *script[1:]] if script[0] == "-m" else script
        # --no_local_rank: the ranks read LOCAL_RANK from the environment, as under torchrun
        return [argv[0], "-m", "deepspeed.launcher.runner", *devices, "--master_port", str(free_port()),
                "--no_local_rank", *module]

    def launch(self, argv: list[str], *, env: dict[str, str], log_path: Path, name: str) -> CellJob:
        return ProcessJob(self.command(argv, env), env, log_path, name)


def _script(argv: list[str]) -> list[str]:
    """`-m module args...` or `script.py args...` of a `[python, ...]` command."""
    if len(argv) < 2:
        raise AblateError(f"cell command {argv}: expected [python, -m, module, ...] or [python, script, ...]")
    return argv[1:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- devices per worker ----------------------------------------------------------------------


def _cuda_devices() -> list[str]:
    """The GPUs this process may use (CUDA_VISIBLE_DEVICES, else all that torch counts)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def split_devices(workers: int, per_worker: int) -> list[dict[str, str]]:
    """Environment overrides giving each of `workers` local workers its own `per_worker` GPUs;
    on a machine without GPUs, nothing to split ({} each)."""
    devices = _cuda_devices()
    if not devices:
        return [{} for _ in range(workers)]
    need = workers * per_worker
    if need > len(devices):
        raise AblateError(
            f"--workers {workers} x --nproc-per-node {per_worker} needs {need} GPUs, but {len(devices)} are visible "
            f"({','.join(devices)}); lower --workers or --nproc-per-node"
        )
    return [{"CUDA_VISIBLE_DEVICES": ",".join(devices[i * per_worker:(i + 1) * per_worker])} for i in range(workers)]


# --- why a job ended -------------------------------------------------------------------------


def exit_signal(code: int, log_path: Path) -> int | None:
    """The signal that killed the job or one of its ranks; None if none did. torchrun exits 1 and
    names the rank's exit code in the failure summary it logs (`exitcode  : -9`); the deepspeed
    launcher exits with 256 - 9 and logs `exits with return code = -9`."""
    if code < 0:
        return -code
    try:
        tail = log_path.read_bytes()[-20000:].decode("utf-8", "replace")
    except OSError:
        return None
    import re

    codes = [int(c) for c in re.findall(r"(?:exitcode\s*:|exits with return code =)\s*(-\d+)", tail)]
    return -codes[0] if codes else None


def signal_label(sig: int) -> str:
    return {signal.SIGKILL: "killed", signal.SIGTERM: "terminated", signal.SIGINT: "interrupted"}.get(
        sig, signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}")


def wait_for(job: CellJob, poll_s: float, on_tick=None) -> int:
    """Wait for `job` to end, calling `on_tick()` every `poll_s` seconds; its exit code."""
    while (code := job.wait(timeout=poll_s)) is None:
        if on_tick is not None:
            on_tick()
    return code
