"""Per-component trainable state for one stage: frozen, full, or LoRA (peft).

`trainable` is a recipe `StageTrainable` (or anything with `.encoder/.connector/.llm`), each
"frozen", "full" or an object with `.lora` (peft LoraConfig fields).

LoRA adapters are injected in place with peft's LoraModel tuner, so each component keeps its
own class and module names (only the targeted Linear layers gain `base_layer`/`lora_A`/`lora_B`).
The tuner is kept in `vlm.lora_tuners` so `merge_lora` can fold the adapters into the weights
with peft's own merge_and_unload before the next stage.
"""

from __future__ import annotations

from typing import Any

from ablate.errors import AblateError
from ablate.model.vlm import COMPONENTS, VisionLanguageModel


class TrainableError(AblateError):
    """A component's trainable setting cannot be applied; `component` names which."""

    def __init__(self, component: str, message: str):
        self.component = component
        super().__init__(message)


def apply_trainable(vlm: VisionLanguageModel, trainable: Any) -> None:
    """Set requires_grad (and LoRA adapters) per component for the coming stage.

    A component still carrying LoRA adapters from an earlier stage is merged first: the
    adapters become part of its weights, then the new setting applies to the merged weights.
    Frozen encoders/connectors are kept in eval mode (dropout off) even under `vlm.train()`;
    a frozen LLM stays in train mode so gradient checkpointing still applies to it.
    """
    for name in COMPONENTS:
        setting = _setting(trainable, name)
        if name in vlm.lora_tuners:
            merge_lora(vlm, name)
        module = getattr(vlm, name)
        vlm.keep_eval.discard(name)
        if setting == "frozen":
            module.requires_grad_(False)
            if name != "llm":
                vlm.keep_eval.add(name)
        elif setting == "full":
            module.requires_grad_(True)
        else:
            _add_lora(vlm, name, setting)
    vlm.train(vlm.training)  # apply keep_eval now


def mark_reused(vlm: VisionLanguageModel, trainable: Any) -> None:
    """The requires_grad flags a stage leaves behind, for a stage loaded from the store instead of
    trained: `full` components trainable, `frozen` ones not, and LoRA ones not either (their
    adapters were merged into the stored weights, as after training). So a run that reuses its
    stages reports the same trainable counts as the run that trained them."""
    for name in COMPONENTS:
        getattr(vlm, name).requires_grad_(_setting(trainable, name) == "full")


def merge_lora(vlm: VisionLanguageModel, component: str | None = None) -> None:
    """Merge LoRA adapters into the base weights of `component` (default: every component)."""
    names = [component] if component is not None else list(vlm.lora_tuners)
    for name in names:
        tuner = vlm.lora_tuners.pop(name, None)
        if tuner is not None:
            setattr(vlm, name, tuner.merge_and_unload())


def _setting(trainable: Any, name: str) -> Any:
    setting = trainable.get(name, "frozen") if isinstance(trainable, dict) else getattr(trainable, name)
    if setting in ("frozen", "full"):
        return setting
    lora = setting.get("lora") if isinstance(setting, dict) else getattr(setting, "lora", None)
    if lora is None:
        raise TrainableError(name, f"trainable.{name}: expected 'frozen', 'full' or {{lora: {{...}}}}, got {setting!r}")
    return lora


def _lora_field(lora: Any, key: str, default: Any) -> Any:
    value = lora.get(key, default) if isinstance(lora, dict) else getattr(lora, key, default)
    return value


def _add_lora(vlm: VisionLanguageModel, name: str, lora: Any) -> None:
    from peft import LoraConfig, LoraModel

    target = _lora_field(lora, "target_modules", "all-linear")
    config = LoraConfig(
        r=_lora_field(lora, "r", 8),
        lora_alpha=_lora_field(lora, "lora_alpha", 16),
        lora_dropout=_lora_field(lora, "lora_dropout", 0.05),
        target_modules=list(target) if isinstance(target, (list, tuple)) else target,
        bias=_lora_field(lora, "bias", "none"),
    )
    module = getattr(vlm, name)
    try:
        # Injects adapters in place and marks only them (and biases per `bias`) trainable.
        with _on_meta_if(module):
            tuner = LoraModel(module, config, adapter_name="default")
    except ValueError as err:
        raise TrainableError(name, f"trainable.{name}.lora: {err}{_no_linear_hint(module, target)}") from None
    vlm.lora_tuners[name] = tuner


def _no_linear_hint(module: Any, target: Any) -> str:
    """peft's all-linear finds nothing in a module without Linear layers (a plugin's conv encoder)
    and says only that no target_modules were passed: name the layers it could adapt instead."""
    from torch import nn

    if target != "all-linear" or any(isinstance(m, nn.Linear) for m in module.modules()):
        return ""
    adaptable = [n for n, m in module.named_modules() if n and isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Embedding))]
    named = f" such as {', '.join(adaptable[:4])}" if adaptable else ""
    return (f" ({type(module).__name__} has no Linear layer for target_modules all-linear; list the layers to "
            f"adapt in target_modules{named}, or train it full)")


def _on_meta_if(module: Any) -> Any:
    """The meta device as default for a module that lives there (`ablate plan`, `--check`): peft
    makes each adapter in CPU memory before moving it to its layer's device, so a large `r` would
    take (or fail to take) real memory for a model that has none."""
    import contextlib

    import torch

    on_meta = any(p.is_meta for p in module.parameters())
    return torch.device("meta") if on_meta else contextlib.nullcontext()
