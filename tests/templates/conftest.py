"""Tokenizers for the template tests, all real transformers LlamaTokenizer objects.

- zoo: ablate's own tiny tokenizer (Metaspace prepend "first", i.e. legacy=False).
- legacy: the zoo vocabulary with prepend "always" (legacy=True), the behaviour LLaVA-1.5 was
  trained with: text right after "</s>" gets a word-start "▁", as at the start of a string.
- vicuna_like: legacy=False with "USER" a piece but "▁USER" not, so "USER" alone tokenizes to
  one token more ("▁", "USER") than right after "</s>" ("USER"): the case LLaVA's
  non-legacy "-1" adjustment was written for.
"""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="session")
def zoo_tokenizer():
    from ablate.zoo.tokenizer import build_tokenizer

    return build_tokenizer()


def _llama(vocab, merges, legacy):
    from transformers import LlamaTokenizer

    return LlamaTokenizer(
        vocab=vocab, merges=merges, legacy=legacy, add_bos_token=True,
        unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<unk>",
    )


@pytest.fixture(scope="session")
def zoo_pieces(zoo_tokenizer):
    model = json.loads(zoo_tokenizer.backend_tokenizer.to_str())["model"]
    return dict(model["vocab"]), [tuple(m) for m in model["merges"]]


@pytest.fixture(scope="session")
def legacy_tokenizer(zoo_pieces):
    vocab, merges = zoo_pieces
    return _llama(vocab, merges, legacy=True)


@pytest.fixture(scope="session")
def vicuna_like_tokenizer(zoo_pieces):
    vocab, merges = zoo_pieces
    vocab = {**vocab, "USER": len(vocab)}
    merges = [m for m in merges if m != ("▁", "USE")] + [("USE", "R")]
    return _llama(vocab, merges, legacy=False)


@pytest.fixture(scope="session")
def tokenizers(zoo_tokenizer, legacy_tokenizer, vicuna_like_tokenizer):
    return {"zoo": zoo_tokenizer, "legacy": legacy_tokenizer, "vicuna_like": vicuna_like_tokenizer}
