"""The kit's benchmarks, in the layouts their releases use (and the files ablate makes of them).

    ScienceQA/            problems.json, pid_splits.json, images/<split>/<pid>/image.png (ScienceQA's
                          own layout; written by ablate's ScienceQA-format generator)
    llava-bench-coco/     qa90_questions.jsonl, qa90_gpt4_answer.jsonl, caps_boxes_coco2014_val_80.jsonl
                          and a rule.json (the judge's per-category prompts, in ablate's own words:
                          users bring LLaVA's); qa90_llava.json is what `ablate data prepare
                          llava-bench-coco` makes of them. Images: coco/val2014/COCO_val2014_<id>.jpg
    eval/gqa/             testdev_balanced_questions.json (GQA's question file: id -> question,
                          imageId, answer, fullAnswer, ...) and testdev_balanced_llava.json, its LLaVA
                          conversation form with the short-answer instruction; images gqa/images/<imageId>.jpg
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ablate.zoo.kit import conversations as talk
from ablate.zoo.kit.llava_files import write_json
from ablate.zoo.kit.pictures import picture

SCIENCEQA_SIZES = {"n_train": 32, "n_val": 8, "n_test": 8}
BENCH_IMAGES = 3
GQA_QUESTIONS = 8
BENCH_CATEGORIES = ("conv", "detail", "complex")
RULE_PROMPT = ("Two assistants answered a question about an image you know only from its description. Rate "
               "each answer from 1 to 10 for helpfulness, relevance, accuracy and detail. First line: the two "
               "scores, separated by a space. Then explain briefly.")


def write_scienceqa(data: Path) -> None:
    """ScienceQA's layout, small; ablate's generator marker file is removed (the release has none)."""
    from ablate.scienceqa.generator import MARKER_FILE, make_scienceqa

    root = make_scienceqa(data / "ScienceQA", seed=0, **SCIENCEQA_SIZES)
    (root / MARKER_FILE).unlink()


def write_llava_bench(data: Path) -> None:
    """LLaVA-Bench (COCO)'s released files on three val2014 pictures, and the prepared eval file."""
    from ablate.data.sources.llava_bench import LlavaBenchConfig, write_prepared

    folder = data / "llava-bench-coco"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random("llava-bench")
    questions, answers, contexts = [], [], []
    for i in range(BENCH_IMAGES):
        coco_id = f"{441147 + 1009 * i:012d}"
        pic = picture(i, seed="coco-val2014")
        pic.save(data / "coco" / "val2014" / f"COCO_val2014_{coco_id}.jpg")
        contexts.append({"id": coco_id, "image": f"{coco_id}.jpg", "captions": [pic.caption(), pic.describe()],
                         "instances": [{"category": t.shape, "bbox": list(t.box)} for t in pic.things]})
        turns = {"conv": talk.conversation_turns(pic, rng, rounds=1), "detail": talk.detail_turns(pic, rng),
                 "complex": talk.reasoning_turns(pic, rng)}
        for category in BENCH_CATEGORIES:
            question, answer = turns[category][0]["value"], turns[category][1]["value"]
            qid = len(questions)
            questions.append({"question_id": qid, "image": f"{coco_id}.jpg", "category": category,
                              "text": question.replace(talk.IMAGE, "").strip()})
            answers.append({"question_id": qid, "text": answer, "category": category})
    for name, lines in (("qa90_questions.jsonl", questions), ("qa90_gpt4_answer.jsonl", answers),
                        ("caps_boxes_coco2014_val_80.jsonl", contexts)):
        (folder / name).write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    write_json(folder / "rule.json", {c: {"role": "Assistant", "prompt": RULE_PROMPT} for c in BENCH_CATEGORIES})
    config = LlavaBenchConfig(path=str(folder), layout="coco", image_root=str(data / "coco" / "val2014"))
    write_prepared(config, folder / "qa90_llava.json")


def write_gqa_testdev(data: Path) -> None:
    """GQA testdev-balanced questions and their LLaVA conversation form."""
    rng = random.Random("gqa-testdev")
    questions, records = {}, []
    for i in range(GQA_QUESTIONS):
        image_id = f"n{288870 + i // 2}"
        pic = picture(i // 2, seed="gqa-testdev")
        pic.save(data / "gqa" / "images" / f"{image_id}.jpg")
        question, full, short = rng.choice(talk.question_answers(pic))
        qid = f"{20968153 + i}"
        questions[qid] = {"question": question, "imageId": image_id, "answer": short, "fullAnswer": full,
                          "isBalanced": True, "types": {"structural": "query", "semantic": "attr"}}
        records.append(talk_record(qid, f"{image_id}.jpg", question, short))
    write_json(data / "eval" / "gqa" / "testdev_balanced_questions.json", questions)
    write_json(data / "eval" / "gqa" / "testdev_balanced_llava.json", records)


def talk_record(qid: str, image: str, question: str, answer: str) -> dict:
    return {"id": qid, "image": image, "conversations": [
        talk.turn("human", f"{talk.IMAGE}\n{question}\n{talk.SHORT_ANSWER}"), talk.turn("gpt", answer)]}


def write_benchmarks(data: Path) -> None:
    write_scienceqa(data)
    write_llava_bench(data)
    write_gqa_testdev(data)
