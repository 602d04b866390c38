"""Load a transformers causal LM and its tokenizer, set up for LLaVA-style training."""

from __future__ import annotations

from ablate.components.contracts import LoadedLLM
from ablate.errors import AblateError, MissingCheckpointError
from ablate.components.checkpoints import checkpoint_config, open_checkpoint
from ablate.components.llms.slow_llama import match_slow_llama


def load_causal_lm(config) -> LoadedLLM:
    import torch
    from transformers import AutoModelForCausalLM

    where = f"llm {config.type}"
    kwargs = dict(dtype=getattr(torch, config.dtype), trust_remote_code=config.trust_remote_code)
    if config.attn_implementation is not None:
        kwargs["attn_implementation"] = config.attn_implementation

    def load_model(src, local_files_only):
        # transformers does not pass local_files_only on to its PEFT adapter lookup, which then
        # retries the Hub for a minute without network; hand it over explicitly.
        offline = dict(local_files_only=True, adapter_kwargs={"local_files_only": True}) if local_files_only else {}
        try:
            return AutoModelForCausalLM.from_pretrained(src, output_loading_info=True, **kwargs, **offline)
        except (ValueError, ImportError) as error:
            # A bad attention backend is a setting problem, not a missing checkpoint.
            if config.attn_implementation is not None and "attention" in str(error).lower().replace("_", " "):
                raise AblateError(
                    f"{where}: attn_implementation {config.attn_implementation!r} cannot be used here: "
                    f"{str(error).strip().splitlines()[0]} (try 'sdpa' or leave it unset)"
                ) from None
            raise

    model, info = open_checkpoint("llm", config.name_or_path, load_model)
    if info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise MissingCheckpointError(
            "llm", config.name_or_path, f"{len(missing)} weights are missing from the checkpoint, e.g. {missing[0]}"
        )

    tokenizer = load_tokenizer(config)
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise AblateError(
            f"{where}: tokenizer has {len(tokenizer)} tokens but the model's embedding has only "
            f"{model.get_input_embeddings().num_embeddings} rows; tokenizer and checkpoint do not belong together"
        )
    return LoadedLLM(model=model, tokenizer=tokenizer)



def load_tokenizer(config):
    """The LLM's fast tokenizer, set up as training uses it (LLaVA's ids, pad = unk, right padding)."""
    from transformers import AutoTokenizer

    tokenizer = open_checkpoint(
        "llm",
        config.tokenizer or config.name_or_path,
        lambda src, **kw: AutoTokenizer.from_pretrained(src, trust_remote_code=config.trust_remote_code, **kw),
        what="tokenizer",
    )
    if not getattr(tokenizer, "is_fast", False):
        raise AblateError(
            f"llm {config.type}: the tokenizer of {config.tokenizer or config.name_or_path!r} is not a fast "
            f"(tokenizers-backed) tokenizer; ablate needs one for offsets and batching"
        )
    match_slow_llama(tokenizer)  # LLaVA's ids are the slow SentencePiece tokenizer's
    if tokenizer.pad_token is None:
        # LLaVA pads Llama/Vicuna with <unk>; models without one use eos.
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    tokenizer.padding_side = "right"
    if config.model_max_length is not None:
        tokenizer.model_max_length = config.model_max_length
    return tokenizer


def causal_lm_on_meta(config) -> LoadedLLM:
    """The model built on the meta device from the checkpoint's config.json alone: its shapes, no
    weights read and no memory taken. No tokenizer is loaded."""
    import torch
    from transformers import AutoModelForCausalLM

    model_config = checkpoint_config("llm", config.name_or_path)
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(model_config, dtype=getattr(torch, config.dtype),
                                                     trust_remote_code=config.trust_remote_code)
    except ValueError:  # no causal LM class reads this config
        raise AblateError(f"llm {config.type}: {config.name_or_path!r} is a {model_config.model_type!r} checkpoint, "
                          "not a causal language model") from None
    return LoadedLLM(model=model, tokenizer=None)
