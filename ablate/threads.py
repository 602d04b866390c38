"""How many threads torch's intra-op pool gets: chosen on purpose, from the machine and its load.

torch starts one OpenMP thread per core. On a small machine that another busy process shares,
those threads wait for each other at every parallel region (a 2-core zoo build took 42 minutes
beside another job instead of 7), so `ablate run`, `ablate study` and `ablate zoo build` pick
the count at start, in this order:

  1. `--threads N` (the commands set ABLATE_THREADS=N, which their subprocesses inherit);
  2. ABLATE_THREADS=N;
  3. OMP_NUM_THREADS when set (torchrun sets 1 for jobs of several processes per node);
  4. the CPUs this process may run on (`os.sched_getaffinity`) minus the CPUs other processes
     keep busy, rounded, at least 1. "Busy" is measured now: those CPUs' non-idle time in
     /proc/stat over half a second while this process sleeps. The 1-minute load average (the
     fallback where /proc/stat is missing) lags by minutes: right after one study of the tiny
     suite ended, the next one read a load of 1.0 from its two finished workers on an idle
     2-core machine, and ran its diagnostics on one thread with a core idle.

The choice and its reason go into the run's header and its MLflow tags (`ablate.threads`,
`ablate.threads_reason`).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ablate.errors import AblateError

ENV = "ABLATE_THREADS"
OMP_ENV = "OMP_NUM_THREADS"
# More threads than any machine has cores is a typo: OpenMP would try to start them all (and
# torch.set_num_threads overflows past 2**63).
MAX_THREADS = 1024


@dataclass(frozen=True)
class ThreadChoice:
    count: int
    reason: str

    def line(self) -> str:
        return f"threads: {self.count} ({self.reason})"


_applied: ThreadChoice | None = None


def choose_threads(env: Mapping[str, str], cores: int, other_load: float) -> ThreadChoice:
    """The thread count for `cores` usable CPUs busy with `other_load` runnable tasks of other processes."""
    if raw := env.get(ENV, "").strip():
        return ThreadChoice(_whole(raw, ENV), f"{ENV}={raw}")
    if raw := env.get(OMP_ENV, "").strip():
        # OpenMP allows a list for nested levels ("4,2"); the first is the outer pool's size.
        return ThreadChoice(_whole(raw.split(",")[0], OMP_ENV), f"{OMP_ENV}={raw}")
    free = min(cores, max(1, math.floor(cores - other_load + 0.5)))
    return ThreadChoice(free, f"{cores} CPUs, load {other_load:.1f} from other processes")


def _whole(raw: str, name: str) -> int:
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_THREADS:
        raise AblateError(f"{name}={raw!r}: the number of threads must be a whole number from 1 to {MAX_THREADS}")
    return count


STAT = "/proc/stat"
SAMPLE_S = 0.5


def machine_choice() -> ThreadChoice:
    """`choose_threads` for this process, its environment and the machine's load now."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if any(os.environ.get(name, "").strip() for name in (ENV, OMP_ENV)):
        return choose_threads(os.environ, len(cpus), 0.0)  # set: nothing to measure
    busy = busy_cpus(cpus)
    if busy is None:
        busy = max(0.0, os.getloadavg()[0] - _own_load())
    return choose_threads(os.environ, len(cpus), busy)


def busy_cpus(cpus: list[int], window: float = SAMPLE_S) -> float | None:
    """How many of `cpus` other processes keep busy now: their non-idle share of /proc/stat's
    time over `window` seconds while this process sleeps; None without a readable /proc/stat."""
    try:
        first = cpu_times(Path(STAT).read_text())
        time.sleep(window)
        second = cpu_times(Path(STAT).read_text())
    except OSError:
        return None
    return busy_between(first, second, cpus) if first else None


def cpu_times(stat: str) -> dict[int, tuple[int, int]]:
    """{cpu: (busy, total) clock ticks} from the per-CPU lines of /proc/stat (idle and iowait are idle)."""
    times = {}
    for line in stat.splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
            times[int(name[3:])] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return times


def busy_between(first: dict[int, tuple[int, int]], second: dict[int, tuple[int, int]], cpus: list[int]) -> float:
    """CPUs' worth of busy time between two `cpu_times` snapshots, over `cpus`."""
    busy = 0.0
    for cpu in cpus:
        if cpu in first and cpu in second and second[cpu][1] > first[cpu][1]:
            busy += (second[cpu][0] - first[cpu][0]) / (second[cpu][1] - first[cpu][1])
    return busy


def _own_load() -> float:
    """This process's part of the 1-minute load average: a task runnable for t seconds adds
    1 - exp(-t/60) (the average's own decay); its CPU time stands in for t."""
    return 1.0 - math.exp(-time.process_time() / 60.0)


def set_threads_env(count: int | None) -> None:
    """`--threads N`, as ABLATE_THREADS for this process and the jobs it starts."""
    if count is not None:
        os.environ[ENV] = str(count)


def apply_threads(choice: ThreadChoice | None = None) -> ThreadChoice:
    """Give torch the chosen count (the machine's choice by default) and remember it."""
    import torch

    global _applied
    choice = choice or machine_choice()
    torch.set_num_threads(choice.count)
    _applied = choice
    return choice


def worker_threads(workers: int) -> dict[str, str]:
    """The environment for each of `workers` processes that will share this machine: this
    process's chosen count split between them, unless the count was set (ABLATE_THREADS,
    OMP_NUM_THREADS), which each process then keeps."""
    if os.environ.get(ENV, "").strip() or os.environ.get(OMP_ENV, "").strip():
        return {}
    return {ENV: str(max(1, current_threads().count // workers))}


def current_threads() -> ThreadChoice:
    """What torch runs with now, and why (the applied choice, or torch's own setting)."""
    import torch

    count = torch.get_num_threads()
    if _applied is not None and _applied.count == count:
        return _applied
    return ThreadChoice(count, "torch's setting; ablate did not choose")
