"""Question families of the embedded ScienceQA-format dataset.

Each family writes one multiple-choice problem (2-5 options) with a lecture (the general
rule) and a solution that explains this answer: it states what the picture or the text shows
and applies the rule, so reasoning-first and answer-first outputs differ in a real way.
Image families see an easy-VQA picture (one colored shape) through its `shape` and `color`.

    subject            context      families (grades)
    natural science    IMG          color_of_shape (1-3)
                       IMG+TXT      straight_sides (2-4), color_groups (7-9)
                       NO           paint_mixing (4-8)
                       TXT          light_mixing (8-11)
    social science     IMG+TXT      team_flags (2-5), map_key (7-10)
                       IMG          road_signs (1-4)
                       NO           opposite_direction (1-3)
                       TXT          money_left (3-8)
    language science   NO           word_category (1-3), guide_words (5-8)
                       IMG          describe_picture (1-3)
                       TXT          word_in_text (6-9)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

SHAPES = ("circle", "rectangle", "triangle")
COLORS = ("black", "blue", "brown", "gray", "green", "red", "teal", "yellow")
NAMES = ("Maria", "Leo", "Ana", "Sam", "Priya", "Omar", "Lena", "Kofi", "Mei", "Tom")


@dataclass(frozen=True)
class Picture:
    """An easy-VQA image: one shape of one color."""

    path: str
    shape: str
    color: str


@dataclass(frozen=True)
class Family:
    name: str
    needs_picture: bool
    make: Callable[[random.Random, Picture | None], dict[str, Any]]


def _options(rng: random.Random, answer: str, distractors, k: int) -> tuple[list[str], int]:
    pool = sorted({d for d in distractors if d != answer})
    choices = [answer, *rng.sample(pool, min(k - 1, len(pool)))]
    rng.shuffle(choices)
    return choices, choices.index(answer)


def _grade(rng: random.Random, low: int, high: int) -> str:
    return f"grade{rng.randint(low, high)}"


def _problem(question, choices, answer, hint, grade, subject, topic, category, skill, lecture, solution):
    return {
        "question": question, "choices": choices, "answer": answer, "hint": hint, "task": "closed choice",
        "grade": grade, "subject": subject, "topic": topic, "category": category, "skill": skill,
        "lecture": lecture, "solution": solution,
    }


def _listing(items: list[str]) -> str:
    """"x", "x and y", "x, y, and z"."""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + ("," if len(items) > 2 else "") + " and " + items[-1]


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


# --- natural science ------------------------------------------------------------------------


def color_of_shape(rng, pic):
    choices, answer = _options(rng, pic.color, COLORS, rng.randint(2, 5))
    return _problem(
        f"What color is the {pic.shape} in this picture?", choices, answer, "", _grade(rng, 1, 3),
        "natural science", "physics", "Color and light", "Identify the color of an object",
        "An object's color is the color of the light it reflects into your eyes. A red apple reflects "
        "red light, so it looks red.\nTo find the color of an object, look closely at the object itself, "
        "not at what is around it.",
        f"Look at the picture. The {pic.shape} is {pic.color}. So, the {pic.shape} in this picture is {pic.color}.",
    )


_SIDES = {"triangle": ("3", "three straight sides"), "rectangle": ("4", "four straight sides"),
          "circle": ("0", "no straight sides")}


def straight_sides(rng, pic):
    count, words = _SIDES[pic.shape]
    choices, answer = _options(rng, count, ("0", "3", "4", "5", "6"), rng.randint(2, 5))
    return _problem(
        "How many straight sides does the shape in the picture have?", choices, answer,
        "A triangle has three straight sides. A rectangle has four straight sides. A circle has no straight sides.",
        _grade(rng, 2, 4), "natural science", "science-and-engineering-practices", "Observe and count",
        "Count the sides of a shape",
        "Scientists describe things by observing them carefully. One way to describe a flat shape is to count "
        "its sides.\nA side is a straight edge of a shape. A curved edge is not a side.",
        f"Look at the picture. The shape is {_a(pic.shape)}. {_a(pic.shape).capitalize()} has {words}. "
        f"So, the shape in the picture has {count} straight sides.",
    )


_GROUPS = {"red": "warm", "yellow": "warm", "brown": "warm", "blue": "cool", "green": "cool", "teal": "cool",
           "black": "neutral", "gray": "neutral"}


def color_groups(rng, pic):
    group = _GROUPS[pic.color]
    choices, answer = _options(rng, f"{group} colors", ("warm colors", "cool colors", "neutral colors"),
                               rng.randint(2, 3))
    return _problem(
        "Which group of colors does the color of the shape in the picture belong to?", choices, answer,
        "Red, yellow, and brown are warm colors. Blue, green, and teal are cool colors. "
        "Black and gray are neutral colors.",
        _grade(rng, 7, 9), "natural science", "physics", "Warm and cool colors", "Sort colors into groups",
        "People sort colors into groups by how they look. Warm colors look like fire and sunlight. Cool colors "
        "look like water, ice, and plants. Neutral colors look neither warm nor cool.",
        f"Look at the picture. The {pic.shape} is {pic.color}. The text says that {pic.color} is a {group} color. "
        f"So, the color of the shape belongs to the {group} colors.",
    )


_PAINTS = {
    ("blue", "yellow"): ("green", "Blue and yellow are primary colors, and mixing these two primary colors "
                                  "makes the secondary color green."),
    ("red", "yellow"): ("orange", "Red and yellow are primary colors, and mixing these two primary colors "
                                  "makes the secondary color orange."),
    ("blue", "red"): ("purple", "Red and blue are primary colors, and mixing these two primary colors "
                                "makes the secondary color purple."),
    ("black", "white"): ("gray", "Mixing white into black paint makes it lighter, and light black is gray."),
    ("red", "white"): ("pink", "Mixing white into red paint makes it lighter, and light red is pink."),
    ("blue", "green"): ("teal", "Blue and green sit next to each other on the color wheel, and mixing them "
                                "makes the blue-green color teal."),
    ("green", "red"): ("brown", "Red and green sit opposite each other on the color wheel, and mixing "
                                "opposite colors makes a dull brown."),
}
_PAINT_COLORS = ("green", "orange", "purple", "gray", "pink", "teal", "brown", "red", "blue", "yellow",
                 "black", "white")


def paint_mixing(rng, _pic):
    pair = rng.choice(sorted(_PAINTS))
    result, reason = _PAINTS[pair]
    first, second = rng.sample(pair, 2)
    choices, answer = _options(rng, result, _PAINT_COLORS, rng.randint(2, 5))
    return _problem(
        f"What color do you get when you mix {first} paint with {second} paint?", choices, answer, "",
        _grade(rng, 4, 8), "natural science", "chemistry", "Mixtures", "Predict the color of a paint mixture",
        "A mixture is made of two or more substances mixed together. Paints get their colors from pigments, "
        "and when you mix two paints, the mixture has a new color.\nThe primary paint colors are red, yellow, "
        "and blue. Mixing two primary colors makes a secondary color. Mixing white into a paint makes a lighter "
        "color.",
        f"{reason} So, mixing {first} paint with {second} paint makes {result} paint.",
    )


_LIGHTS = {("green", "red"): "yellow", ("blue", "red"): "magenta", ("blue", "green"): "cyan"}


def light_mixing(rng, _pic):
    pair = rng.choice(sorted(_LIGHTS))
    result = _LIGHTS[pair]
    first, second = rng.sample(pair, 2)
    name = rng.choice(NAMES)
    choices, answer = _options(rng, result, ("yellow", "magenta", "cyan", "white", "black", "brown", "purple"),
                               rng.randint(2, 5))
    return _problem(
        "What color is the spot where the two lights overlap?", choices, answer,
        f"{name} shines a {first} flashlight and a {second} flashlight on the same spot of a white wall.",
        _grade(rng, 8, 11), "natural science", "physics", "Color and light", "Predict the color of mixed light",
        "Light mixes differently from paint. Red, green, and blue are the primary colors of light. When two "
        "colored lights shine on the same spot, their light adds together, so the spot looks brighter and has "
        "a new color.\nRed and green light make yellow. Red and blue light make magenta. Green and blue light "
        "make cyan.",
        f"The lights are {first} and {second}. When {first} light and {second} light add together, they make "
        f"{result} light. So, the spot where the two lights overlap is {result}.",
    )


# --- social science -------------------------------------------------------------------------

_TEAMS = ("Lions", "Eagles", "Bears", "Foxes", "Owls", "Sharks", "Wolves", "Hawks")
_DESIGNS = tuple((c, s) for c in COLORS for s in SHAPES)


def _designs(rng, pic, k):
    """k distinct (color, shape) designs, one of them the picture's, in random order."""
    truth = (pic.color, pic.shape)
    designs = [truth, *rng.sample([d for d in _DESIGNS if d != truth], k - 1)]
    rng.shuffle(designs)
    return designs, designs.index(truth)


def team_flags(rng, pic):
    k = rng.randint(2, 5)
    designs, answer = _designs(rng, pic, k)
    teams = rng.sample(_TEAMS, k)
    hint = "Each team at the school games has a flag with one colored shape. " + " ".join(
        f"The {t} flag has {_a(c)} {s}." for t, (c, s) in zip(teams, designs))
    team = teams[answer]
    return _problem(
        "Which team's flag is shown in the picture?", teams, answer, hint, _grade(rng, 2, 5),
        "social science", "civics", "Symbols", "Match a flag to its group",
        "A flag is a symbol. Teams, states, and countries use flags so that people can recognize them "
        "quickly.\nTo tell flags apart, compare their shapes and their colors.",
        f"Look at the picture. The flag shows {_a(pic.color)} {pic.shape}. The text says that the {team} flag "
        f"has {_a(pic.color)} {pic.shape}. So, the picture shows the {team} flag.",
    )


_PLACES = ("school", "park", "hospital", "library", "museum", "farm", "lake", "train station")


def map_key(rng, pic):
    k = rng.randint(2, 5)
    designs, answer = _designs(rng, pic, k)
    places = rng.sample(_PLACES, k)
    hint = "A map key tells what each symbol on a map means. On this map, " + _listing(
        [f"{_a(c)} {s} marks {_a(p)}" for p, (c, s) in zip(places, designs)]) + "."
    place = places[answer]
    return _problem(
        "What does the symbol in the picture mark on this map?", [_a(p) for p in places], answer, hint,
        _grade(rng, 7, 10), "social science", "geography", "Maps", "Use a map key",
        "A map is a drawing of a place. Maps use symbols, such as small colored shapes, to show where things "
        "are. The map key, or legend, lists each symbol and what it stands for.\nTo read a symbol, find the "
        "same shape with the same color in the map key.",
        f"Look at the picture. The symbol is {_a(pic.color)} {pic.shape}. The map key says that "
        f"{_a(pic.color)} {pic.shape} marks {_a(place)}. So, the symbol marks {_a(place)}.",
    )


_SIGNS = {"triangle": "yield sign", "rectangle": "speed limit sign", "circle": "railroad crossing sign"}


def road_signs(rng, pic):
    sign = _SIGNS[pic.shape]
    choices, answer = _options(rng, sign, (*_SIGNS.values(), "stop sign"), rng.randint(2, 4))
    return _problem(
        "Which traffic sign has the same shape as the shape in the picture?", choices, answer, "",
        _grade(rng, 1, 4), "social science", "civics", "Traffic safety", "Recognize traffic signs by shape",
        "Traffic signs help people travel safely. In the United States, each kind of sign has its own shape, "
        "so drivers can recognize a sign even from far away.\nA stop sign has eight sides. A yield sign is a "
        "triangle. A speed limit sign is a rectangle. A railroad crossing sign is a circle.",
        f"Look at the picture. The shape is {_a(pic.shape)}. A {sign} is shaped like {_a(pic.shape)}. "
        f"So, the {sign} has the same shape as the shape in the picture.",
    )


_OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}


def opposite_direction(rng, _pic):
    direction = rng.choice(sorted(_OPPOSITE))
    opposite = _OPPOSITE[direction]
    choices, answer = _options(rng, opposite, [d for d in _OPPOSITE if d != direction], rng.randint(2, 3))
    return _problem(
        f"Which direction is opposite to {direction}?", choices, answer, "", _grade(rng, 1, 3),
        "social science", "geography", "Cardinal directions", "Use cardinal directions",
        "A compass rose shows the four cardinal directions: north, east, south, and west.\nNorth and south "
        "point away from each other, so they are opposite directions. East and west are opposite directions too.",
        f"On a compass rose, {direction} and {opposite} point away from each other. So, the direction opposite "
        f"to {direction} is {opposite}.",
    )


_ITEMS = ("kite", "book", "ball", "scarf", "puzzle", "lamp", "plant", "notebook")


def money_left(rng, _pic):
    name, item = rng.choice(NAMES), rng.choice(_ITEMS)
    price = rng.randint(2, 12)
    money = price + rng.randint(1, 12)
    left = money - price
    wrong = {money + price, price, money, left + 1, left - 1, left + 2} - {left}
    choices, answer = _options(rng, f"${left}", [f"${v}" for v in wrong if v > 0], rng.randint(2, 5))
    return _problem(
        f"How much money does {name} have left?", choices, answer,
        f"{name} has ${money}. {name} buys a {item} that costs ${price}.",
        _grade(rng, 3, 8), "social science", "economics", "Budgeting", "Find the money left after buying",
        "When you buy something, you trade money for it. The money you have left is the money you started "
        "with minus the price of what you bought.",
        f"{name} starts with ${money} and spends ${price}. Subtract: ${money} - ${price} = ${left}. "
        f"So, {name} has ${left} left.",
    )


# --- language science -----------------------------------------------------------------------

_WORDS = {
    "shape": ("circle", "triangle", "rectangle", "square", "oval"),
    "color": ("red", "blue", "green", "yellow", "brown", "gray", "teal"),
    "animal": ("dog", "horse", "owl", "fish", "rabbit"),
    "food": ("apple", "bread", "soup", "rice", "pear"),
}


def word_category(rng, _pic):
    group = rng.choice(sorted(_WORDS))
    word = rng.choice(_WORDS[group])
    others = rng.sample([g for g in _WORDS if g != group], rng.randint(1, 3))
    distractors = {rng.choice(_WORDS[g]): g for g in others}
    choices, answer = _options(rng, word, distractors, len(distractors) + 1)
    explain = _listing([f"{w} names {_a(distractors[w])}" for w in choices if w != word])
    return _problem(
        f"Which word names {_a(group)}?", choices, answer, "", _grade(rng, 1, 3),
        "language science", "vocabulary", "Categories", "Sort words into groups",
        "Words can be sorted into groups by what they name. Some words name shapes, some name colors, some "
        "name animals, and some name foods.",
        f"{word.capitalize()} names {_a(group)}. The other choices do not: {explain}. So, the word that names "
        f"{_a(group)} is {word}.",
    )


_DICTIONARY = (
    "apple", "banana", "basket", "candle", "circle", "cloud", "desk", "dolphin", "eagle", "engine", "feather",
    "forest", "garden", "harbor", "island", "jacket", "kettle", "ladder", "lemon", "market", "meadow", "nest",
    "orange", "pencil", "pillow", "rabbit", "rectangle", "river", "saddle", "teal", "triangle", "tunnel",
    "violin", "wagon", "yellow", "zebra",
)


def guide_words(rng, _pic):
    words = sorted(_DICTIONARY)
    i = rng.randrange(1, len(words) - 1)  # the answer has a word on each side
    first = rng.randrange(max(0, i - 6), i)
    last = rng.randrange(i + 1, min(len(words), i + 7))
    outside = [w for j, w in enumerate(words) if j < first or j > last]
    word, low, high = words[i], words[first], words[last]
    other = rng.choice(outside)
    choices, answer = _options(rng, word, [other], 2)
    where = f"before {low}" if other < low else f"after {high}"
    return _problem(
        f"Which word would you find on a dictionary page with the following guide words?\n{low} - {high}",
        choices, answer, "", _grade(rng, 5, 8), "language science", "reference-skills", "Use guide words",
        "Use guide words to find words in a dictionary",
        "Guide words are printed at the top of each dictionary page. They are the first word and the last word "
        "on that page, and every other word on the page comes between them in alphabetical order.\nTo put words "
        "in alphabetical order, compare their first letters. If the first letters are the same, compare the "
        "next letters.",
        f"In alphabetical order, {word} comes after {low} and before {high}, so it is on the page. "
        f"{other.capitalize()} comes {where}, so it is not. So, you would find {word} on the page.",
    )


def describe_picture(rng, pic):
    other_color = rng.choice([c for c in COLORS if c != pic.color])
    other_shape = rng.choice([s for s in SHAPES if s != pic.shape])
    true = f"The {pic.shape} is {pic.color}."
    wrong = [f"The {pic.shape} is {other_color}.", f"The {other_shape} is {pic.color}.",
             f"The {other_shape} is {other_color}."]
    choices, answer = _options(rng, true, wrong, rng.randint(2, 4))
    return _problem(
        "Which sentence describes the picture?", choices, answer, "", _grade(rng, 1, 3),
        "language science", "writing-strategies", "Describe a picture", "Choose the sentence that fits a picture",
        "A sentence describes a picture when everything it says can be seen in the picture. Check each detail "
        "of the sentence, such as a thing's shape and its color, against the picture.",
        f"Look at the picture. It shows {_a(pic.color)} {pic.shape}. The sentence \"{true}\" names the right "
        f"shape and the right color. So, it is the sentence that describes the picture.",
    )


_THINGS = ("kite", "cup", "boat", "hat", "bird", "star")
_VERBS = ("drew", "painted", "found", "made")


def word_in_text(rng, _pic):
    name, color, shape = rng.choice(NAMES), rng.choice(COLORS), rng.choice(SHAPES)
    thing, verb = rng.choice(_THINGS), rng.choice(_VERBS)
    asked = rng.choice(("color", "shape"))
    word = color if asked == "color" else shape
    jobs = {color: "names a color", shape: "names a shape", thing: "names a thing", verb: "names an action"}
    distractors = rng.sample([w for w in jobs if w != word], rng.randint(1, 3))
    choices, answer = _options(rng, word, distractors, len(distractors) + 1)
    explain = _listing([f"{w} {jobs[w]}" for w in choices if w != word])
    return _problem(
        f"Which word in the text names {_a(asked)}?", choices, answer,
        f"{name} {verb} {_a(color)} {thing} inside a big {shape}.", _grade(rng, 6, 9),
        "language science", "grammar", "Word meaning", "Find words by what they name",
        "Words do different jobs in a sentence. Some words name things, such as kite or cup. Some words tell "
        "more about a thing, such as its color or its shape. Some words name actions, such as drew or ran.",
        f"In the text, {word} {jobs[word]}. The other choices do not: {explain}. So, the answer is {word}.",
    )


FAMILIES = (
    Family("color_of_shape", True, color_of_shape),
    Family("straight_sides", True, straight_sides),
    Family("color_groups", True, color_groups),
    Family("paint_mixing", False, paint_mixing),
    Family("light_mixing", False, light_mixing),
    Family("team_flags", True, team_flags),
    Family("map_key", True, map_key),
    Family("road_signs", True, road_signs),
    Family("opposite_direction", False, opposite_direction),
    Family("money_left", False, money_left),
    Family("word_category", False, word_category),
    Family("guide_words", False, guide_words),
    Family("describe_picture", True, describe_picture),
    Family("word_in_text", False, word_in_text),
)
