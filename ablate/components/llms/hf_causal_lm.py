"""Load a transformers causal LM and its tokenizer, set up for LLaVA-style training."""

from __future__ import annotations

from ablate.components.contracts import LoadedLLM
from ablate.errors import AblateError, MissingCheckpointError
from ablate.zoo.loading import open_checkpoint


def load_causal_lm(config) -> LoadedLLM:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = f"llm {config.type}"
    kwargs = dict(dtype=getattr(torch, config.dtype), trust_remote_code=config.trust_remote_code)
    if config.attn_implementation is not None:
        kwargs["attn_implementation"] = config.attn_implementation
        _check_attention(where, config)

    def load_model(src, **kw):
        try:
            return AutoModelForCausalLM.from_pretrained(src, output_loading_info=True, **kwargs, **kw)
        except (ValueError, ImportError) as error:
            # A bad attention backend is a setting problem, not a missing checkpoint.
            if config.attn_implementation is not None and "attn_implementation" in str(error):
                raise AblateError(f"{where}: {str(error).strip().splitlines()[0]}") from None
            raise

    model, info = open_checkpoint("llm", config.name_or_path, load_model)
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise MissingCheckpointError(
            "llm", config.name_or_path, f"{len(missing)} weights are missing from the checkpoint, e.g. {missing[0]}"
        )

    tokenizer = open_checkpoint(
        "llm",
        config.tokenizer or config.name_or_path,
        lambda src, **kw: AutoTokenizer.from_pretrained(src, trust_remote_code=config.trust_remote_code, **kw),
        what="tokenizer",
    )
    if not getattr(tokenizer, "is_fast", False):
        raise AblateError(
            f"{where}: the tokenizer of {config.tokenizer or config.name_or_path!r} is not a fast "
            f"(tokenizers-backed) tokenizer; ablate needs one for offsets and batching"
        )
    if tokenizer.pad_token is None:
        # LLaVA pads Llama/Vicuna with <unk>; models without one use eos.
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    tokenizer.padding_side = "right"
    if config.model_max_length is not None:
        tokenizer.model_max_length = config.model_max_length
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise AblateError(
            f"{where}: tokenizer has {len(tokenizer)} tokens but the model's embedding has only "
            f"{model.get_input_embeddings().num_embeddings} rows; tokenizer and checkpoint do not belong together"
        )
    return LoadedLLM(model=model, tokenizer=tokenizer)


def _check_attention(component: str, config) -> None:
    """Fail early, by name, on an attention backend this install cannot run."""
    from transformers.utils import is_flash_attn_2_available

    if config.attn_implementation == "flash_attention_2" and not is_flash_attn_2_available():
        raise AblateError(
            f"{component}: attn_implementation 'flash_attention_2' needs the flash-attn package and a CUDA GPU; "
            f"use 'sdpa' or leave attn_implementation unset"
        )


__all__ = ["load_causal_lm"]
