"""What is known about each easy-VQA image: from the package's own questions, else its pixels.

Every easy-VQA image holds one shape (circle, rectangle or triangle) in one of eight pure
colours on a light background. The package's questions and answers state the shape and
colour of most images; for the rest (about 7%) they follow from the pixels: the colour is the
palette colour present, the shape follows from how many corners of the shape's bounding box
it fills (4 rectangle, 2 triangle, 0 circle). The test suite checks that both ways agree.
"""

from __future__ import annotations

import colorsys
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

SHAPES = ("circle", "rectangle", "triangle")
PALETTE = {  # the exact RGB values easy-VQA draws with
    "red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "black": (0, 0, 0),
    "gray": (128, 128, 128), "teal": (0, 128, 128), "brown": (165, 42, 42), "yellow": (255, 255, 0),
}
COLORS = tuple(PALETTE)
_CORNERS_TO_SHAPE = {4: "rectangle", 2: "triangle", 0: "circle"}
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Appearance:
    """What the pixels show."""

    shape: str | None
    color: str | None
    background: tuple[int, int, int]
    center: tuple[float, float]  # (x, y) of the shape's box centre, as fractions of the image
    extent: float  # longest side of the shape's box, as a fraction of the image side


def question_type(answer: str) -> str:
    """easy-VQA's three question kinds, told apart by the answer."""
    if answer in SHAPES:
        return "shape"
    if answer in COLORS:
        return "color"
    return "yes/no"


def facts_from_questions(qas: Sequence[tuple[str, str]]) -> tuple[str | None, str | None]:
    """(shape, colour) stated or implied by one image's (question, answer) pairs; None if unknown.

    "what" questions name the answer and mention the other attribute ("what color is the
    triangle?"); yes/no questions say an attribute is present or absent ("is there not a red
    shape?" -> "no" means red); an attribute all but one of whose values are absent is known too.
    """
    shapes: dict[str, set[str]] = {"yes": set(), "no": set()}
    colors: dict[str, set[str]] = {"yes": set(), "no": set()}
    for question, answer in qas:
        words = _WORD.findall(question.lower())
        named_shapes = [w for w in words if w in SHAPES]
        named_colors = [w for w in words if w in COLORS]
        if words and words[0] == "what":  # the answer is the asked attribute
            if answer in SHAPES:
                shapes["yes"].add(answer)
            elif answer in COLORS:
                colors["yes"].add(answer)
            present = "yes"
        else:
            present = "yes" if names_present(question, answer) else "no"
        shapes[present].update(named_shapes)
        colors[present].update(named_colors)
    return _single(shapes, SHAPES), _single(colors, COLORS)


def is_negated(question: str) -> bool:
    """Whether a yes/no question asks about absence ("is there not a red shape?", "is no ...")."""
    words = _WORD.findall(question.lower())
    return "not" in words or words[:2] == ["is", "no"]


def names_present(question: str, answer: str) -> bool:
    """For a yes/no question: whether what it names is in the image (the answer, flipped when
    the question is negated)."""
    return (answer == "yes") != is_negated(question)


def shape_and_color(qas: Sequence[tuple[str, str]], path: str) -> tuple[str | None, str | None]:
    """(shape, colour) of one image: what its questions state, the rest read off its pixels.

    None where neither tells; raises ValueError when the answers contradict each other."""
    shape, color = facts_from_questions(qas)
    if shape is None or color is None:
        seen = look(path)
        shape, color = shape or seen.shape, color or seen.color
    return shape, color


def _single(seen: dict[str, set[str]], values: Sequence[str]) -> str | None:
    present, absent = seen["yes"], seen["no"]
    if len(present) > 1 or present & absent:
        raise ValueError(f"contradictory easy-VQA answers: present {sorted(present)}, absent {sorted(absent)}")
    if present:
        return next(iter(present))
    remaining = [v for v in values if v not in absent]
    return remaining[0] if len(remaining) == 1 else None


@lru_cache(maxsize=8192)
def look(path: str) -> Appearance:
    """Read the shape, colour, background, position and size off an easy-VQA image."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    palette = np.array(list(PALETTE.values()), dtype=np.int16)
    counts = (pixels[None] == palette[:, None, None]).all(-1).sum(axis=(1, 2))
    height, width = pixels.shape[:2]
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    values, freq = np.unique(border, axis=0, return_counts=True)
    background = tuple(int(v) for v in values[freq.argmax()])
    if counts.max() == 0:
        return Appearance(None, None, background, (0.5, 0.5), 0.0)
    color = COLORS[int(counts.argmax())]
    mask = (pixels == palette[counts.argmax()]).all(-1)
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    corners = int(sum(mask[y, x] for y in (y0, y1) for x in (x0, x1)))
    center = (float((x0 + x1 + 1) / 2 / width), float((y0 + y1 + 1) / 2 / height))
    extent = float(max(y1 - y0 + 1, x1 - x0 + 1) / max(height, width))
    return Appearance(_CORNERS_TO_SHAPE.get(corners), color, background, center, extent)


def describe_background(rgb: tuple[int, int, int]) -> str:
    """A name for a light background colour: 'white', 'light pink', 'light blue', ..."""
    r, g, b = (c / 255 for c in rgb)
    hue, saturation, value = colorsys.rgb_to_hsv(r, g, b)
    lightness = "light" if min(rgb) >= 200 else "muted"
    if saturation < 0.025:
        return "white" if value > 0.95 else f"{lightness} gray"
    degrees = hue * 360
    for limit, name in ((15, "pink"), (45, "peach"), (70, "cream"), (165, "green"),
                        (200, "cyan"), (255, "blue"), (320, "lavender"), (360, "pink")):
        if degrees < limit:
            return f"{lightness} {name}"
    return lightness


def describe_position(center: tuple[float, float]) -> str:
    x, y = center
    column = "left" if x < 0.4 else "right" if x > 0.6 else ""
    row = "upper" if y < 0.4 else "lower" if y > 0.6 else ""
    if column and row:
        return f"in the {row} {column} part of the image"
    if column:
        return f"on the {column} side of the image"
    if row:
        return "near the top of the image" if row == "upper" else "near the bottom of the image"
    return "near the center of the image"


def describe_size(extent: float) -> str:
    return "small" if extent < 0.3 else "medium-sized" if extent < 0.55 else "large"
