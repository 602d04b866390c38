"""Tokenizers for the template tests.

- zoo: ablate's own tiny tokenizer (Metaspace prepend "first", i.e. legacy=False).
- vicuna: checkpoints laid out like lmsys' Vicuna repos (`tokenizer.model` only), with a
  SentencePiece model trained here, loaded through ablate's LLM loader, each next to the slow
  tokenizer LLaVA would use on the same `tokenizer.model` (llava_reference.SlowLlamaTokenizer):
  - "v1.5": "legacy": false; "legacy_true": "legacy": true; "v1.3": no "legacy" (the slow
    tokenizer then means legacy=True).
  Like Llama's vocabulary, the trained one has "USER" but not "▁USER", so "USER" alone
  tokenizes to one token more ("▁", "USER") than right after "</s>" in non-legacy mode: the
  case LLaVA's non-legacy "-1" adjustment was written for.
- vicuna_mismatch: "legacy": false with "▁USER" a piece, so that adjustment is wrong and LLaVA
  masks every multi-turn sample.
"""

from __future__ import annotations

import json
import random

import pytest

from llava_reference import SYSTEM, SlowLlamaTokenizer

QUESTIONS = ("What is this?", "What shape is in the image?", "What color is it?", "How many are there?",
             "Describe the image in detail.", "Is there a square?", "Name a colour.")
ANSWERS = ("A circle.", "It is red.", "There are 3 shapes.", "Yes, there are two squares.", "Green.",
           "A blue triangle on a white background.", "The image shows 12 small squares.")
# (tokenizer_config.json "legacy", what the slow tokenizer makes of it)
VICUNA_VARIANTS = {"v1.5": (False, False), "legacy_true": (True, True), "v1.3": (None, True)}


def vicuna_corpus(user_after_space: bool) -> list[str]:
    """Conversations and loose sentences; "USER" follows a space only when asked to."""
    rng = random.Random(0)
    opening = " " if user_after_space else "</s>"
    lines = []
    for _ in range(400):
        q, a, q2, a2 = rng.choice(QUESTIONS), rng.choice(ANSWERS), rng.choice(QUESTIONS), rng.choice(ANSWERS)
        lines.append(f"{SYSTEM}{opening}USER: {q} ASSISTANT: {a}</s>USER: {q2} ASSISTANT: {a2}</s>")
        lines.append(f"{q} {a} " + " ".join(rng.sample((a + " " + q).split(), 3)))
    return lines


def _vicuna_folder(root, name, corpus, legacy):
    from ablate.zoo.hub_layouts import write_vicuna_like
    from ablate.zoo.tokenizer import train_sentencepiece

    model = train_sentencepiece(corpus, root / f"{name}.model")
    version = "v1.3" if legacy is None else "v1.5"
    return write_vicuna_like(root / name, model, version=version, legacy=legacy)


def _load(folder):
    from ablate.registry import registries

    return registries().llm.get("hf_causal_lm").build({"name_or_path": str(folder)}).tokenizer


@pytest.fixture(scope="session")
def vicuna(tmp_path_factory):
    """name -> (ablate's tokenizer, the slow reference) for each VICUNA_VARIANTS entry."""
    root = tmp_path_factory.mktemp("vicuna")
    corpus = vicuna_corpus(user_after_space=False)
    out = {}
    for name, (configured, slow_legacy) in VICUNA_VARIANTS.items():
        folder = _vicuna_folder(root, name, corpus, configured)
        out[name] = (_load(folder), SlowLlamaTokenizer(folder / "tokenizer.model", legacy=slow_legacy))
    return out


@pytest.fixture(scope="session")
def vicuna_mismatch(tmp_path_factory):
    folder = _vicuna_folder(tmp_path_factory.mktemp("vicuna"), "mismatch", vicuna_corpus(True), False)
    return _load(folder), SlowLlamaTokenizer(folder / "tokenizer.model", legacy=False)


@pytest.fixture(scope="session")
def zoo_tokenizer():
    from ablate.zoo.tokenizer import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="session")
def zoo_pieces(zoo_tokenizer):
    model = json.loads(zoo_tokenizer.backend_tokenizer.to_str())["model"]
    return dict(model["vocab"]), [tuple(m) for m in model["merges"]]
