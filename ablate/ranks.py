"""This process's place in a torchrun / deepspeed job: accelerate's `PartialState`.

accelerate picks its multi-process CPU mode (gloo) only when asked with `cpu=True`; transformers'
Trainer asks the same way (`use_cpu`) on a machine without GPUs. Every ablate call site goes
through `ranks()` so they all see the same state, before and after the Trainer's. The first call
joins the process group (under torchrun), sets each rank's GPU from LOCAL_RANK before any
collective, and fixes the collective timeout.
"""

from __future__ import annotations

import os
from datetime import timedelta

TIMEOUT_ENV = "ABLATE_COLLECTIVE_TIMEOUT_MIN"
# Rank 0 may tokenize a whole mixture or fill the feature cache while the others wait at a
# barrier: NCCL's default 10 minutes is far too short for mix665k (about 35 minutes cold).
DEFAULT_TIMEOUT_MIN = 120.0


def collective_timeout() -> timedelta:
    """The collective timeout: $ABLATE_COLLECTIVE_TIMEOUT_MIN minutes (`--collective-timeout`), else 120."""
    from ablate.errors import AblateError

    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        minutes = float(raw) if raw else DEFAULT_TIMEOUT_MIN
    except ValueError:
        raise AblateError(f"{TIMEOUT_ENV}={raw!r} is not a number of minutes") from None
    if not 0 < minutes < 10_000_000:
        raise AblateError(f"{TIMEOUT_ENV}={raw!r}: the collective timeout must be a positive number of minutes")
    return timedelta(minutes=minutes)


def ranks():
    """accelerate's PartialState for this process (one shared state per process)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available(), timeout=collective_timeout())


def leave_process_group() -> None:
    """Every rank leaves the job's process group together, at the end of a torchrun process.

    A rank that exits with its gloo or NCCL group still alive can abort at interpreter shutdown
    ("terminate called without an active exception", exit -6): the job then fails although its
    work is done, and across nodes the other agents wait at torchrun's exit barrier for its
    5-minute timeout."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        state = ranks()
        state.wait_for_everyone()
        state.destroy_process_group()


def join_one_process_world() -> bool:
    """Give a process that no launcher started the environment a launcher gives the only rank of
    a one-process job (RANK 0 of WORLD_SIZE 1, a free MASTER_PORT on this host), as transformers
    documents for DeepSpeed in a notebook: DeepSpeed always joins a process group, and without
    these it looks for MPI instead. The group is left at exit. False when a launcher set them."""
    import atexit
    import socket

    if "RANK" in os.environ or "WORLD_SIZE" in os.environ:
        return False
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    atexit.register(leave_process_group)
    return True
