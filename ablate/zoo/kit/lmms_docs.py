"""The kit's documents for lmms-eval's tasks mme, gqa and mmvet, in the fields of their hub data sets.

    lmms_eval/<task>.json     a list of documents; `image` is a path relative to lmms_eval/
    lmms_eval/images/         their pictures

The rehearsal turns them into local tasks named mme, gqa and mmvet that include lmms-eval's own
task files (`ablate.study.rehearsal.lmms`), so a rehearsal runs lmms-eval's prompts, scoring and
aggregation (and MM-Vet's judge, through the stand-in judge) on a few of these instead of
downloading the benchmarks. MME's documents come in pairs (a yes and a no question per image),
as its score needs; the first pair is a perception category, so a rehearsal's eval.limit of 2
still scores it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ablate.zoo.kit import conversations as talk
from ablate.zoo.kit.pictures import picture

FOLDER = "lmms_eval"
TASKS = ("mme", "gqa", "mmvet")
PICTURES = 3
MME_CATEGORIES = ("color", "commonsense_reasoning", "count")  # perception, cognition, perception


def write_lmms_docs(data: Path) -> None:
    folder = data / FOLDER
    images = []
    for index in range(PICTURES):
        pic = picture(index, seed="lmms-eval")
        name = f"images/{index}.jpg"
        pic.save(folder / name)
        images.append((pic, name))
    rng = random.Random("lmms-eval")
    docs = {"mme": _mme(images), "gqa": _gqa(images, rng), "mmvet": _mmvet(images)}
    for task, rows in docs.items():
        (folder / f"{task}.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


def _mme(images) -> list[dict]:
    rows = []
    for (pic, name), category in zip(images, MME_CATEGORIES):
        thing, absent = pic.things[0], next(c for c in ("red", "green", "blue", "yellow") if c != pic.things[0].color)
        for answer, color in (("Yes", thing.color), ("No", absent)):
            rows.append({"question_id": name, "image": name, "category": category, "answer": answer,
                         "question": f"Is there a {color} {thing.shape} in the image? Please answer yes or no."})
    return rows


def _gqa(images, rng: random.Random) -> list[dict]:
    rows = []
    for n, (pic, name) in enumerate(images):
        for question, full, short in rng.sample(talk.question_answers(pic), 2):
            rows.append({"id": f"{2000 + len(rows)}", "imageId": f"n{n}", "image": name, "question": question,
                         "answer": short, "fullAnswer": full})
    return rows


def _mmvet(images) -> list[dict]:
    return [{"question_id": f"v{n}", "image": name, "question": "What is shown in the image?",
             "answer": pic.caption(), "capability": "rec"} for n, (pic, name) in enumerate(images)]


def lmms_docs(root: Path, task: str) -> list[dict]:
    """The kit's documents of `task`, each image an absolute path."""
    folder = root / FOLDER
    rows = json.loads((folder / f"{task}.json").read_text(encoding="utf-8"))
    return [{**row, "image": str(folder / row["image"])} for row in rows]
