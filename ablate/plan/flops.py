"""Training FLOPs of one sample: model FLOPs, as MFU counts them (no recomputation).

Per component, with N its multiplying parameters (`Params.compute`) and T the positions it runs
over (the LLM: text + visual tokens; the encoder: its patches, CLS included; the connector: the
encoder's features per image):

    matmuls    6 N_trained T  +  4 N_frozen T (backward runs through it)  or  2 N_frozen T (forward only)
    attention  4 T^2 d L per forward (QK^T and AV, the whole square, as torch's FLOP counter
               charges it), x3 when the backward runs through it

A trained weight costs its forward (2), the gradient of its input (2) and its own gradient (2);
a frozen weight the backward passes through (a frozen LLM under a trained connector) costs the
first two; a frozen encoder below everything trained costs its forward only. Text-only samples
skip the encoder and the connector. Gradient checkpointing recomputes forwards that are not
counted, as MFU does not count them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ablate.plan.params import Params


@dataclass(frozen=True)
class Shapes:
    """What the FLOPs and activation formulas need of a model."""

    encoder_positions: int  # per image, CLS included
    encoder_layers: int  # 0 when the encoder has no transformers config: its attention is not counted
    encoder_width: int
    encoder_intermediate: int
    connector_inputs: int  # features per image into the connector
    visual_tokens: int  # the connector's tokens per image, spliced into the LLM's sequence
    llm_layers: int
    llm_width: int
    llm_intermediate: int
    vocab: int


def model_shapes(vlm) -> Shapes:
    encoder, llm = vlm.encoder, vlm.llm.config
    vision = getattr(getattr(encoder, "model", None), "config", None)
    width = int(llm.hidden_size)
    return Shapes(
        encoder_positions=int(encoder.num_tokens) + int(bool(getattr(encoder, "drop_cls", False))),
        encoder_layers=int(getattr(vision, "num_hidden_layers", 0) or 0),
        encoder_width=int(getattr(vision, "hidden_size", 0) or 0),
        encoder_intermediate=int(getattr(vision, "intermediate_size", 0) or 0),
        connector_inputs=int(encoder.num_tokens),
        visual_tokens=int(vlm.connector.num_output_tokens),
        llm_layers=int(llm.num_hidden_layers),
        llm_width=width,
        llm_intermediate=int(getattr(llm, "intermediate_size", None) or 4 * width),
        vocab=int(llm.vocab_size),
    )


def matmul_flops_per_position(params: Params, through: bool) -> float:
    return 6 * params.compute_trainable + (4 if through else 2) * params.frozen_compute


def attention_flops(positions: int, width: int, layers: int, through: bool) -> float:
    return 4 * positions**2 * width * layers * (3 if through else 1)


def sample_flops(shapes: Shapes, params: dict[str, Params], through: dict[str, bool], llm_tokens: int,
                 image: bool) -> float:
    """Training FLOPs of one sample of `llm_tokens` LLM positions, with or without an image."""
    flops = matmul_flops_per_position(params["llm"], through["llm"]) * llm_tokens
    flops += attention_flops(llm_tokens, shapes.llm_width, shapes.llm_layers, through["llm"])
    if image:
        positions = shapes.encoder_positions
        flops += matmul_flops_per_position(params["encoder"], through["encoder"]) * positions
        flops += attention_flops(positions, shapes.encoder_width, shapes.encoder_layers, through["encoder"])
        flops += matmul_flops_per_position(params["connector"], through["connector"]) * shapes.connector_inputs
    return flops


def mean_sample_flops(shapes: Shapes, params: dict[str, Params], through: dict[str, bool],
                      lengths: list[tuple[int, bool, float]]) -> float:
    """The weighted mean over `lengths` ((LLM positions, has an image, weight) per sample or part)."""
    total = sum(weight for _, _, weight in lengths)
    return sum(weight * sample_flops(shapes, params, through, tokens, image)
               for tokens, image, weight in lengths) / total
