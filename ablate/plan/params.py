"""Parameter counts per component for one stage, after its `trainable` is applied.

`compute` counts the parameters that multiply activations: every one but the rows of embedding
tables (`nn.Embedding`: token and position embeddings are looked up, not multiplied), so
2 x compute x tokens is a forward pass's FLOPs. `bytes` and `trainable_bytes` are the weights' own
dtypes (a bf16 LLM: 2 bytes each; LoRA adapters, which peft keeps in fp32: 4).
"""

from __future__ import annotations

from dataclasses import dataclass

COMPONENTS = ("encoder", "connector", "llm")


@dataclass(frozen=True)
class Params:
    total: int
    trainable: int
    compute: int
    compute_trainable: int
    bytes: int
    trainable_bytes: int

    @property
    def frozen_compute(self) -> int:
        return self.compute - self.compute_trainable


def component_params(module) -> Params:
    """Counts of `module`'s parameters (tied ones once)."""
    from torch import nn

    looked_up = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
    params = list(module.parameters())
    trained = [p for p in params if p.requires_grad]
    return Params(
        total=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in trained),
        compute=sum(p.numel() for p in params if id(p) not in looked_up),
        compute_trainable=sum(p.numel() for p in trained if id(p) not in looked_up),
        bytes=sum(p.numel() * p.element_size() for p in params),
        trainable_bytes=sum(p.numel() * p.element_size() for p in trained),
    )


def stage_params(vlm) -> dict[str, Params]:
    """{component: Params} of `vlm` as its current stage's `trainable` left it."""
    return {name: component_params(getattr(vlm, name)) for name in COMPONENTS}


def backward_through(params: dict[str, Params]) -> dict[str, bool]:
    """Whether the backward pass runs through each component: it does from the last component
    that trains down to the first one that does (encoder -> connector -> LLM is the forward order,
    and gradients flow from the loss back to the first trained parameter)."""
    trained = [name for name in COMPONENTS if params[name].trainable]
    first = COMPONENTS.index(trained[0]) if trained else len(COMPONENTS)
    return {name: index >= first for index, name in enumerate(COMPONENTS)}
