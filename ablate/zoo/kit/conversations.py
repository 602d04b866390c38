"""The turns of the kit's LLaVA-format records, each true of its picture (ablate's own wording).

Records follow LLaVA's conventions: `{"from": "human" | "gpt", "value": ...}` turns, `<image>`
in the first human turn (before or after the text, as the released files vary it), and
LLaVA-1.5's short-answer instruction on VQA-style questions.
"""

from __future__ import annotations

import random

from ablate.zoo.kit.pictures import NUMBERS, Picture

IMAGE = "<image>"
SHORT_ANSWER = "Answer the question using a single word or phrase."
BRIEF_PROMPTS = ("Give a short caption for this picture.", "What is in this image? Answer briefly.",
                 "Write a one-line description of the image.", "Summarise the picture in a few words.")
DETAIL_PROMPTS = ("Describe the image in detail.", "Tell me everything you can see in this picture.")


def turn(speaker: str, value: str) -> dict[str, str]:
    return {"from": speaker, "value": value}


def with_image(text: str, rng: random.Random) -> str:
    """`text` with the image token before or after it, as LLaVA's files place it."""
    return f"{IMAGE}\n{text}" if rng.random() < 0.5 else f"{text}\n{IMAGE}"


def question_answers(picture: Picture) -> list[tuple[str, str, str]]:
    """(question, full answer, short answer) pairs that hold for `picture`."""
    count = len(picture.things)
    pairs = [("How many shapes are in the image?", f"There {'is' if count == 1 else 'are'} {NUMBERS[count]} "
              f"shape{'s' if count != 1 else ''}.", str(count)),
             ("What colour is the background?", f"The background is {picture.background}.", picture.background)]
    for thing in picture.things:
        pairs.append((f"What colour is the {thing.shape}?", f"The {thing.shape} is {thing.color}.", thing.color))
        pairs.append((f"Where is the {thing.name}?", f"It is in the {thing.place()} of the image.", thing.place()))
    return pairs


def caption_turns(picture: Picture, rng: random.Random) -> list[dict[str, str]]:
    return [turn("human", with_image(rng.choice(BRIEF_PROMPTS), rng)), turn("gpt", picture.caption())]


def conversation_turns(picture: Picture, rng: random.Random, rounds: int = 2) -> list[dict[str, str]]:
    pairs = rng.sample(question_answers(picture), min(rounds, len(question_answers(picture))))
    turns = []
    for i, (question, answer, _) in enumerate(pairs):
        turns += [turn("human", with_image(question, rng) if i == 0 else question), turn("gpt", answer)]
    return turns


def detail_turns(picture: Picture, rng: random.Random) -> list[dict[str, str]]:
    return [turn("human", with_image(rng.choice(DETAIL_PROMPTS), rng)), turn("gpt", picture.describe())]


def reasoning_turns(picture: Picture, rng: random.Random) -> list[dict[str, str]]:
    first = min(picture.things, key=lambda t: t.box[0])
    question = "Reading the picture from left to right, which shape comes first, and how can you tell?"
    answer = (f"The {first.name} comes first: it sits furthest to the left, in the {first.place()} of the "
              f"image, so a reader scanning from the left meets it before the others.")
    return [turn("human", with_image(question, rng)), turn("gpt", answer)]


def short_answer_turns(picture: Picture, rng: random.Random, rounds: int = 2) -> list[dict[str, str]]:
    """VQA-style turns with LLaVA-1.5's short-answer instruction (GQA, VQAv2, OCR-VQA in mix665k)."""
    pairs = rng.sample(question_answers(picture), min(rounds, len(question_answers(picture))))
    turns = []
    for i, (question, _, short) in enumerate(pairs):
        text = f"{question}\n{SHORT_ANSWER}"
        turns += [turn("human", f"{IMAGE}\n{text}" if i == 0 else text), turn("gpt", short)]
    return turns


def ocr_turns(picture: Picture) -> list[dict[str, str]]:
    return [turn("human", f"{IMAGE}\nWhat is the title of this book?\n{SHORT_ANSWER}"), turn("gpt", picture.text or ""),
            turn("human", "Is this a cookbook?"), turn("gpt", "No")]


def region_turns(picture: Picture) -> list[dict[str, str]]:
    """Visual Genome-style grounding: a region's description and its box, as in mix665k."""
    thing = picture.things[0]
    return [turn("human", f"{IMAGE}\nPlease give the bounding box of the region this sentence describes: "
                          f"a {thing.name}."), turn("gpt", "[" + ", ".join(f"{v:.2f}" for v in thing.box) + "]")]
