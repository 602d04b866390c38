"""Memory per GPU for one stage: model states under its ZeRO stage, and activations.

Model states (AdamW):
- DeepSpeed (a `deepspeed:` config; it casts the model to bf16/fp16 when the stage uses them): 2 bytes
  per parameter for the weights, 2 per trained parameter for gradients, 12 for the optimizer (fp32
  master weights and both moments); fp32 stages 4, 4 and 8. ZeRO-1 partitions the optimizer states
  across the GPUs, ZeRO-2 the gradients too, ZeRO-3 the weights too.
- Without DeepSpeed (DDP): every GPU holds the weights in their own dtypes, gradients like the
  trained weights and AdamW's two moments in their dtype.
Activations, per GPU, for a micro-batch of `batch_size` sequences as long as the stage's longest
record (at most `max_length`: the longest batch it forms), in the stage's precision (2 bytes for
bf16/fp16, else 4), with fused attention (no T^2 scores kept):
- each LLM layer keeps s b (9h + 4i) values: norms' inputs, q, k, v, the attention output, and the
  gated MLP's four intermediates; each trained encoder layer s b (9h + 2i) (its MLP is not gated).
  A frozen encoder runs without gradients (or is read from the feature cache) and keeps none;
- the logits: s b V values in the stage's precision plus the fp32 copy and log-softmax of the loss,
  where the stage's loss materialises them ("plain", or "auto" under ZeRO-3 or with an LLM whose
  head the hidden-state path cannot use); "chunked" and "fused" keep one chunk of CHUNK_LOGITS at a
  time, whatever the sequence length;
- with gradient checkpointing each layer keeps only its input (s b h), plus one layer recomputed
  at a time. A frozen LLM the backward runs through is counted as a trained one: an upper bound.
Evaluating after every epoch (`eval.each_epoch`, the last stage) in a ZeRO-3 stage gathers the
weights whole on every GPU (ablate.train.trainer.whole_weights) between steps, when no activations
are held: the model states plus the weights' other (gpus - 1) / gpus shares. The KV cache of the
evaluation's generation is not counted.
Not counted: the connector's activations, communication buckets, fragmentation, CUDA context.
"""

from __future__ import annotations

from dataclasses import dataclass

from ablate.model.loss import CHUNK_LOGITS
from ablate.plan.flops import Shapes
from ablate.plan.params import Params

GIB = 2**30


@dataclass(frozen=True)
class Memory:
    """Bytes per GPU."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    activations_checkpointed: float
    full_logits: bool = True  # the loss holds every position's logits at once (else a chunk at a time)
    gathered_for_eval: float = 0.0  # added while evaluating after an epoch (ZeRO-3 gathers the weights)

    @property
    def states(self) -> float:
        return self.weights + self.gradients + self.optimizer

    def total(self, checkpointed: bool) -> float:
        """The training step's peak."""
        return self.states + (self.activations_checkpointed if checkpointed else self.activations)

    def peak(self, checkpointed: bool) -> float:
        """The stage's peak: its training step's, or its evaluations' after an epoch when larger."""
        return max(self.total(checkpointed), self.states + self.gathered_for_eval)


def model_states(params: dict[str, Params], zero: int | None, gpus: int, precision: str) -> tuple[float, float, float]:
    """(weights, gradients, optimizer states) in bytes per GPU."""
    if zero is None:
        trained = sum(p.trainable_bytes for p in params.values())
        return float(sum(p.bytes for p in params.values())), float(trained), 2.0 * trained
    width = 2 if precision in ("bf16", "fp16") else 4
    total = sum(p.total for p in params.values())
    trained = sum(p.trainable for p in params.values())
    weights, gradients = total * width, trained * width
    optimizer = trained * (12 if width == 2 else 8)
    return (weights / gpus if zero >= 3 else weights, gradients / gpus if zero >= 2 else gradients,
            optimizer / gpus if zero >= 1 else optimizer)


def activations(shapes: Shapes, encoder_trained: bool, batch: int, seq: int, precision: str,
                full_logits: bool = True) -> tuple[float, float]:
    """(without, with gradient checkpointing) activation bytes of one micro-batch; `full_logits`:
    the loss computes every position's logits at once (else one chunk at a time)."""
    width = 2 if precision in ("bf16", "fp16") else 4
    llm_layer = width * seq * batch * (9 * shapes.llm_width + 4 * shapes.llm_intermediate)
    llm_input = width * seq * batch * shapes.llm_width
    logit_values = seq * batch * shapes.vocab
    logits = (logit_values if full_logits else min(logit_values, CHUNK_LOGITS)) * (width + 4 + 4)
    full = shapes.llm_layers * llm_layer + logits
    checkpointed = shapes.llm_layers * llm_input + llm_layer + logits
    if encoder_trained and shapes.encoder_layers:
        positions = shapes.encoder_positions * batch
        encoder_layer = width * positions * (9 * shapes.encoder_width + 2 * shapes.encoder_intermediate)
        full += shapes.encoder_layers * encoder_layer
        checkpointed += shapes.encoder_layers * width * positions * shapes.encoder_width + encoder_layer
    return float(full), float(checkpointed)


def stage_memory(params: dict[str, Params], shapes: Shapes, *, zero: int | None, gpus: int, precision: str,
                 batch: int, seq: int, full_logits: bool = True, evaluates_each_epoch: bool = False) -> Memory:
    weights, gradients, optimizer = model_states(params, zero, gpus, precision)
    full, checkpointed = activations(shapes, params["encoder"].trainable > 0, batch, seq, precision, full_logits)
    gathered = weights * (gpus - 1) if evaluates_each_epoch and zero == 3 else 0.0  # `weights` is one share
    return Memory(weights, gradients, optimizer, full, checkpointed, full_logits, gathered)
