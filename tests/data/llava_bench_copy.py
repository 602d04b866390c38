"""A tiny LLaVA-Bench copy in the released layouts and field names (the prompts are this test's own)."""

from __future__ import annotations

import json
from pathlib import Path

RULES = {
    category: {"role": "Assistant", "prompt": f"Grade both answers ({category}). First line: two scores, 1 to 10."}
    for category in ("conv", "detail", "complex", "llava_bench_conv", "llava_bench_detail", "llava_bench_complex")
}
QUESTIONS = [
    {"question_id": 0, "image": "000000000001.jpg", "text": "What colour is the bus?", "category": "conv"},
    {"question_id": 1, "image": "000000000001.jpg", "text": "Describe the image in detail.", "category": "detail"},
    {"question_id": 2, "image": "000000000001.jpg", "text": "Why might the bus be stopped?", "category": "complex"},
    {"question_id": 3, "image": "000000000002.jpg", "text": "How many dogs are there?", "category": "conv"},
    {"question_id": 4, "image": "000000000002.jpg", "text": "What could the dogs do next?", "category": "complex"},
]
ANSWERS = {0: "The bus is red.", 1: "A red bus waits at a stop on a busy street.", 2: "Passengers are boarding.",
           3: "There are two dogs.", 4: "They could chase the ball."}
CONTEXTS = [
    {"id": "000000000001", "image": "000000000001.jpg", "captions": ["A red bus at a stop.", "A bus on a street."],
     "instances": [{"category": "bus", "bbox": [0.1, 0.2, 0.75, 0.9]},
                   {"category": "person", "bbox": [0.0, 0.5, 1, 0.25]}]},
    {"id": "000000000002", "image": "000000000002.jpg", "captions": ["Two dogs on grass."],
     "instances": [{"category": "dog", "bbox": [0.3, 0.3, 0.5, 0.6]}]},
]
# What the judge reads as context, joined as LLaVA's review script joins captions and boxes
COCO_CONTEXT = {
    "000000000001.jpg": "A red bus at a stop.\nA bus on a street.\n\n"
                        "bus: [0.1, 0.2, 0.75, 0.9]\nperson: [0.0, 0.5, 1, 0.25]",
    "000000000002.jpg": "Two dogs on grass.\n\ndog: [0.3, 0.3, 0.5, 0.6]",
}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_coco_copy(folder: Path, *, rules: bool = True) -> Path:
    """LLaVA-Bench (COCO): qa90 files, the caps/boxes file, rule.json, COCO-named images."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "qa90_questions.jsonl", QUESTIONS)
    # answers in another order than the questions: they are joined by question_id
    write_jsonl(folder / "qa90_gpt4_answer.jsonl", [
        {"question_id": q["question_id"], "text": ANSWERS[q["question_id"]], "category": q["category"]}
        for q in reversed(QUESTIONS)])
    write_jsonl(folder / "caps_boxes_coco2014_val_80.jsonl", CONTEXTS)
    if rules:
        (folder / "rule.json").write_text(json.dumps(RULES, indent=4), encoding="utf-8")
    (folder / "images").mkdir(exist_ok=True)
    for context in CONTEXTS:
        (folder / "images" / f"COCO_val2014_{context['image']}").write_bytes(b"\xff\xd8 not decoded here")
    return folder


def write_wild_copy(folder: Path) -> Path:
    """LLaVA-Bench (In-the-Wild): questions, answers_gpt4, context (one caption string), images/."""
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "questions.jsonl", [{**q, "image": f"{q['image'][-5]}.jpg"} for q in QUESTIONS[:2]])
    write_jsonl(folder / "answers_gpt4.jsonl", [
        {"question_id": q["question_id"], "prompt": q["text"], "text": ANSWERS[q["question_id"]], "answer_id": f"a{i}",
         "model_id": "gpt-4-0314", "metadata": {}} for i, q in enumerate(QUESTIONS[:2])])
    write_jsonl(folder / "context.jsonl", [{"id": "1", "image": "1.jpg", "caption": "A red bus.\nIt waits at a stop."}])
    (folder / "rule.json").write_text(json.dumps(RULES), encoding="utf-8")
    (folder / "images").mkdir(exist_ok=True)
    (folder / "images" / "1.jpg").write_bytes(b"\xff\xd8")
    return folder
