"""Captions, detailed descriptions and reasoning Q&A about one easy-VQA image.

Every sentence follows from the image's facts (`easyvqa_facts`): its shape and colour from the
package's answers, and background, size and position read off the pixels.
"""

from __future__ import annotations

import random

from ablate.data.sources.easyvqa_facts import COLORS, Appearance, describe_background, describe_position, describe_size

CAPTION_PROMPTS = (
    "Describe the image concisely.",
    "Give a short caption for this image.",
    "Summarize the picture in a few words.",
    "What is in this image? Answer briefly.",
)
DETAIL_PROMPTS = (
    "Describe the image in detail.",
    "Give a detailed description of this image.",
    "Describe everything you can see in this picture.",
)
CORNERS = {"circle": 0, "triangle": 3, "rectangle": 4}
_GEOMETRY = {
    "circle": "A circle is bounded by one curved edge, so it has no straight sides and no corners.",
    "triangle": "A triangle has three straight sides that meet at three corners.",
    "rectangle": "A rectangle has four straight sides that meet at four corners.",
}


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(shape: str | None, color: str | None) -> str:
    """'A blue circle.'; whatever is unknown is left out ('A blue shape.')."""
    noun = shape or "shape"
    words = f"{color} {noun}" if color else noun
    return f"{article(words).capitalize()} {words}."


def detail(shape: str, color: str, look: Appearance) -> str:
    """A few sentences: what the shape is, the background, its size and place, its geometry."""
    background = describe_background(look.background)
    return " ".join([
        f"The image shows a single {color} {shape} on {article(background)} {background} background.",
        f"The {shape} is {describe_size(look.extent)} and sits {describe_position(look.center)}.",
        _GEOMETRY[shape],
        "There is no other shape, text or object in the image.",
    ])


def reasoning(shape: str, color: str, rng: random.Random) -> tuple[str, str, str]:
    """(question, explained answer, short answer) needing one step beyond seeing the shape."""
    kind = rng.randrange(3)
    seen = f"The image shows {article(color)} {color} {shape}."
    corners = CORNERS[shape]
    if kind == 0:
        short = "yes" if corners else "no"
        return ("Does the shape in the image have any corners?",
                f"{seen} {_GEOMETRY[shape]} So the answer is {short}.", short)
    if kind == 1:
        return ("How many corners does the shape in the image have?",
                f"{seen} {_GEOMETRY[shape]} So the answer is {corners}.", str(corners))
    asked = color if rng.random() < 0.5 else rng.choice([c for c in COLORS if c != color])
    straight = shape != "circle"
    short = "yes" if asked == color and straight else "no"
    color_step = (f"Its color is {asked}" if asked == color else f"Its color is {color}, not {asked}")
    side_step = ("and it has straight sides" if straight else "and a circle has no straight sides")
    return (f"Is there {article(asked)} {asked} shape with straight sides in the image?",
            f"{seen} {color_step}, {side_step}. So the answer is {short}.", short)
