"""The causal-LM training loss without a full-vocabulary logits tensor for every position.

The LLM's own forward (loss "plain") computes logits [batch, positions, vocab] and upcasts them to
fp32 for the cross-entropy: at a 128K vocabulary that is the largest tensor of a step. Here the
LLM's base model gives the hidden states, and only the positions with a label to predict (answer
tokens, not prompts, visual tokens or padding) go through the head:

- "chunked": lm_head and cross-entropy on CHUNK_LOGITS-sized slices of those rows, each slice
  under activation checkpointing, so one slice's logits exist at a time, forward or backward.
- "fused": Liger-kernel's fused linear cross-entropy (CUDA; `pip install 'ablate[liger]'`), whose
  kernel consumes the logits blockwise as it computes them.

Both sum the token losses and divide by `num_items_in_batch` (or, without it, by the number of
scored tokens), as transformers' ForCausalLMLoss does: the same loss and gradients as "plain".
Liger's own model patches are not used: they replace a model class's forward per model type,
for the types Liger knows; its loss function works on any head ablate can read a weight from.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from ablate.components.contracts import IGNORE_INDEX
from ablate.errors import AblateError

LOSS_MODES = ("auto", "plain", "chunked", "fused")
# Causal LMs whose forward is `logits = lm_head(base_model(...).last_hidden_state)`, nothing more
# (no logit scaling or soft-capping, no auxiliary loss): their loss can be taken from the hidden states.
PLAIN_HEAD_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "phi3", "gemma", "olmo2"})
CHUNK_LOGITS = 2**24  # logits per chunk (64 MiB in fp32): 130 rows of a 128K vocabulary


def resolve_loss_mode(choice: str, llm: Any, *, cuda: bool, partitioned: bool, where: str) -> str:
    """The loss this machine computes for a stage's `loss` setting: "plain", "chunked" or "fused".

    `partitioned`: DeepSpeed ZeRO-3 shards the head's weight, which neither path can read whole
    outside the head's own forward. An explicit choice that cannot run is an AblateError naming
    `where` (the recipe field); "auto" takes the best one that can."""
    problem = _hidden_state_path_problem(choice, llm, partitioned, where)
    if choice == "plain" or problem:
        return "plain"
    if choice == "auto":
        return "fused" if cuda and _fusable(llm) and liger_installed() else "chunked"
    if choice == "fused" and not (cuda and liger_installed() and _fusable(llm)):
        raise AblateError(f"{where}: loss 'fused' needs a CUDA GPU, liger-kernel (pip install 'ablate[liger]') "
                          "and an LLM head that is a plain Linear layer (no LoRA on it); 'chunked' runs anywhere")
    return choice


def materialises_logits(choice: str, llm: Any, *, partitioned: bool, where: str) -> bool:
    """Whether a stage's `loss` setting computes the full [positions, vocab] logits: "plain" does, and
    so does "auto" where the hidden-state path cannot run. For sizing a run before it starts
    (`ablate plan`), so whether Liger is installed on the GPU machine is not asked."""
    return choice == "plain" or _hidden_state_path_problem(choice, llm, partitioned, where) is not None


def _hidden_state_path_problem(choice: str, llm: Any, partitioned: bool, where: str) -> str | None:
    """Why the chunked/fused paths cannot run for `llm` (None when they can); an AblateError when
    `choice` is unknown, or names one of those paths explicitly and it cannot run."""
    if choice not in LOSS_MODES:
        raise AblateError(f"{where}: unknown loss {choice!r}; one of {', '.join(LOSS_MODES)}")
    if choice == "plain":
        return None
    problem = _hidden_state_problem(llm, partitioned)
    if problem and choice != "auto":
        raise AblateError(f"{where}: loss {choice!r} {problem}; use loss: plain (or auto)")
    return problem


def liger_installed() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def _hidden_state_problem(llm: Any, partitioned: bool) -> str | None:
    model_type = getattr(getattr(llm, "config", None), "model_type", None)
    if model_type not in PLAIN_HEAD_MODEL_TYPES:
        return (f"needs an LLM whose logits are its head applied to its hidden states ({', '.join(sorted(PLAIN_HEAD_MODEL_TYPES))}); "
                f"this one is {model_type!r}")
    if partitioned:
        return "cannot read a head weight that DeepSpeed ZeRO-3 partitions"
    return None


def _fusable(llm: Any) -> bool:
    return type(llm.get_output_embeddings()) is torch.nn.Linear


def causal_lm_loss(llm: Any, inputs: dict[str, Any], labels: torch.Tensor, mode: str,
                   num_items_in_batch: torch.Tensor | int | None = None, **kwargs: Any):
    """The LLM's output for `inputs` with the loss on `labels` (shifted inside, as transformers
    does), computed the "chunked" or "fused" way; the output carries no logits."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    hidden = llm.base_model(**inputs, **kwargs).last_hidden_state
    shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    scored = shifted != IGNORE_INDEX
    rows, targets = hidden[scored], shifted[scored]
    if rows.shape[0] == 0:  # nothing supervised in this batch: a zero loss that still has a graph
        return CausalLMOutputWithPast(loss=hidden.sum().float() * 0.0)
    head = llm.get_output_embeddings()
    total = _fused_sum(head, rows, targets) if mode == "fused" else chunked_loss_sum(head, rows, targets)
    divisor = num_items_in_batch if num_items_in_batch is not None else scored.sum()
    if torch.is_tensor(divisor):
        divisor = divisor.to(total.device)
    return CausalLMOutputWithPast(loss=total / divisor)


def chunked_loss_sum(head: torch.nn.Module, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum of the cross-entropy of `head(rows)` against `targets`, a chunk of rows at a time; each
    chunk's logits are recomputed in the backward instead of kept."""
    vocab = head.out_features if hasattr(head, "out_features") else head.weight.shape[0]
    size = max(1, CHUNK_LOGITS // vocab)
    total = rows.new_zeros((), dtype=torch.float32)
    for start in range(0, rows.shape[0], size):
        part = (rows[start:start + size], targets[start:start + size])
        total = total + checkpoint(_chunk_sum, head, *part, use_reentrant=False)
    return total


def _chunk_sum(head: torch.nn.Module, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(rows).float(), targets, reduction="sum")


def _fused_sum(head: torch.nn.Linear, rows: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    return liger_fused_linear_cross_entropy(rows, head.weight, targets, head.bias, ignore_index=IGNORE_INDEX,
                                            reduction="sum").float()
