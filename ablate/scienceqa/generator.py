"""The embedded ScienceQA-format dataset, built from easy-VQA pictures.

`make_scienceqa(out_dir, seed=0, n_train=3000, n_val=300, n_test=1000)` writes exactly
ScienceQA's layout (problems.json, pid_splits.json with train/val/test/trainval/minival/
minitest, images/<split>/<pid>/image.png), deterministically for a seed: two runs give
byte-identical files. Problems come from the question families in `ablate.scienceqa.families`
(all three subjects, image/hint/neither contexts, both grade bands), dealt round-robin in a
shuffled order so every family appears in every split of 14 or more problems. Train images
are easy-VQA's training images; val and test use disjoint parts of its test images (an image
is reused only when a split needs more pictures than its part holds). minival and minitest
are the first quarter of val and test.

`ensure_scienceqa()` builds the default-size dataset once under
`$ABLATE_HOME/data/scienceqa-tiny` (atomically: built aside, then renamed into place) and
returns its folder. `majority_baseline(root, split)` scores always answering the most common
training letter.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from ablate.errors import AblateError
from ablate.scienceqa import problems as sqa
from ablate.scienceqa.families import COLORS, FAMILIES, SHAPES, Picture
from ablate.scienceqa.formats import OPTION_LETTERS

GENERATOR_VERSION = 1  # bump when the generated problems change
MARKER_FILE = "ablate_scienceqa.json"  # parameters of a generated dataset; written last
TINY_NAME = "scienceqa-tiny"
DEFAULT_SIZES = {"n_train": 3000, "n_val": 300, "n_test": 1000}
IMAGE_NAME = "image.png"
_FIELD_ORDER = ("question", "choices", "answer", "hint", "image", "task", "grade", "subject", "topic",
                "category", "skill", "lecture", "solution", "split")


# --- easy-VQA pictures ----------------------------------------------------------------------


def easy_vqa_pictures(part: str) -> list[Picture]:
    """easy-VQA's `part` ("train" or "test") images whose shape and color its questions state.

    Open questions ("what shape is in the image?") give the answer directly; a yes/no question
    gives the shape or color it names when its answer says that shape or color is present.
    """
    import easy_vqa

    if part == "train":
        questions, paths = easy_vqa.get_train_questions(), easy_vqa.get_train_image_paths()
    elif part == "test":
        questions, paths = easy_vqa.get_test_questions(), easy_vqa.get_test_image_paths()
    else:
        raise ValueError(f"easy-VQA parts are 'train' and 'test', got {part!r}")
    shapes: dict[int, str] = {}
    colors: dict[int, str] = {}
    for text, answer, image_id in zip(*questions):
        words = re.findall(r"[a-z]+", text.lower())
        if answer in ("yes", "no"):
            negated = "not" in words or "no" in words
            named = words if (answer == "yes") != negated else []
        else:
            named = [answer]
        for word in named:
            if word in SHAPES:
                shapes.setdefault(image_id, word)
            elif word in COLORS:
                colors.setdefault(image_id, word)
    return [Picture(str(paths[i]), shapes[i], colors[i]) for i in sorted(paths) if i in shapes and i in colors]


class _Pool:
    """Pictures handed out in a shuffled order, starting over only when all are used."""

    def __init__(self, pictures: list[Picture], rng: random.Random):
        self.pictures, self.rng, self.next = list(pictures), rng, 0
        if not self.pictures:
            raise AblateError("easy-VQA gave no labelled pictures to build ScienceQA image questions from")
        rng.shuffle(self.pictures)

    def take(self) -> Picture:
        if self.next == len(self.pictures):
            self.rng.shuffle(self.pictures)
            self.next = 0
        self.next += 1
        return self.pictures[self.next - 1]


# --- the dataset ----------------------------------------------------------------------------


def make_scienceqa(
    out_dir: str | Path, seed: int = 0, n_train: int = DEFAULT_SIZES["n_train"],
    n_val: int = DEFAULT_SIZES["n_val"], n_test: int = DEFAULT_SIZES["n_test"], *, overwrite: bool = False,
) -> Path:
    """Write a ScienceQA-format dataset to `out_dir` and return its path."""
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    if any(not isinstance(n, int) or n < 0 for n in sizes.values()):
        raise AblateError(f"ScienceQA sizes must be non-negative integers, got {sizes}")
    out = Path(out_dir).expanduser()
    _prepare(out, overwrite)
    rng = random.Random(seed)

    held_out = easy_vqa_pictures("test")
    rng.shuffle(held_out)
    cut = round(len(held_out) * n_val / max(1, n_val + n_test))
    cut = min(max(cut, 1), len(held_out) - 1)  # both parts non-empty
    pools = {"train": easy_vqa_pictures("train"), "val": held_out[:cut], "test": held_out[cut:]}

    problems: dict[str, dict[str, Any]] = {}
    splits: dict[str, list[str]] = {}
    for split, count in sizes.items():
        pool = _Pool(pools[split], rng)
        pids = splits[split] = []
        families: list = []
        for _ in range(count):
            if not families:  # a new round: every family once, in a fresh order
                families = rng.sample(FAMILIES, len(FAMILIES))
            family = families.pop()
            picture = pool.take() if family.needs_picture else None
            pid = str(len(problems) + 1)
            record = {**family.make(rng, picture), "image": IMAGE_NAME if picture else None, "split": split}
            problems[pid] = {key: record[key] for key in _FIELD_ORDER}
            pids.append(pid)
            if picture is not None:
                folder = out / sqa.IMAGES_DIR / split / pid
                folder.mkdir(parents=True)
                shutil.copyfile(picture.path, folder / IMAGE_NAME)
    splits["trainval"] = splits["train"] + splits["val"]
    splits["minival"] = splits["val"][: (len(splits["val"]) + 3) // 4]
    splits["minitest"] = splits["test"][: (len(splits["test"]) + 3) // 4]

    _write_json(out / sqa.PROBLEMS_FILE, problems)
    _write_json(out / sqa.SPLITS_FILE, splits)
    _write_json(out / MARKER_FILE, _marker(seed, sizes))
    return out


def _prepare(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise AblateError(f"{out} is a file, not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise AblateError(f"{out} is not empty; choose a new folder or overwrite it (ablate data make-scienceqa --overwrite, or overwrite=True)")
        for name in (sqa.PROBLEMS_FILE, sqa.SPLITS_FILE, MARKER_FILE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / sqa.IMAGES_DIR, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


def _marker(seed: int, sizes: dict[str, int]) -> dict[str, Any]:
    return {"generator": "ablate.scienceqa", "version": GENERATOR_VERSION, "seed": seed,
            **{f"n_{split}": n for split, n in sizes.items()}}


def default_root() -> Path:
    from ablate.zoo import ablate_home

    return ablate_home() / "data" / TINY_NAME


def ensure_scienceqa(root: str | Path | None = None) -> Path:
    """The embedded dataset's folder (default `$ABLATE_HOME/data/scienceqa-tiny`), built on first use."""
    root = Path(root).expanduser() if root is not None else default_root()
    wanted = _marker(0, {"train": DEFAULT_SIZES["n_train"], "val": DEFAULT_SIZES["n_val"],
                         "test": DEFAULT_SIZES["n_test"]})
    if _read_marker(root) == wanted:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        make_scienceqa(staging, seed=0, **DEFAULT_SIZES)
        if root.exists():  # an older version (or a broken copy): move it aside, then replace it
            stale = Path(tempfile.mkdtemp(prefix=f".{root.name}-stale-", dir=root.parent))
            try:
                os.rename(root, stale / root.name)
            except FileNotFoundError:  # another process moved it first
                pass
        try:
            os.rename(staging, root)
        except OSError:
            if _read_marker(root) != wanted:  # not a concurrent builder's finished copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for leftover in root.parent.glob(f".{root.name}-stale-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    return root


def _read_marker(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / MARKER_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


# --- baseline -------------------------------------------------------------------------------


def majority_letter(root: str | Path, split: str = "train") -> str:
    """The most common answer letter of `split` (ties: the earliest letter)."""
    root = Path(root)
    problems = sqa.load_problems(root)
    counts = Counter(OPTION_LETTERS[problems[pid]["answer"]] for pid in sqa.load_split(root, split))
    if not counts:
        raise AblateError(f"ScienceQA split {split!r} in {root} is empty")
    return min(counts, key=lambda letter: (-counts[letter], letter))


def majority_baseline(root: str | Path, split: str) -> float:
    """Accuracy in percent on `split` of always answering the most common training letter."""
    root = Path(root)
    letter = majority_letter(root, "train")
    problems = sqa.load_problems(root)
    pids = sqa.load_split(root, split)
    if not pids:
        raise AblateError(f"ScienceQA split {split!r} in {root} is empty")
    hits = sum(OPTION_LETTERS[problems[pid]["answer"]] == letter for pid in pids)
    return 100.0 * hits / len(pids)
