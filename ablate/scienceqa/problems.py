"""The ScienceQA layout on disk, record checks, and the official category definitions.

    <root>/problems.json      {pid: {question, choices, answer, hint, image, lecture, solution,
                                     subject, grade, split, topic, category, skill, task}}
    <root>/pid_splits.json    {"train": [pid, ...], "val": [...], "test": [...],
                               "minival": [...], "minitest": [...], ...}
    <root>/images/<split>/<pid>/<image>     <image> is the record's `image` ("image.png")

Categories follow ScienceQA's `tools/evaluate_acc.py` (`get_scores`):
    NAT/SOC/LAN   subject == "natural science" / "social science" / "language science"
    TXT           the hint is non-empty (with or without an image)
    IMG           the record has an image (with or without a hint)
    NO            neither a hint nor an image
    G1-6/G7-12    grade "grade1".."grade6" / "grade7".."grade12"
TXT and IMG overlap (a problem with both counts in both), as in the paper's tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ablate.errors import DataError
from ablate.scienceqa.formats import OPTION_LETTERS

PROBLEMS_FILE = "problems.json"
SPLITS_FILE = "pid_splits.json"
IMAGES_DIR = "images"

SUBJECT_CODES = {"natural science": "NAT", "social science": "SOC", "language science": "LAN"}
GRADE_BANDS = {**{f"grade{g}": "G1-6" for g in range(1, 7)}, **{f"grade{g}": "G7-12" for g in range(7, 13)}}

_TEXT_FIELDS = ("question", "hint", "lecture", "solution", "subject", "grade")


def load_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DataError(f"ScienceQA: {path} not found (expected the ScienceQA layout: problems.json, "
                        f"pid_splits.json, images/<split>/<pid>/image.png)") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"ScienceQA: {path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"ScienceQA: {path} is not valid JSON: {exc}") from None
    except IsADirectoryError:
        raise DataError(f"ScienceQA: {path} is a folder, expected a JSON file") from None
    except RecursionError:
        raise DataError(f"ScienceQA: {path} is not valid JSON: nested too deeply") from None


def load_problems(root: Path) -> dict[str, dict[str, Any]]:
    problems = load_json(root / PROBLEMS_FILE)
    if not isinstance(problems, dict):
        raise DataError(f"ScienceQA: {root / PROBLEMS_FILE} must map pid -> problem, got {type(problems).__name__}")
    return problems


def load_split(root: Path, split: str) -> list[str]:
    splits = load_json(root / SPLITS_FILE)
    if not isinstance(splits, dict):
        raise DataError(f"ScienceQA: {root / SPLITS_FILE} must map split name -> list of pids")
    if split not in splits:
        raise DataError(f"ScienceQA: split {split!r} is not in {root / SPLITS_FILE}; it has {', '.join(splits)}")
    pids = splits[split]
    if not isinstance(pids, list):
        raise DataError(f"ScienceQA: split {split!r} in {root / SPLITS_FILE} must be a list of pids")
    if not pids:  # nothing to train or evaluate on: never a run worth starting
        raise DataError(f"ScienceQA: split {split!r} in {root / SPLITS_FILE} lists no pids")
    return [str(pid) for pid in pids]


def problem_error(problem: Any) -> str | None:
    """Why a problem record cannot be used, or None when it is well formed."""
    if not isinstance(problem, dict):
        return f"record is a {type(problem).__name__}, not an object"
    missing = [k for k in ("choices", "answer", "image", *_TEXT_FIELDS) if k not in problem]
    if missing:
        return f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    for key in _TEXT_FIELDS:
        if not isinstance(problem[key], str):
            return f"{key!r} must be a string, got {type(problem[key]).__name__}"
    choices = problem["choices"]
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        return "'choices' must be a list of strings"
    if not 2 <= len(choices) <= len(OPTION_LETTERS):
        return f"'choices' has {len(choices)} options; ScienceQA problems have 2 to {len(OPTION_LETTERS)}"
    answer = problem["answer"]
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        return f"'answer' must be an option index 0..{len(choices) - 1}, got {answer!r}"
    image = problem["image"]
    if image is not None and not _is_name(image):
        return f"'image' must be a file name or null, got {image!r}"
    split = problem.get("split")
    if image and split not in (None, "") and not _is_name(split):  # a folder under images/ (empty: the split's)
        return f"'split' must be a split name (a folder under {IMAGES_DIR}/) or null, got {split!r}"
    return None


def _is_name(value: Any) -> bool:
    """One file or folder name: a path in problems.json must not reach outside the ScienceQA root."""
    return isinstance(value, str) and value not in ("", ".", "..") and "/" not in value and "\\" not in value


def pid_problem(pid: str) -> str | None:
    """Why a pid (an images/<split>/<pid>/ folder) cannot be one, or None."""
    return None if _is_name(pid) else f"pid {pid!r} is not a folder name (images/<split>/<pid>/)"


def image_path(root: Path, pid: str, problem: dict[str, Any], split: str) -> Path | None:
    """Where the problem's image lives: its own split's folder (minival images are in val/)."""
    if not problem.get("image"):
        return None
    return root / IMAGES_DIR / str(problem.get("split") or split) / pid / problem["image"]


# --- categories -----------------------------------------------------------------------------


def subject_code(subject: str) -> str | None:
    return SUBJECT_CODES.get(subject)


def grade_band(grade: str) -> str | None:
    return GRADE_BANDS.get(grade)


def context_codes(has_hint: bool, has_image: bool) -> list[str]:
    codes = (["TXT"] if has_hint else []) + (["IMG"] if has_image else [])
    return codes or ["NO"]


def category_meta(pid: str, problem: dict[str, Any]) -> dict[str, Any]:
    """The sample meta the `scienceqa` evaluator scores by (and a reader wants to see)."""
    choices = problem["choices"]
    has_hint, has_img = bool(problem["hint"]), bool(problem["image"])
    return {
        "pid": pid,
        "split": problem.get("split"),
        "answer_letter": OPTION_LETTERS[problem["answer"]],
        "answer_index": problem["answer"],
        "answer_text": choices[problem["answer"]],
        "choices": list(choices),
        "num_choices": len(choices),
        "subject": problem["subject"],
        "subject_code": subject_code(problem["subject"]),
        "grade": problem["grade"],
        "grade_band": grade_band(problem["grade"]),
        "has_hint": has_hint,
        "has_image": has_img,
        "context": context_codes(has_hint, has_img),
        "topic": problem.get("topic"),
        "category": problem.get("category"),
        "skill": problem.get("skill"),
    }
