"""Generated pictures for the rehearsal kit's data sets, and what can truly be said about each.

A picture is a few coloured shapes on a plain background, at one of several sizes and aspect
ratios (so resizing, cropping and padding all have work to do). Everything is drawn from a
seeded RNG: the same index always gives the same picture and the same texts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

SHAPES = ("circle", "square", "triangle")
COLORS = {"red": (200, 40, 40), "green": (40, 160, 70), "blue": (40, 70, 200), "yellow": (225, 200, 40)}
BACKGROUNDS = {"white": (245, 245, 245), "gray": (130, 130, 130), "black": (20, 20, 20)}
SIZES = ((96, 64), (64, 96), (80, 80), (112, 72))  # width x height
NUMBERS = ("no", "one", "two", "three")


@dataclass(frozen=True)
class Thing:
    shape: str
    color: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the width and height

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    def place(self) -> str:
        x, y = (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2
        row = "top" if y < 0.4 else "bottom" if y > 0.6 else "middle"
        column = "left" if x < 0.4 else "right" if x > 0.6 else "centre"
        return f"{row} {column}"


@dataclass(frozen=True)
class Picture:
    size: tuple[int, int]
    background: str
    things: tuple[Thing, ...]
    text: str | None = None  # a title printed on the picture (OCR-style data)

    def caption(self) -> str:
        names = " and ".join(f"a {t.name}" for t in self.things)
        title = f" under the words \"{self.text}\"" if self.text else ""
        return f"{names}{title} on a {self.background} background"

    def describe(self) -> str:
        """A few true sentences: what a detailed description should state."""
        count = NUMBERS[len(self.things)] if len(self.things) < len(NUMBERS) else str(len(self.things))
        lines = [f"The image shows {count} shape{'s' if len(self.things) != 1 else ''} on a {self.background} background."]
        lines += [f"The {t.name} is in the {t.place()}." for t in self.things]
        if self.text:
            lines.append(f"The words \"{self.text}\" are printed across the top.")
        return " ".join(lines)

    def draw(self):
        from PIL import Image, ImageDraw

        image = Image.new("RGB", self.size, BACKGROUNDS[self.background])
        pen = ImageDraw.Draw(image)
        width, height = self.size
        for thing in self.things:
            x0, y0, x1, y1 = (round(v * s) for v, s in zip(thing.box, (width, height, width, height)))
            fill = COLORS[thing.color]
            if thing.shape == "circle":
                pen.ellipse((x0, y0, x1, y1), fill=fill)
            elif thing.shape == "square":
                pen.rectangle((x0, y0, x1, y1), fill=fill)
            else:
                pen.polygon(((x0 + x1) // 2, y0, x1, y1, x0, y1), fill=fill)
        if self.text:
            pen.text((2, 1), self.text, fill=(0, 0, 0) if self.background == "white" else (255, 255, 255))
        return image

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.draw().save(path, quality=90)


def picture(index: int, *, seed: int | str = 0, text: str | None = None) -> Picture:
    """Picture number `index` of the kit: one to three shapes that do not overlap."""
    rng = random.Random(f"{seed}:{index}")
    count = rng.randint(1, 3)
    things = []
    for slot in range(count):  # one vertical band per shape: no overlaps
        left, right = slot / count, (slot + 1) / count
        x0 = left + rng.uniform(0.02, 0.1) * (right - left)
        x1 = right - rng.uniform(0.02, 0.1) * (right - left)
        y0 = rng.uniform(0.25, 0.45)
        things.append(Thing(rng.choice(SHAPES), rng.choice(sorted(COLORS)), (round(x0, 3), round(y0, 3),
                                                                             round(x1, 3), round(y0 + 0.4, 3))))
    return Picture(rng.choice(SIZES), rng.choice(sorted(BACKGROUNDS)), tuple(things), text)
