"""Language pretraining for the zoo's tiny Llama: a stand-in for Vicuna's pretrained weights.

LLaVA starts from a pretrained LLM that already reads negation and can match a word against
another. A randomly initialised tiny Llama has to find those skills in the instruction data,
and easy-VQA's yes/no questions make that an XOR: the answer flips with "is the named colour
or shape there?" and again with "is the question negated?", and neither half alone predicts it.
Measured, a random tiny Llama stays on the prior ("the named thing is absent", 0.825 on yes/no)
for the whole instruction stage.

This trains the LM with next-token prediction, one document per row, on plain text about the
easy-VQA *train* images, each image written as words instead of pixels: a short description,
then one of the package's own questions about it and its answer, a multiple-choice question
whose answer is the letter of the matching option, or plain "is there a <named> shape?"
questions that name the image's own colour or shape half the time. No test image or question is
read, and no prompt format of ablate's templates or answer formats is used. Training runs on
transformers' Trainer.

With `recall_share` (the `tiny-llama-easyvqa-recall` entry, which continues from
`tiny-llama-easyvqa`'s weights) that share of the documents puts a passage of 3 to 9 unrelated
sentences (about 30 to 150 tokens, not scored) between the description and its questions, so the
answer has to be read from further back: as a ScienceQA solution written after its lecture has to
read the question. Without it, documents are 18 to 47 tokens long (30 on
average); with a share of 0.5, 78 on average and up to about 200.

With `copy_share` (the `tiny-llama-easyvqa-copy` entry) that share of the documents are
`copy_document`s instead: names, numbers and words (the embedded ScienceQA's) stated, mostly a
passage, then a question answered by copying one of them back.

What each choice bought, by `benchmarks/zoo_lm_probe.py` (the yes/no questions of 400 test
images written as text; 0.825 is the "absent" prior) after 1,000 steps: rows packed with several
documents and only the package's own questions, 0.825 (it answered every question "absent");
one document per row, 0.903 on the first 150 images (it compared shapes but not colours); with
the presence questions, 1.000 in every case (named thing present or absent, question negated or
plain, shape or colour).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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
    batch_size: int = 64  # documents per step, each its own padded row
    # Share of documents with a passage of unrelated sentences between the description and its
    # questions, so the question is answered from text 30 to 150 tokens back (0: none, as before).
    recall_share: float = 0.0
    # Share of documents that state who has what, then (mostly after a passage) ask for one of the
    # names, numbers or words stated, answered by copying it (0: none). See `copy_document`.
    copy_share: float = 0.0


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


# Sentences that say nothing about a shape or a colour, for the passage of a recall document.
PASSAGE_SENTENCES = (
    "Plants need water, air and light to grow.",
    "A day has twenty four hours.",
    "Rocks are made of one or more minerals.",
    "Sound travels through air as a wave.",
    "Ice melts when it gets warm.",
    "Many animals sleep during the day and hunt at night.",
    "A magnet pulls on things made of iron.",
    "The moon goes around the earth.",
    "Scientists measure mass in grams and kilograms.",
    "Water boils when it is heated enough.",
    "Seeds grow into new plants.",
    "Fish use their gills to breathe under water.",
    "A map shows where places are.",
    "Birds build nests to keep their eggs safe.",
    "Wind is air that moves.",
    "Every year has four seasons.",
    "A thermometer measures temperature.",
    "Some animals live in the ocean and some live on land.",
    "People use tools to make work easier.",
    "Rain falls from clouds.",
    "A river carries water to the sea.",
    "Offspring inherit traits from their parents.",
    "A solid keeps its own size.",
    "Heat moves from warmer things to cooler things.",
    "Most plants make their food from sunlight.",
    "A year is the time the earth takes to go around the sun.",
    "Scientists test a hypothesis with an experiment.",
    "Metal is a good conductor of electricity.",
    "A compass needle points north.",
    "Paper is made from wood.",
)
PASSAGE_LENGTH = (3, 9)  # sentences: about 30 to 150 tokens, a lecture's length (54 to 130)

# Shares of the three kinds of document (the rest: one of the image's own questions).
PRESENCE_SHARE, CHOICE_SHARE = 0.5, 0.125
PRESENCE_QUESTIONS = 2  # yes/no questions per presence document


def documents(facts: list[tuple[str, str, list[tuple[str, str]]]], seed: int,
              recall_share: float = 0.0, copy_share: float = 0.0) -> Iterator[str]:
    """An endless, seeded stream of short documents about the described images: a description,
    then one of the image's own questions, a multiple-choice question, or presence questions.
    A `recall_share` of them put a passage of unrelated sentences before the questions; a
    `copy_share` of all documents are `copy_document`s instead."""
    from ablate.data.sources.easyvqa_text import article

    rng = random.Random(seed)
    templates = presence_templates(facts)
    words = copy_words() if copy_share else ()
    while True:
        # Drawn only when asked for, so copy_share 0 gives the same stream as before it existed.
        if copy_share and rng.random() < copy_share:
            yield copy_document(rng, words)
            continue
        shape, color, qas = facts[rng.randrange(len(facts))]
        a = article(color)
        description = rng.choice(DESCRIPTIONS).format(A=a.capitalize(), a=a, color=color, shape=shape)
        kind = rng.random()
        if kind < PRESENCE_SHARE and any(templates.values()):
            pairs = [presence_question(shape, color, templates, rng) for _ in range(PRESENCE_QUESTIONS)]
        elif kind < PRESENCE_SHARE + CHOICE_SHARE:
            pairs = [choice_question(shape, color, rng)]
        else:
            pairs = [qas[rng.randrange(len(qas))]]
        # Drawn only when asked for, so recall_share 0 gives the same stream as before it existed.
        if recall_share and rng.random() < recall_share:
            description += "\n" + " ".join(rng.sample(PASSAGE_SENTENCES, rng.randint(*PASSAGE_LENGTH)))
        yield description + "".join(f"\nQ: {question}\nA: {answer}" for question, answer in pairs)


COPY_FACTS = (2, 4)  # facts per copy document
COPY_PASSAGE_SHARE = 0.75  # copy documents with a passage between the facts and the question


def copy_words() -> tuple[str, ...]:
    """Words a copy document states: every lowercase word of three letters or more in the
    embedded ScienceQA's text (`ablate.zoo.corpus.scienceqa_corpus`), sorted."""
    from ablate.zoo.corpus import scienceqa_corpus

    return tuple(sorted({w for line in scienceqa_corpus() for w in re.findall(r"\b[a-z]{3,}\b", line)}))


def copy_document(rng: random.Random, words: tuple[str, ...]) -> str:
    """"Tom has 23 kettle. Mei picked violin." and so on, then (mostly after a passage of
    unrelated sentences) one question whose answer is a name, number or word stated there.

    Why: a ScienceQA solution copies the problem's names, amounts and option words from 60 to 200
    tokens back, across its lecture. Easy-VQA documents only ever name one of 8 colours and 3
    shapes, which a model can recall without reading; copying an arbitrary word from far back
    (what an LLM's pretraining on real text teaches) it never has to learn. Measured: README,
    "scienceqa_format at tiny scale"."""
    from ablate.scienceqa.families import NAMES

    names = rng.sample(NAMES, rng.randint(*COPY_FACTS))
    stated = [(name, rng.randint(1, 30), rng.choice(words)) for name in names]
    text = " ".join(f"{name} has {n} {word}." if i % 2 == 0 else f"{name} picked {word}."
                    for i, (name, n, word) in enumerate(stated))
    if rng.random() < COPY_PASSAGE_SHARE:
        text += "\n" + " ".join(rng.sample(PASSAGE_SENTENCES, rng.randint(*PASSAGE_LENGTH)))
    i = rng.randrange(len(stated))
    name, n, word = stated[i]
    if i % 2:
        question, answer = f"Which word did {name} pick?", word
    else:
        question, answer = rng.choice([(f"How many {word} does {name} have?", str(n)),
                                       (f"Who has {n} {word}?", name)])
    return f"{text}\nQ: {question}\nA: {answer}"


def presence_templates(facts) -> dict[str, list[str]]:
    """The plain (not negated) yes/no question forms of the facts' own questions, with the named
    shape or colour as a slot: {"shape": ["is there a {shape}?", ...], "color": ["is a {color} shape present?", ...]}."""
    from ablate.data.sources.easyvqa_facts import COLORS, SHAPES, is_negated

    color_slot = re.compile(r"\b(" + "|".join(COLORS) + r") shape\b")
    shape_slot = re.compile(r"\b(" + "|".join(SHAPES) + r")\b")
    forms: dict[str, set[str]] = {"shape": set(), "color": set()}
    for _, _, qas in facts:
        for question, answer in qas:
            if answer in ("yes", "no") and not is_negated(question):
                form = shape_slot.sub("{shape}", color_slot.sub("{color} shape", question))
                forms["color" if "{color}" in form else "shape"].add(form)
    return {slot: sorted(found) for slot, found in forms.items()}


def presence_question(shape: str, color: str, templates: dict[str, list[str]], rng: random.Random) -> tuple[str, str]:
    """"Is there a <named> shape?" about the shape or the colour, naming the image's own half the
    time: answered yes exactly when the named thing is in the description.

    Why: in easy-VQA's own yes/no questions the answer is an XOR of "is the named thing there?" and
    "is the question negated?", and 7 in 8 colour questions name an absent colour. Negation alone
    then predicts the answer 82% of the time, and presence alone predicts nothing, so gradient
    descent learns negation and stays there (and with presence balanced *and* negated questions
    mixed in, neither half predicts anything). Plain questions with presence balanced give the
    comparison a signal of its own; the image's own questions teach negation beside them."""
    slot = rng.choice([slot for slot in ("shape", "color") if templates[slot]])
    truth, pool = _value_and_choices(slot == "color", shape, color)
    present = rng.random() < 0.5
    named = truth if present else rng.choice([value for value in pool if value != truth])
    return rng.choice(templates[slot]).format(**{slot: named}), "yes" if present else "no"


def choice_question(shape: str, color: str, rng: random.Random) -> tuple[str, str]:
    """A multiple-choice question on the colour or the shape, answered with the right option's letter."""
    asks_color = rng.random() < 0.5
    right, pool = _value_and_choices(asks_color, shape, color)
    count = rng.randint(2, min(5, len(pool)))
    options = [right, *rng.sample([x for x in pool if x != right], count - 1)]
    rng.shuffle(options)
    listed = " ".join(f"({LETTERS[i]}) {option}" for i, option in enumerate(options))
    question = "What color is the shape?" if asks_color else "Which shape is it?"
    return f"{question} {listed}", LETTERS[options.index(right)]


def _value_and_choices(of_color: bool, shape: str, color: str) -> tuple[str, tuple[str, ...]]:
    """The image's colour and every easy-VQA colour, or its shape and every shape."""
    from ablate.data.sources.easyvqa_facts import COLORS, SHAPES

    return (color, COLORS) if of_color else (shape, SHAPES)


class DocumentRows(IterableDataset):
    """Each document as its own row, `<s> text </s>`, starting at the first position; a recall
    document's passage is read but not scored (labels -100).

    Not packed: the VLM later sees every sample alone from position 0, and in rows packed with
    other documents the model has to find which description a question is about among several
    (measured in the module's docstring). Passages unscored: scored, they are most of the tokens,
    and a model pretrained that way (1,000 steps from random weights) answered every probe
    question with the "absent" prior, with or without a passage."""

    def __init__(self, docs: Iterator[str], tokenizer):
        self.docs, self.tokenizer = docs, tokenizer

    def __iter__(self) -> Iterator[dict[str, list[int]]]:
        for doc in self.docs:
            encoded = self.tokenizer(doc, return_offsets_mapping=True)
            ids = encoded.input_ids + [self.tokenizer.eos_token_id]
            start, end = passage_span(doc)
            labels = [-100 if start <= a and b <= end and b > a else i
                      for i, (a, b) in zip(encoded.input_ids, encoded.offset_mapping)]
            yield {"input_ids": ids, "labels": labels + [self.tokenizer.eos_token_id]}


def passage_span(doc: str) -> tuple[int, int]:
    """Character span of a recall document's passage (its second line when that is not a
    question), with the newline before it; (0, 0) for a document without one."""
    description, _, rest = doc.partition("\n")
    passage = rest.split("\n", 1)[0]
    if not rest or passage.startswith("Q: "):
        return 0, 0
    return len(description), len(description) + 1 + len(passage)


def pretrain_llama(model, tokenizer, settings: TextPretrainSettings, seed: int, out: Path, progress=None,
                   label: str = "pretrain") -> None:
    """Train `model` (a LlamaForCausalLM using `tokenizer`) on `documents`; save both into `out`."""
    from transformers import DataCollatorForSeq2Seq

    dataset = DocumentRows(documents(image_facts("train"), seed, settings.recall_share, settings.copy_share),
                           tokenizer)
    # transformers' padding collator: input ids padded with the pad token, labels with -100 (not scored)
    collate = DataCollatorForSeq2Seq(tokenizer, padding=True, return_tensors="pt")
    train_and_save(model, tokenizer, dataset, settings, seed, out, progress, label, data_collator=collate,
                   remove_unused_columns=False)
