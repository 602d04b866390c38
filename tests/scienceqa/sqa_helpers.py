"""Helpers that write small ScienceQA-layout folders for the tests."""

import json
from pathlib import Path

from PIL import Image


def problem(question, choices, answer, *, hint="", image=None, split="train", subject="natural science",
            grade="grade4", lecture="A lecture.", solution="A solution."):
    return {"question": question, "choices": choices, "answer": answer, "hint": hint, "image": image,
            "task": "closed choice", "grade": grade, "subject": subject, "topic": "physics",
            "category": "Colors", "skill": "Name colors", "lecture": lecture, "solution": solution, "split": split}


def write_scienceqa(root: Path, problems: dict, splits: dict, *, skip_images=()) -> Path:
    """The ScienceQA layout, with a small PNG for every problem that names an image."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "problems.json").write_text(json.dumps(problems, indent=1))
    (root / "pid_splits.json").write_text(json.dumps(splits))
    for pid, p in problems.items():
        if isinstance(p, dict) and p.get("image") and pid not in skip_images:
            folder = root / "images" / p["split"] / pid
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (255, 0, 0)).save(folder / p["image"])
    return root
