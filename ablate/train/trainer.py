"""transformers' Trainer, adapted to a multi-component VLM.

Two changes only: the connector can have its own learning rate (LLaVA's mm_projector_lr), and
checkpoints hold just the trainable weights (like LLaVA's mm_projector.bin in stage 1), which
the Trainer's non-strict load restores on resume.
"""

from __future__ import annotations

import torch
from transformers import Trainer


class VLMTrainer(Trainer):
    def __init__(self, *args, connector_lr: float | None = None, **kwargs):
        self.connector_lr = connector_lr
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model=None):
        if self.optimizer is not None or self.connector_lr is None:
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
        for name, param in opt_model.named_parameters():
            if param.requires_grad:
                groups.setdefault((name in decay, _is_connector(name)), []).append(param)
        param_groups = [
            {
                "params": params,
                "weight_decay": self.args.weight_decay if has_decay else 0.0,
                **({"lr": self.connector_lr} if is_connector else {}),
            }
            for (has_decay, is_connector), params in sorted(groups.items())
        ]
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if state_dict is None and not self.is_deepspeed_enabled:
            state_dict = trainable_state_dict(self.accelerator.unwrap_model(self.model))
        super()._save(output_dir, state_dict=state_dict)


def _is_connector(name: str) -> bool:
    return name.startswith("connector.") or ".connector." in name


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Weights that training can change: parameters with requires_grad (contiguous copies)."""
    return {n: p.detach().contiguous().clone() for n, p in model.named_parameters() if p.requires_grad}


COMPONENTS = ("encoder", "connector", "llm")


def stage_state_dict(model: torch.nn.Module, trainable) -> dict[str, torch.Tensor]:
    """Every weight of each component a stage trained (LoRA already merged): what it changed."""
    changed = [c for c in COMPONENTS if getattr(trainable, c) != "frozen"]
    return {
        n: t.detach().contiguous().clone()
        for n, t in model.state_dict().items()
        if n.split(".", 1)[0] in changed
    }
