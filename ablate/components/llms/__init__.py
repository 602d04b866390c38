"""LLM backbones: a transformers causal LM and its tokenizer (see ablate.components.contracts).

Config classes and `register` are light; loading code lives in `hf_causal_lm`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ablate.config_model import MAX_TOKENS, NonBlank
from ablate.registry import ComponentConfig


class HFCausalLMConfig(ComponentConfig):
    name_or_path: NonBlank = Field(description="Hub id, local folder, or zoo:<name> (e.g. zoo:tiny-llama)")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="weights dtype")
    attn_implementation: NonBlank | None = Field(
        None, description="transformers attention backend, e.g. sdpa, eager, flash_attention_2 (default: its choice)"
    )
    tokenizer: NonBlank | None = Field(None, description="tokenizer location (default: name_or_path)")
    trust_remote_code: bool = Field(False, description="allow model code shipped with the checkpoint")
    model_max_length: int | None = Field(None, gt=0, le=MAX_TOKENS, description="override the tokenizer's model_max_length")


def build_hf_causal_lm(config: HFCausalLMConfig, meta: bool = False):
    """Causal LM via AutoModelForCausalLM + its fast tokenizer (pad = unk, right padding, as LLaVA).
    `meta`: the model on the meta device from the checkpoint's config alone, no tokenizer."""
    from ablate.components.llms.hf_causal_lm import causal_lm_on_meta, load_causal_lm

    return causal_lm_on_meta(config) if meta else load_causal_lm(config)


def register(registries) -> None:
    from ablate.components.contracts import llm_problem

    registries.llm.contract = llm_problem  # what a plugin's llm builder must return
    registries.llm.register(
        "hf_causal_lm", HFCausalLMConfig, build_hf_causal_lm,
        description="transformers AutoModelForCausalLM + tokenizer (Llama/Vicuna, ...)",
    )
