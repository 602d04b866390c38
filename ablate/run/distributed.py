"""Rank helpers for runs launched with torchrun (DDP or DeepSpeed): every rank runs the same
recipe; rank 0 alone decides, writes files and logs, the others follow its decisions.

Without torchrun (WORLD_SIZE unset or 1) every helper is a no-op on one process.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return world_size() > 1


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def init() -> None:
    """Join the process group now (Trainer would later), so ranks can agree before training."""
    if not is_distributed():
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        # gloo on CPU-only machines; the same choice transformers/accelerate make
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")


def broadcast(value: Any) -> Any:
    """Rank 0's `value` on every rank."""
    if not is_distributed():
        return value
    import torch.distributed as dist

    init()
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if is_distributed():
        import torch.distributed as dist

        init()
        dist.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the body first (filling caches), then the other ranks (reading them)."""
    if not is_rank_zero():
        barrier()
    try:
        yield
    finally:
        if is_rank_zero():
            barrier()
