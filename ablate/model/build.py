"""Build a VisionLanguageModel from a recipe's `model:` section through the registries."""

from __future__ import annotations

import inspect
from typing import Any

from ablate.errors import AblateError, PluginError
from ablate.registry import registries

_DTYPES = {
    "fp32": "float32", "float32": "float32",
    "bf16": "bfloat16", "bfloat16": "bfloat16",
    "fp16": "float16", "float16": "float16",
}


def resolve_dtype(dtype: Any):
    """None, a torch.dtype, or a name ("bf16", "bfloat16", "fp16", "fp32", ...) -> torch.dtype | None."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPES.get(str(dtype).lower())
    if name is None:
        raise AblateError(f"unknown dtype {dtype!r}; use one of {', '.join(sorted(_DTYPES))}")
    return getattr(torch, name)


def build_vlm(model_section: Any, *, dtype: Any = None, max_length: int | None = None):
    """Encoder, LLM and connector from their registry entries, assembled into one model.

    The connector is built with in_dim=encoder.feature_dim, out_dim=the LLM's embedding width
    and num_input_tokens=encoder.num_tokens. `model_section.init_connector`, if set, is loaded
    into it. The returned model carries `.tokenizer` and `.image_processor`.
    `dtype` casts the whole model; builders that take a `dtype` keyword also get it, so they
    can load weights directly in that precision.
    """
    from ablate.model.connector_weights import load_connector_weights
    from ablate.model.vlm import VisionLanguageModel

    dtype = resolve_dtype(dtype)
    regs = registries()
    configs = {name: getattr(model_section, name) for name in ("encoder", "connector", "llm")}

    encoder = _build(regs, "encoder", configs["encoder"], dtype)
    loaded = _build(regs, "llm", configs["llm"], dtype)
    _check_tokenizer(regs, configs["llm"], loaded.tokenizer)
    llm, tokenizer = loaded.model, loaded.tokenizer
    connector = _build(
        regs, "connector", configs["connector"], dtype,
        in_dim=encoder.feature_dim,
        out_dim=llm.get_input_embeddings().embedding_dim,
        num_input_tokens=encoder.num_tokens,
    )
    vlm = VisionLanguageModel(
        encoder, connector, llm,
        max_length=max_length, tokenizer=tokenizer,
        image_processor=getattr(encoder, "image_processor", None),
        component_configs=configs,
    )
    init = getattr(model_section, "init_connector", None)
    if init:
        load_connector_weights(vlm.connector, init)
    if dtype is not None:
        vlm.to(dtype)
    return vlm


def _check_tokenizer(regs, config: Any, tokenizer: Any) -> None:
    """A run tokenizes every sample: an LLM built without a (fast) tokenizer is named here, not by
    the first template that needs character offsets."""
    from ablate.components.contracts import tokenizer_problem

    if problem := tokenizer_problem(tokenizer):
        entry = regs["llm"].get(config["type"] if isinstance(config, dict) else config.type)
        raise PluginError(f"model.llm: {entry.label}: {problem}")


def component_on_meta(kind: str, config: Any) -> Any:
    """An encoder or LLM ("encoder" | "llm") built on the meta device from its checkpoint's config
    alone, through a builder that takes `meta=True`: its shapes, no weights read, no memory taken.
    The LLM comes as a LoadedLLM without a tokenizer. None when the builder takes no `meta`
    (a plugin's may not): such a component cannot be built without loading it."""
    entry = registries()[kind].get(config["type"] if isinstance(config, dict) else config.type)
    if "meta" not in inspect.signature(entry.builder).parameters:
        return None
    return entry.build(config, meta=True)


def vlm_on_meta(model_section: Any, encoder: Any, loaded_llm: Any):
    """The model on the meta device around `component_on_meta`'s encoder and LLM, with the connector
    built for them: to check shapes and trainable sets before anything runs. `init_connector` is
    not loaded (`connector_weights.connector_file_problem` compares its shapes)."""
    import torch

    from ablate.model.vlm import VisionLanguageModel

    configs = {name: getattr(model_section, name) for name in ("encoder", "connector", "llm")}
    llm = loaded_llm.model
    with torch.device("meta"):
        connector = _build(
            registries(), "connector", configs["connector"], None,
            in_dim=encoder.feature_dim,
            out_dim=llm.get_input_embeddings().embedding_dim,
            num_input_tokens=encoder.num_tokens,
        )
    return VisionLanguageModel(encoder, connector, llm, component_configs=configs)


def _build(regs, kind: str, config: Any, dtype: Any, **context: Any) -> Any:
    name = config["type"] if isinstance(config, dict) else config.type
    entry = regs[kind].get(name)
    if dtype is not None and "dtype" in inspect.signature(entry.builder).parameters:
        context["dtype"] = dtype
    try:
        return entry.build(config, **context)
    except PluginError as exc:
        raise PluginError(f"model.{kind}: {exc}") from exc  # the recipe block it came from
