"""Language pretraining for the zoo's tiny Llama: a stand-in for Vicuna's pretrained weights.

LLaVA starts from a pretrained LLM that already reads negation and can match a word against
another. A randomly initialised tiny Llama has to find those skills in the instruction data,
and easy-VQA's yes/no questions make that an XOR: the answer flips with "is the named colour
or shape there?" and again with "is the question negated?", and neither half alone predicts it.
Measured, a random tiny Llama stays on the prior ("the named thing is absent", 0.825 on yes/no)
for the whole instruction stage.

This trains the LM the way LLMs are pretrained, next-token prediction on packed text, on
plain text about the easy-VQA *train* images, each image written as words instead of pixels:
a short description, then one of the package's own questions about it and its answer, or a
multiple-choice question whose answer is the letter of the matching option. No test image or
question is read, and no prompt format of ablate's templates or answer formats is used.
Training runs on transformers' Trainer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import IterableDataset

from ablate.zoo.pretrain import PretrainSettings, train_and_save

DESCRIPTIONS = ("{A} {color} {shape}.", "The picture shows {a} {color} {shape}.", "There is {a} {color} {shape}.",
                "This is {a} {color} {shape}.")
LETTERS = "ABCDE"


@dataclass(frozen=True)
class TextPretrainSettings(PretrainSettings):
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    batch_size: int = 16
    block_size: int = 128  # tokens per packed training row


def image_facts(split: str = "train") -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(shape, colour, [(question, answer)]) per easy-VQA image of `split` whose facts are known."""
    from ablate.data.sources.easyvqa import load_split
    from ablate.data.sources.easyvqa_facts import shape_and_color

    by_image, paths = load_split(split)
    facts = []
    for image_id in sorted(by_image):
        qas = [(q, a) for _, q, a in by_image[image_id]]
        shape, color = shape_and_color(qas, paths[image_id])
        if shape is not None and color is not None:
            facts.append((shape, color, qas))
    return facts


def documents(facts: list[tuple[str, str, list[tuple[str, str]]]], seed: int) -> Iterator[str]:
    """An endless, seeded stream of short documents about the described images."""
    from ablate.data.sources.easyvqa_facts import COLORS, SHAPES
    from ablate.data.sources.easyvqa_text import article

    rng = random.Random(seed)
    while True:
        shape, color, qas = facts[rng.randrange(len(facts))]
        a = article(color)
        description = rng.choice(DESCRIPTIONS).format(A=a.capitalize(), a=a, color=color, shape=shape)
        if rng.random() < 0.75:
            question, answer = qas[rng.randrange(len(qas))]
            yield f"{description}\nQ: {question}\nA: {answer}"
            continue
        asks_color = rng.random() < 0.5
        right, pool = (color, COLORS) if asks_color else (shape, SHAPES)
        count = rng.randint(2, min(5, len(pool)))
        options = [right, *rng.sample([x for x in pool if x != right], count - 1)]
        rng.shuffle(options)
        listed = " ".join(f"({LETTERS[i]}) {option}" for i, option in enumerate(options))
        question = "What color is the shape?" if asks_color else "Which shape is it?"
        yield f"{description}\nQ: {question} {listed}\nA: {LETTERS[options.index(right)]}"


class PackedText(IterableDataset):
    """Documents as `<s> text </s>`, concatenated and cut into rows of `block_size` tokens."""

    def __init__(self, docs: Iterator[str], tokenizer, block_size: int):
        self.docs, self.tokenizer, self.block_size = docs, tokenizer, block_size

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        buffer: list[int] = []
        for doc in self.docs:
            buffer += self.tokenizer(doc).input_ids + [self.tokenizer.eos_token_id]
            while len(buffer) >= self.block_size:
                row = torch.tensor(buffer[: self.block_size])
                buffer = buffer[self.block_size :]
                yield {"input_ids": row, "labels": row}


def pretrain_llama(model, tokenizer, settings: TextPretrainSettings, seed: int, out: Path, progress=None,
                   label: str = "pretrain") -> None:
    """Train `model` (a LlamaForCausalLM using `tokenizer`) on `documents`; save both into `out`."""
    dataset = PackedText(documents(image_facts("train"), seed), tokenizer, settings.block_size)
    train_and_save(model, tokenizer, dataset, settings, seed, out, progress, label)
