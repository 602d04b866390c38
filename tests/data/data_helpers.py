"""Small data-writing helpers shared by the data tests (a plain module: conftest is not importable
by name when several test folders each have one)."""

from __future__ import annotations

import json
from pathlib import Path


def write_png(path: Path, color=(255, 0, 0)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), color).save(path)
    return path


def record(sample_id, image="a.png", question="What is this?", answer="A red square.", **extra):
    human = f"<image>\n{question}" if image is not None else question
    rec = {"id": sample_id, "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": answer}]}
    if image is not None:
        rec["image"] = image
    return {**rec, **extra}


def write_json(path: Path, records) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records))
    return path
