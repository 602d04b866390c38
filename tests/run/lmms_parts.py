"""Shared by the lmms-eval tests: easy-VQA items as two local lmms-eval tasks that include
lmms-eval's own gqa.yaml and scienceqa_img.yaml, the same items as llava_json files for ablate's
own evaluation, and a tiny recipe whose LLM has learnt to answer words."""

from __future__ import annotations

import json
from pathlib import Path

import easy_vqa

import tiny_run
from ablate.eval.lmms_tasks import write_local_task

POST_GQA = "\nAnswer the question using a single word or phrase."  # lmms-eval's gqa.yaml post_prompt
POST_SQA = "\nAnswer with the option's letter from the given choices directly."  # its scienceqa_img.yaml
BATCH = 4
IMAGES = Path(easy_vqa.__file__).parent / "data" / "test" / "images"  # where the easy_vqa source's test images are


def items():
    """Easy-VQA test questions on three images: (image path, question, short answer)."""
    from ablate.registry import registries

    source = registries().data_source.get("easy_vqa").build({"type": "easy_vqa", "split": "test", "style": "qa",
                                                              "images_limit": 3, "instruction": None})
    return [(s["image"], s["meta"]["question"], s["meta"]["answer"]) for s in source.samples()][:8]


def write_data(root, questions):
    """The same items twice: as lmms-eval documents (tasks gqa_local, sqa_local) and as llava_json
    records with the prompts lmms-eval's doc_to_text writes, for ablate's own evaluation."""
    gqa_docs = [{"question_id": f"q{n}", "question": q, "answer": a, "image": img} for n, (img, q, a) in enumerate(questions)]
    sqa_docs = [{"question": q, "choices": ["yes", "no"], "answer": 0 if a == "yes" else 1, "hint": "", "image": img}
                for img, q, a in questions if a in ("yes", "no")]
    tasks = root / "tasks"
    write_local_task(tasks, "gqa_local", "gqa/gqa.yaml", gqa_docs)
    write_local_task(tasks, "sqa_local", "scienceqa/scienceqa_img.yaml", sqa_docs,
                     overrides={"metric_list": [{"metric": "accuracy", "aggregation": "mean", "higher_is_better": True}]},
                     functions={"process_results": "ablate.scienceqa.lmms.llava_process_results"})
    gqa = [{"id": d["question_id"], "image": Path(d["image"]).name, "conversations": [
        {"from": "human", "value": f"<image>\n{d['question']}{POST_GQA}"}, {"from": "gpt", "value": d["answer"]}]}
        for d in gqa_docs]
    sqa = [{"id": f"s{n}", "image": Path(d["image"]).name, "answer_letter": "AB"[d["answer"]], "num_choices": 2,
            "conversations": [{"from": "human", "value": f"<image>\n{d['question']}\nA. yes\nB. no{POST_SQA}"},
                              {"from": "gpt", "value": "AB"[d["answer"]]}]} for n, d in enumerate(sqa_docs)]
    for name, records in (("gqa.json", gqa), ("sqa.json", sqa)):
        (root / name).write_text(json.dumps(records))
    return tasks


def write_seed_task(folder, questions):
    """Task `seed_local`: lmms-eval's own seedbench_ppl.yaml (output_type multiple_choice, its own
    doc_to_* functions) on the yes/no items, each document's image a list of one path, as
    SEED-Bench's hub documents hold a list of images. Returns the documents."""
    docs = [{"question": q, "choice_a": "yes", "choice_b": "no", "choice_c": "red", "choice_d": "circle",
             "answer": "A" if a == "yes" else "B", "image": [img]} for img, q, a in questions if a in ("yes", "no")]
    write_local_task(folder, "seed_local", "seedbench/seedbench_ppl.yaml", docs)
    return docs


def recipe(root, eval_file: str, evaluator: str):
    # Trains the LLM a little, so that it answers words (a random one answers "</s>" first).
    stage = tiny_run.stage("instruct", tiny_run.easy_vqa("qa", images=4), template="vicuna_v1", max_steps=12,
                           batch_size=2, lr=3e-3, trainable={"encoder": "frozen", "connector": "full", "llm": "full"})
    return tiny_run.recipe(root, [stage], eval={
        "data": {"type": "llava_json", "path": str(root / eval_file), "image_root": str(IMAGES)}, "evaluator": evaluator,
        "max_new_tokens": 16, "batch_size": BATCH})  # 16: gqa.yaml's and scienceqa_img.yaml's max_new_tokens


