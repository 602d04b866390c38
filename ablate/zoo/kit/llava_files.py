"""LLaVA's training data in its released layouts and field names, a few dozen records each.

Under the kit's `data/` folder (LLaVA's `playground/data` layout, which the paper recipes name):

    LLaVA-Pretrain/blip_laion_cc_sbu_558k.json   LCS-558K; images/<first 5 digits>/<id>.jpg
    LLaVA-CC3M-Pretrain-595K/chat.json           CC-595K; images/GCC_train_<id>.jpg
    LLaVA-Instruct-150K/                         llava_instruct_150k.json (all three kinds) and
        conversation_58k.json, detail_23k.json, complex_reasoning_77k.json; images in coco/train2017
    llava_v1_5_mix665k.json                      image paths relative to data/: coco/train2017,
        gqa/images, ocr_vqa/images, textvqa/train_images, vg/VG_100K(_2); text-only records (no
        "image" key, a "model" field), one opening with a gpt turn and one ending with a human turn

Each training set holds at least two of the paper recipes' largest per-device batches (32), so
two steps see full batches.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable

from ablate.zoo.kit import conversations as talk
from ablate.zoo.kit.pictures import Picture, picture

PRETRAIN_RECORDS = 64
COCO_TRAIN_IMAGES = 12
DETAIL_IMAGES = 10  # 5% of them still leaves one record (data_types' "conv + 5% detail" arm)


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def record(record_id: str, image: str | None, turns: list[dict[str, str]], **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"id": record_id}
    if image is not None:
        out["image"] = image
    return {**out, **extra, "conversations": turns}


def saved(folder: Path, name: str, pic: Picture) -> str:
    """Write `pic` as `folder/name`; its name for the record."""
    pic.save(folder / name)
    return name


def write_pretrain_sets(data: Path) -> None:
    """LCS-558K and CC-595K: one caption turn per image."""
    rng = random.Random("pretrain")
    lcs = []
    for i in range(PRETRAIN_RECORDS):
        pid = f"{4539375 + i:09d}"
        pic = picture(i, seed="lcs")
        name = saved(data / "LLaVA-Pretrain" / "images", f"{pid[:5]}/{pid}.jpg", pic)
        lcs.append(record(pid, name, talk.caption_turns(pic, rng)))
    write_json(data / "LLaVA-Pretrain" / "blip_laion_cc_sbu_558k.json", lcs)
    cc = []
    for i in range(PRETRAIN_RECORDS // 2):
        rid = f"GCC_train_{2582585 + i:09d}"
        pic = picture(i, seed="cc3m")
        cc.append(record(rid, saved(data / "LLaVA-CC3M-Pretrain-595K" / "images", f"{rid}.jpg", pic),
                         talk.caption_turns(pic, rng)))
    write_json(data / "LLaVA-CC3M-Pretrain-595K" / "chat.json", cc)


def coco_train(data: Path) -> list[tuple[str, Picture]]:
    """The COCO train2017 images LLaVA-Instruct and mix665k's coco part point at: (id, picture)."""
    out = []
    for i in range(COCO_TRAIN_IMAGES):
        coco_id = f"{442786 + 97 * i:012d}"
        pic = picture(i, seed="coco-train2017")
        pic.save(data / "coco" / "train2017" / f"{coco_id}.jpg")
        out.append((coco_id, pic))
    return out


def write_instruct(data: Path, coco: list[tuple[str, Picture]]) -> None:
    """LLaVA-Instruct-158K: the three per-kind files and llava_instruct_150k.json holding them all."""
    rng = random.Random("instruct")
    kinds: dict[str, Callable[[Picture], list[dict[str, str]]]] = {
        "conversation_58k.json": lambda pic: talk.conversation_turns(pic, rng, rounds=3),
        "detail_23k.json": lambda pic: talk.detail_turns(pic, rng),
        "complex_reasoning_77k.json": lambda pic: talk.reasoning_turns(pic, rng),
    }
    folder = data / "LLaVA-Instruct-150K"
    merged = []
    for file_name, turns in kinds.items():
        images = coco[:DETAIL_IMAGES] if file_name.startswith("detail") else coco
        records = [record(coco_id, f"{coco_id}.jpg", turns(pic)) for coco_id, pic in images]
        write_json(folder / file_name, records)
        merged += records
    write_json(folder / "llava_instruct_150k.json", merged)


def write_mix665k(data: Path, coco: list[tuple[str, Picture]]) -> None:
    """llava_v1_5_mix665k.json: LLaVA-Instruct on COCO, short-answer VQA (COCO, GQA), OCR-VQA,
    TextVQA, Visual Genome regions and ShareGPT-style text-only conversations."""
    rng = random.Random("mix665k")
    records = [record(coco_id, f"coco/train2017/{coco_id}.jpg", talk.conversation_turns(pic, rng)) for coco_id, pic in coco]
    records += [record(f"{coco_id}_vqa", f"coco/train2017/{coco_id}.jpg", talk.short_answer_turns(pic, rng))
                for coco_id, pic in coco[:4]]
    for i in range(6):
        pic = picture(i, seed="gqa-train")
        records.append(record(f"{2354786 + i}", saved(data, f"gqa/images/{2354786 + i}.jpg", pic),
                              talk.short_answer_turns(pic, rng, rounds=3)))
    for i in range(6):
        isbn = f"{439023483 + 1000 * i:010d}"
        pic = picture(i, seed="ocr-vqa", text=f"Shapes Book {i + 1}")
        records.append(record(isbn, saved(data, f"ocr_vqa/images/{isbn}.jpg", pic), talk.ocr_turns(pic)))
    for i in range(4):
        name = f"{0x0a0bc91825468c45 + i:016x}"
        pic = picture(i, seed="textvqa", text=f"EXIT {i}")
        records.append(record(name, saved(data, f"textvqa/train_images/{name}.jpg", pic), talk.short_answer_turns(pic, rng)))
    for i in range(4):
        folder = "VG_100K" if i % 2 == 0 else "VG_100K_2"
        pic = picture(i, seed="vg")
        records.append(record(f"{i + 1}", saved(data, f"vg/{folder}/{i + 1}.jpg", pic), talk.region_turns(pic)))
    records += text_only_records()
    write_json(data / "llava_v1_5_mix665k.json", records)


TEXT_CHATS = (
    ("Name three primary colours.", "Red, yellow and blue are the traditional primary colours."),
    ("How many sides does a triangle have?", "A triangle has three sides."),
    ("Write a short sentence about squares.", "A square has four equal sides and four right angles."),
    ("What shape is a wheel?", "A wheel is round: it is a circle."),
)


def text_only_records() -> list[dict[str, Any]]:
    """ShareGPT-style conversations without an image; the last two open with a gpt turn or end
    with a human turn, as some mix665k records do."""
    out = []
    for i, (question, answer) in enumerate(TEXT_CHATS):
        turns = [talk.turn("human", question), talk.turn("gpt", answer)]
        if i == len(TEXT_CHATS) - 2:
            turns = [talk.turn("gpt", "Hello! How can I help you today?")] + turns
        elif i == len(TEXT_CHATS) - 1:
            turns = turns + [talk.turn("human", "Thanks.")]
        out.append(record(f"i6IyJda_{i}", None, turns, model=""))
    return out


def write_llava_training_data(data: Path) -> None:
    write_pretrain_sets(data)
    coco = coco_train(data)
    write_instruct(data, coco)
    write_mix665k(data, coco)
