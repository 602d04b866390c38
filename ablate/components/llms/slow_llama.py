"""Make transformers 5's Llama tokenizer split text as the slow SentencePiece LlamaTokenizer does.

LLaVA trains with transformers 4's slow `LlamaTokenizer` (`use_fast=False`, sentencepiece).
transformers 5 has no such class: `LlamaTokenizer` is tokenizers-backed (also under
`use_fast=False`) and, for a folder with only `tokenizer.model` (the lmsys Vicuna repos), builds
its vocabulary from that file with sentencepiece + protobuf. Its ids differ from the slow
tokenizer's in two ways, fixed here at load time:

- No "legacy" in tokenizer_config.json (vicuna v1.3) means legacy=True to the slow tokenizer
  but legacy=False to transformers 5, so every "USER" after "</s>" loses its word-start "▁".
- legacy=True: SentencePiece gives every stretch of text between special tokens a "▁" prefix,
  even one that starts with a space (" What" -> "▁▁What"); transformers 5's
  Metaspace(prepend_scheme="always") skips it there. A Prepend + Replace normalizer is exact
  (the layout transformers 4 used for its own legacy Llama tokenizer.json).

legacy=False keeps transformers 5's Metaspace(prepend_scheme="first"): the slow tokenizer puts one
"▁" before the whole text, which the tokenizers library cannot do unconditionally, so text that
starts with a space is the one difference left; `ablate.templates.base.tokenize_with_image`,
through which ablate tokenizes all text, makes up for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPIECE_UNDERLINE = "\u2581"


def match_slow_llama(tokenizer: Any) -> None:
    """Give a transformers 5 LlamaTokenizer read from a SentencePiece `tokenizer.model` the slow
    tokenizer's legacy setting and splitting. Anything else is left alone."""
    from tokenizers import normalizers, pre_tokenizers
    from transformers import LlamaTokenizer

    if not isinstance(tokenizer, LlamaTokenizer):
        return
    model_file = getattr(tokenizer, "vocab_file", None)
    if not isinstance(model_file, str) or not model_file.endswith(".model") or not Path(model_file).is_file():
        return  # no SentencePiece model: there is no slow tokenizer to match
    backend = tokenizer.backend_tokenizer
    pre = backend.pre_tokenizer
    if not isinstance(pre, pre_tokenizers.Metaspace) or pre.prepend_scheme == "never":
        return  # add_prefix_space=False, or a layout this module does not know
    legacy = slow_legacy(Path(model_file).parent / "tokenizer_config.json")
    tokenizer.legacy = legacy
    if legacy:
        backend.normalizer = normalizers.Sequence(
            [normalizers.Prepend(SPIECE_UNDERLINE), normalizers.Replace(" ", SPIECE_UNDERLINE)]
        )
        backend.pre_tokenizer = None


def slow_legacy(tokenizer_config: Path) -> bool:
    """The slow LlamaTokenizer's `legacy`: the config's value, True when the key is absent."""
    try:
        config = json.loads(tokenizer_config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    value = config.get("legacy") if isinstance(config, dict) else None
    return True if value is None else bool(value)
