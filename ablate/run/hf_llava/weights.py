"""LlavaForConditionalGeneration's config and weights from an ablate model.

The vision tower and the language model are the very transformers classes ablate runs (a
CLIP/SigLIP vision model, a base causal LM and its lm_head), so their state dicts move over under
Llava's module names. The connector becomes LlavaMultiModalProjector: linear_1, act, linear_2; a
single Linear gets an identity linear_2 and the "linear" (identity) activation, which is exact.
A newly added "<image>" token gets an embedding row and an lm_head row of zeros: its embedding is
always replaced by visual tokens, and generation never emits it (see `generation_config`).
"""

from __future__ import annotations

from typing import Any

import torch

from ablate.run.hf_llava.support import LlavaLayout


def llava_config(vlm: Any, layout: LlavaLayout, *, image_token_id: int, vocab_size: int, dtype: torch.dtype):
    from transformers import LlavaConfig

    # Without _name_or_path: the local folders the run loaded from mean nothing to the export's users.
    vision_config, text_config = (_without_path(c.to_dict()) for c in (vlm.encoder.model.config, vlm.llm.config))
    text_config["vocab_size"] = vocab_size
    return LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_token_id,
        image_seq_length=layout.visual_tokens,
        projector_hidden_act=layout.projector_act,
        vision_feature_select_strategy=layout.vision_feature_select_strategy,
        vision_feature_layer=layout.vision_feature_layer,
        multimodal_projector_bias=True,
        tie_word_embeddings=bool(getattr(vlm.llm.config, "tie_word_embeddings", False)),
        dtype=dtype,
        architectures=["LlavaForConditionalGeneration"],
    )


def llava_state_dict(vlm: Any, vocab_size: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every LlavaForConditionalGeneration weight, in `dtype`."""
    state = {f"model.vision_tower.{k}": v for k, v in vlm.encoder.model.state_dict().items()}
    state.update(projector_weights(vlm.connector))
    base = vlm.llm.get_submodule(vlm.llm.base_model_prefix)
    state.update({f"model.language_model.{k}": v for k, v in base.state_dict().items()})
    state["lm_head.weight"] = vlm.llm.lm_head.weight
    embed = "model.language_model." + _embedding_name(base)
    for name in (embed, "lm_head.weight"):
        state[name] = _with_zero_rows(state[name], vocab_size)
    return {name: tensor.detach().to(dtype) for name, tensor in state.items()}


def projector_weights(connector: torch.nn.Module) -> dict[str, torch.Tensor]:
    """linear_1/linear_2 of LlavaMultiModalProjector from ablate's LinearConnector or 2-layer MLPConnector."""
    linears = [m for m in connector.modules() if isinstance(m, torch.nn.Linear)]
    first = linears[0]
    if len(linears) == 1:  # identity second layer: x @ I + 0 is x exactly
        width = first.out_features
        second = (torch.eye(width, dtype=first.weight.dtype), torch.zeros(width, dtype=first.weight.dtype))
    else:
        second = (linears[1].weight, linears[1].bias)
    return {
        "model.multi_modal_projector.linear_1.weight": first.weight,
        "model.multi_modal_projector.linear_1.bias": first.bias,
        "model.multi_modal_projector.linear_2.weight": second[0],
        "model.multi_modal_projector.linear_2.bias": second[1],
    }


def save_model(vlm: Any, layout: LlavaLayout, out, *, image_token_id: int, vocab_size: int, dtype: torch.dtype) -> None:
    """Write config.json and the safetensors weights. The model is made on the meta device and
    takes ablate's tensors, so no second copy of the weights is allocated (beyond a dtype cast)."""
    from transformers import LlavaForConditionalGeneration

    config = llava_config(vlm, layout, image_token_id=image_token_id, vocab_size=vocab_size, dtype=dtype)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.load_state_dict(llava_state_dict(vlm, vocab_size, dtype), strict=True, assign=True)
    model.tie_weights()
    model.save_pretrained(out)


def generation_config(vlm: Any, tokenizer: Any, image_token_id: int):
    """Greedy decoding, as ablate generates, with the LLM's special ids; "<image>" is suppressed
    because ablate's vocabulary has no such token to emit."""
    from transformers import GenerationConfig

    llm = vlm.llm.generation_config or vlm.llm.config
    return GenerationConfig(
        bos_token_id=llm.bos_token_id, eos_token_id=llm.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        do_sample=False, num_beams=1, suppress_tokens=[image_token_id],
    )


def _without_path(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key != "_name_or_path"}


def _embedding_name(base: torch.nn.Module) -> str:
    embedding = base.get_input_embeddings()
    return next(name for name, module in base.named_modules() if module is embedding) + ".weight"


def _with_zero_rows(weight: torch.Tensor, rows: int) -> torch.Tensor:
    if weight.shape[0] >= rows:
        return weight
    return torch.cat([weight, weight.new_zeros(rows - weight.shape[0], *weight.shape[1:])])
