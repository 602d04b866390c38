"""Checkpoint folders laid out like lmsys' Vicuna repos, with a SentencePiece model trained here.

- VICUNA_VARIANTS: "v1.5": "legacy": false; "legacy_true": "legacy": true; "v1.3": no "legacy"
  (the slow tokenizer then means legacy=True).
- `vicuna_corpus`: like Llama's vocabulary, the trained one has "USER" but not "▁USER" unless
  `user_after_space`, so "USER" alone tokenizes to one token more ("▁", "USER") than right after
  "</s>" in non-legacy mode: the case LLaVA's non-legacy "-1" adjustment was written for.
"""

from __future__ import annotations

import random

from llava_reference import SYSTEM

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


def vicuna_folder(root, name, corpus, legacy):
    from ablate.zoo.hub_layouts import write_vicuna_like
    from ablate.zoo.tokenizer import train_sentencepiece

    model = train_sentencepiece(corpus, root / f"{name}.model")
    version = "v1.3" if legacy is None else "v1.5"
    return write_vicuna_like(root / name, model, version=version, legacy=legacy)


def load_tokenizer(folder):
    """The tokenizer ablate's LLM loader gives for `folder`."""
    from ablate.registry import registries

    return registries().llm.get("hf_causal_lm").build({"name_or_path": str(folder)}).tokenizer
