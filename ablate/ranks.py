"""This process's place in a torchrun / deepspeed job: accelerate's `PartialState`.

accelerate picks its multi-process CPU mode (gloo) only when asked with `cpu=True`; transformers'
Trainer asks the same way (`use_cpu`) on a machine without GPUs. Every ablate call site goes
through `ranks()` so they all see the same state, before and after the Trainer's.
"""

from __future__ import annotations


def ranks():
    """accelerate's PartialState (joins the process group on first call under torchrun)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())
