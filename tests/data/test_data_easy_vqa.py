import re
from collections import Counter

import easy_vqa
import pytest

from ablate.data.sources.easyvqa_facts import COLORS, SHAPES, facts_from_questions, look
from ablate.data.sources.easyvqa import load_split


def build(registries, **cfg):
    return registries.data_source.get("easy_vqa").build(cfg)


def package_answers(question: str, shape: str, color: str) -> str:
    """What the package would answer about an image showing a `color` `shape` (independent check)."""
    words = re.findall(r"[a-z]+", question)
    if words[0] == "what":
        return color if "color" in words else shape
    negated = "not" in words or words[:2] == ["is", "no"]
    mentioned = [w for w in words if w in SHAPES or w in COLORS]
    present = all(w in (shape, color) for w in mentioned)
    return "yes" if present != negated else "no"


def test_qa_counts_match_the_package(registries):
    texts, answers, image_ids = easy_vqa.get_train_questions()
    samples = build(registries, split="train").samples()
    assert len(samples) == len(texts) == 38575
    assert [s["meta"]["answer"] for s in samples] == answers
    assert len({s["id"] for s in samples}) == len(samples)
    assert {s["image"] for s in samples} == set(easy_vqa.get_train_image_paths().values())
    first = samples[0]
    assert first["id"] == "easy_vqa/train/0/q0" and first["data_type"] == "vqa"
    assert first["conversations"] == [
        {"from": "human", "value": f"<image>\n{texts[0]}\nAnswer the question using a single word or phrase."},
        {"from": "gpt", "value": answers[0]},
    ]
    assert Counter(s["meta"]["question_type"] for s in samples).keys() == {"shape", "color", "yes/no"}


def test_test_split_and_instruction_off(registries):
    texts, answers, _ = easy_vqa.get_test_questions()
    samples = build(registries, split="test", instruction=None).samples()
    assert len(samples) == len(texts) == 9673
    assert samples[5]["conversations"][0]["value"] == f"<image>\n{texts[5]}"
    assert samples[5]["meta"]["answer"] == answers[5]


def test_one_conversation_per_image_with_all_its_questions(registries):
    samples = build(registries, split="train", style="conversation").samples()
    assert len(samples) == 4000 == len(easy_vqa.get_train_image_paths())
    by_image, _ = load_split("train")
    for sample in samples[:50]:
        image_id = sample["meta"]["image_id"]
        turns = sample["conversations"]
        asked = [t["value"].removeprefix("<image>\n") for t in turns[::2]]
        replies = [t["value"] for t in turns[1::2]]
        assert Counter(zip(asked, replies)) == Counter((q, a) for _, q, a in by_image[image_id])
        assert turns[0]["value"].startswith("<image>\n") and all("<image>" not in t["value"] for t in turns[1:])
        assert sample["data_type"] == "conversation"


def test_conversation_order_is_seeded(registries):
    order = lambda seed: [s["meta"]["question_indices"] for s in build(registries, style="conversation", images_limit=5, seed=seed)]
    assert order(0) == order(0)
    assert order(0) != order(1)


def test_limits(registries):
    assert len(build(registries, images_limit=3).samples()) == sum(
        len(qs) for image, qs in load_split("train")[0].items() if image < 3)
    assert [s["id"] for s in build(registries, limit=4)] == [f"easy_vqa/train/0/q{i}" for i in range(4)]
    assert len(build(registries, style="caption", images_limit=7).samples()) == 7


def test_caption_of_first_image(registries):
    # The package: "what is the blue shape?" -> rectangle, "what color is the shape?" -> blue.
    sample = build(registries, style="caption", images_limit=1).samples()[0]
    assert sample["conversations"][1]["value"] == "A blue rectangle."
    assert sample["id"] == "easy_vqa/train/0/caption" and sample["data_type"] == "caption"
    assert sample["conversations"][0]["value"].startswith("<image>\n")


@pytest.mark.parametrize("split", ["train", "test"])
def test_captions_agree_with_every_package_answer(registries, split):
    by_image, _ = load_split(split)
    for sample in build(registries, split=split, style="caption", images_limit=150):
        shape, color = sample["meta"]["shape"], sample["meta"]["color"]
        assert sample["conversations"][1]["value"] == f"A {color} {shape}."
        for _, question, answer in by_image[sample["meta"]["image_id"]]:
            assert package_answers(question, shape, color) == answer, (sample["id"], question)


def test_images_the_questions_leave_open_are_read_from_pixels(registries):
    by_image, paths = load_split("train")
    open_images = [i for i in range(400) if None in facts_from_questions([(q, a) for _, q, a in by_image[i]])]
    assert open_images  # about 7% of images
    captions = {s["meta"]["image_id"]: s for s in build(registries, style="caption", images_limit=400)}
    for image_id in open_images:
        meta = captions[image_id]["meta"]
        assert meta["shape"] in SHAPES and meta["color"] in COLORS
        for _, question, answer in by_image[image_id]:
            assert package_answers(question, meta["shape"], meta["color"]) == answer


def test_pixels_agree_with_the_package_answers():
    by_image, paths = load_split("train")
    for image_id in range(300):
        shape, color = facts_from_questions([(q, a) for _, q, a in by_image[image_id]])
        seen = look(paths[image_id])
        assert shape is None or seen.shape == shape, image_id
        assert color is None or seen.color == color, image_id


def test_detail_of_first_image(registries):
    sample = build(registries, style="detail", images_limit=1).samples()[0]
    assert sample["data_type"] == "detail"
    # image 0: a blue square in the lower right of a light pink (248, 234, 230) background
    assert sample["conversations"][1]["value"] == (
        "The image shows a single blue rectangle on a light pink background. The rectangle is "
        "medium-sized and sits in the lower right part of the image. A rectangle has four straight "
        "sides that meet at four corners. There is no other shape, text or object in the image."
    )


def test_detail_names_the_answers(registries):
    for sample in build(registries, style="detail", split="test", images_limit=20):
        text = sample["conversations"][1]["value"]
        assert text.startswith(f"The image shows a single {sample['meta']['color']} {sample['meta']['shape']} on ")


def test_reasoning_answers_follow_from_shape_and_color(registries):
    corners = {"circle": 0, "triangle": 3, "rectangle": 4}
    kinds = Counter()
    for sample in build(registries, style="reasoning", images_limit=40):
        shape, color, short = sample["meta"]["shape"], sample["meta"]["color"], sample["meta"]["answer"]
        question, reply = (t["value"] for t in sample["conversations"])
        assert reply.endswith(f"So the answer is {short}.") and f"{color} {shape}" in reply
        if "have any corners" in question:
            kinds["corners"] += 1
            assert short == ("no" if shape == "circle" else "yes")
        elif "How many corners" in question:
            kinds["count"] += 1
            assert short == str(corners[shape])
        else:
            kinds["color+sides"] += 1
            asked = re.search(r"Is there an? (\w+) shape with straight sides", question).group(1)
            assert short == ("yes" if asked == color and shape != "circle" else "no")
    assert set(kinds) == {"corners", "count", "color+sides"}


def test_ids_are_stable_and_fingerprints_differ(registries):
    a = build(registries, style="reasoning", images_limit=5)
    b = build(registries, style="reasoning", images_limit=5)
    assert a.samples() == b.samples() and a.fingerprint == b.fingerprint
    assert build(registries, style="detail", images_limit=5).fingerprint != a.fingerprint
    assert build(registries, style="reasoning", images_limit=5, seed=1).fingerprint != a.fingerprint
