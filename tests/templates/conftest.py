"""Tokenizers for the template tests.

- zoo: ablate's own tiny tokenizer (Metaspace prepend "first", i.e. legacy=False).
- vicuna: the Vicuna-layout checkpoints of vicuna_folders.py (`tokenizer.model` only), loaded
  through ablate's LLM loader, each next to the slow tokenizer LLaVA would use on the same
  `tokenizer.model` (llava_reference.SlowLlamaTokenizer).
- vicuna_mismatch: "legacy": false with "▁USER" a piece, so that adjustment is wrong and LLaVA
  masks every multi-turn sample.
"""

from __future__ import annotations

import json

import pytest
from llava_reference import SlowLlamaTokenizer
from vicuna_folders import VICUNA_VARIANTS, load_tokenizer, vicuna_corpus, vicuna_folder


@pytest.fixture(scope="session")
def vicuna(tmp_path_factory):
    """name -> (ablate's tokenizer, the slow reference) for each VICUNA_VARIANTS entry."""
    root = tmp_path_factory.mktemp("vicuna")
    corpus = vicuna_corpus(user_after_space=False)
    out = {}
    for name, (configured, slow_legacy) in VICUNA_VARIANTS.items():
        folder = vicuna_folder(root, name, corpus, configured)
        out[name] = (load_tokenizer(folder), SlowLlamaTokenizer(folder / "tokenizer.model", legacy=slow_legacy))
    return out


@pytest.fixture(scope="session")
def vicuna_mismatch(tmp_path_factory):
    folder = vicuna_folder(tmp_path_factory.mktemp("vicuna"), "mismatch", vicuna_corpus(True), False)
    return load_tokenizer(folder), SlowLlamaTokenizer(folder / "tokenizer.model", legacy=False)


@pytest.fixture(scope="session")
def zoo_tokenizer():
    from ablate.zoo.tokenizer import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="session")
def zoo_pieces(zoo_tokenizer):
    model = json.loads(zoo_tokenizer.backend_tokenizer.to_str())["model"]
    return dict(model["vocab"]), [tuple(m) for m in model["merges"]]
