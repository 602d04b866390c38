"""A seeded file laid out like LLaVA-1.5's llava_v1_5_mix665k.json, with images to match.

The layout is the released one: a JSON list of `{"id", "image"?, "model"?, "conversations":
[{"from": "human"|"gpt", "value"}, ...]}`; the first human turn of an image record holds
"<image>\\n"; text-only records (ShareGPT's share, about 6%) have no "image" and carry
`"model": ""`. The parts and their record counts follow LLaVA-1.5's mixture; turn counts
and word counts are drawn per part (PARTS: `ablate.data.paper_data`, which `ablate plan` also reads); the words are random English words, so only
the shape is real, not the text. Every image path points at a hard link to one small JPEG,
so `image_root` holds coco/, gqa/, ocr_vqa/, textvqa/ and vg/ as the real mixture does.

    write_mix665k_like(folder, records=665_000, seed=0) -> (json path, image root)
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ablate.data.paper_data import MIX665K_PARTS, Part  # noqa: E402

WORDS = (
    "the a of and to in is on with that for it this are as at be by from an there image what "
    "which man woman person people dog cat car street table room building sky tree water "
    "left right top bottom side front back color red blue green white black yellow small large "
    "two three several many one standing sitting holding wearing looking near next behind under "
    "shows appears picture scene background foreground view area group vehicle train bus sign "
    "because likely could would should may might also however while during after before then "
    "describe detail reason answer question explain possible suggests indicates context overall "
    "code function value return number list string data example step first second finally result "
    "python error file system using use make sure need example approach problem solution 2 10 42"
).split()
VQA_SUFFIX = "Answer the question using a single word or phrase."
MC_SUFFIX = "Answer with the option's letter from the given choices directly."
BOX_PROMPT = "Please provide the bounding box coordinate of the region this sentence describes:"


# The parts, their record counts and turn shapes: ablate's one table of them (ablate.data.paper_data).
PARTS = MIX665K_PARTS
SHARES = [part.weight / sum(p.weight for p in PARTS) for part in PARTS]
# Where each part's images live under image_root, as in the released mixture (None: text-only).
IMAGE_PATHS = {
    "llava_conversation": "coco/train2017/{:012d}.jpg",
    "llava_detail": "coco/train2017/{:012d}.jpg",
    "llava_reasoning": "coco/train2017/{:012d}.jpg",
    "sharegpt": None,
    "vqav2": "coco/train2017/{:012d}.jpg",
    "gqa": "gqa/images/{}.jpg",
    "okvqa": "coco/train2017/{:012d}.jpg",
    "ocrvqa": "ocr_vqa/images/{}.jpg",
    "aokvqa": "coco/train2017/{:012d}.jpg",
    "textcaps": "textvqa/train_images/{:016x}.jpg",
    "refcoco": "coco/train2017/{:012d}.jpg",
    "vg": "vg/VG_100K/{}.jpg",
}
LINKS_PER_FILE = 50_000  # ext4 allows 65,000 hard links to one file
IMAGES_PER_PART = 60_000  # distinct images a part draws from (records share images, as in mix665k)


def _words(rng: random.Random, bounds: tuple[int, int]) -> str:
    return " ".join(rng.choices(WORDS, k=rng.randint(*bounds)))


def _pair(rng: random.Random, part: Part) -> tuple[str, str]:
    question, answer = _words(rng, part.question), _words(rng, part.answer)
    if part.style == "vqa":
        return f"{question.capitalize()}?\n{VQA_SUFFIX}", answer
    if part.style == "mc":
        options = "\n".join(f"{letter}. {_words(rng, (1, 4))}" for letter in "ABCD")
        return f"{question.capitalize()}?\n{options}\n{MC_SUFFIX}", rng.choice("ABCD")
    if part.style == "box":
        box = ", ".join(f"{rng.random():.2f}" for _ in range(4))
        return f"{BOX_PROMPT} {question}.", f"[{box}]"
    return f"{question.capitalize()}?", f"{answer.capitalize()}."


def make_record(rng: random.Random, part: Part, index: int) -> dict:
    turns = []
    for _ in range(rng.randint(*part.pairs)):
        question, answer = _pair(rng, part)
        turns += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    pattern = IMAGE_PATHS[part.name]
    if pattern is None:
        return {"id": f"{part.name}_{index}", "model": "", "conversations": turns}
    # "<image>" before or after the first question, as both occur in mix665k
    first = turns[0]["value"]
    turns[0]["value"] = f"<image>\n{first}" if rng.random() < 0.8 else f"{first}\n<image>"
    image = pattern.format(rng.randrange(IMAGES_PER_PART))
    return {"id": f"{index:09d}", "image": image, "conversations": turns}


def write_mix665k_like(folder: Path, records: int = 665_000, seed: int = 0) -> tuple[Path, Path]:
    """The JSON file and its image root under `folder`, written once per (records, seed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path, root = folder / f"mix665k_like_{records}_{seed}.json", folder / "images"
    if path.is_file():
        return path, root
    rng = random.Random(seed)
    weights = SHARES
    images: set[str] = set()
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write("[\n")
        for index in range(records):
            record = make_record(rng, rng.choices(PARTS, weights)[0], index)
            if "image" in record:
                images.add(record["image"])
            out.write(("" if index == 0 else ",\n") + json.dumps(record, indent=None))
        out.write("\n]\n")
    _link_images(root, sorted(images))
    os.replace(tmp, path)
    return path, root


def _link_images(root: Path, relative: list[str]) -> None:
    """Every image path as a hard link to a small JPEG (valid images, almost no disk); a new
    copy every LINKS_PER_FILE links, under the file systems' limit on links per file."""
    from PIL import Image

    source = root / "_link_source_0.jpg"
    made: set[Path] = set()
    for count, rel in enumerate(relative):
        if count % LINKS_PER_FILE == 0:
            source = root / f"_link_source_{count // LINKS_PER_FILE}.jpg"
            if not source.exists():
                root.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (64, 64), (120, 90, 60)).save(source)
        target = root / rel
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        if not target.exists():
            os.link(source, target)
