import json
import os

import pytest
from sqa_helpers import problem, write_scienceqa

from ablate.errors import AblateError, DataError, RecipeError
from ablate.recipe import recipe_from_dict
from ablate.registry import registries


def build(config, **context):
    return registries().data_source.get("scienceqa").build(config, **context)


def test_reads_the_layout_with_qcm_lea_by_default(small_sqa):
    source = build({"root": str(small_sqa)})
    samples = source.samples()
    assert [s["id"] for s in samples] == ["10", "11"]
    image_sample, text_sample = samples
    assert image_sample["image"] == str(small_sqa / "images" / "train" / "10" / "image.png")
    assert text_sample["image"] is None
    assert image_sample["conversations"] == [
        {"from": "human",
         "value": "What color is the shape?\nContext: Look closely.\nOptions: (A) red (B) blue\n<image>"},
        {"from": "gpt", "value": "A lecture. A solution. The answer is A."},
    ]
    assert text_sample["conversations"][0]["value"] == (
        "Which word names a shape?\nContext: N/A\nOptions: (A) dog (B) circle (C) soup")
    assert image_sample["data_type"] == "scienceqa"
    meta = text_sample["meta"]
    assert meta["answer"] == meta["answer_letter"] == "B"
    assert (meta["pid"], meta["answer_text"], meta["num_choices"]) == ("11", "circle", 3)
    assert meta["answer_format"] == "QCM-LEA"
    assert (meta["subject_code"], meta["grade_band"], meta["has_hint"], meta["has_image"], meta["context"]) == (
        "LAN", "G7-12", False, False, ["NO"])
    assert image_sample["meta"]["context"] == ["TXT", "IMG"]
    json.dumps(samples)  # samples are JSON-serialisable
    assert source.skipped == []


def test_evaluation_splits_put_the_image_first_and_read_images_from_their_own_split(small_sqa):
    sample = build({"root": str(small_sqa), "split": "minival"}).samples()[0]
    assert sample["image"] == str(small_sqa / "images" / "val" / "12" / "image.png")
    assert sample["conversations"][0]["value"].startswith("<image>\nWhich is opposite to north?\n")
    forced = build({"root": str(small_sqa), "split": "minival", "image_position": "end"}).samples()[0]
    assert forced["conversations"][0]["value"].endswith("\n<image>")


def test_answer_format_precedence(small_sqa):
    # the source's own format, then the recipe-level one passed to the builder, then QCM-LEA
    regs = registries()
    recipe_level = regs.answer_format.get("CQM-A").make_config()
    own = build({"root": str(small_sqa), "answer_format": "QCM-A"}, answer_format=recipe_level).samples()[1]
    assert own["conversations"][1]["value"] == "The answer is B."
    assert own["conversations"][0]["value"].startswith("Which word")
    given = build({"root": str(small_sqa)}, answer_format=recipe_level).samples()[1]
    assert given["conversations"][0]["value"].startswith("Context: N/A\nQuestion: Which word")
    short = build({"root": str(small_sqa), "answer_format": {"type": "llava15_short"}}).samples()[1]
    assert short["conversations"][1]["value"] == short["meta"]["answer"] == "circle"
    assert short["meta"]["answer_letter"] == "B"


def test_limit(small_sqa):
    assert [s["id"] for s in build({"root": str(small_sqa), "limit": 1}).samples()] == ["10"]


@pytest.mark.parametrize("bad, reason", [
    ({"choices": ["only"]}, "2 to 5"),
    ({"choices": ["a", "b", "c", "d", "e", "f"]}, "2 to 5"),
    ({"answer": 2}, "option index"),
    ({"answer": True}, "option index"),
    ({"hint": None}, "'hint' must be a string"),
    ({"lecture": 3}, "'lecture' must be a string"),
    ({"image": "../x.png"}, "file name or null"),
])
def test_malformed_records_name_the_pid(tmp_path, bad, reason):
    problems = {"1": problem("ok?", ["a", "b"], 0), "2": {**problem("bad?", ["a", "b"], 1), **bad}}
    root = write_scienceqa(tmp_path / "d", problems, {"train": ["1", "2"]})
    with pytest.raises(DataError, match=rf"pid 2 .*{reason}"):
        build({"root": str(root)})
    source = build({"root": str(root)}, on_bad_sample="skip")
    assert [s["id"] for s in source.samples()] == ["1"]
    assert source.skipped[0][0] == "2" and reason in source.skipped[0][1]


def test_missing_fields_images_and_pids(tmp_path):
    broken = problem("no solution?", ["a", "b"], 0)
    del broken["solution"]
    problems = {"1": problem("image?", ["a", "b"], 0, image="image.png"), "2": broken, "4": problem("ok?", ["a", "b"], 1)}
    root = write_scienceqa(tmp_path / "d", problems, {"train": ["1", "2", "3", "4"]}, skip_images={"1"})
    with pytest.raises(DataError, match=r"pid 1 .*image .*images/train/1/image.png is missing"):
        build({"root": str(root)})
    source = build({"root": str(root)}, on_bad_sample="skip")
    assert [s["id"] for s in source.samples()] == ["4"]
    reasons = dict(source.skipped)
    assert "missing" in reasons["1"] and "solution" in reasons["2"] and "not in problems.json" in reasons["3"]


def test_bad_roots_and_splits(tmp_path, small_sqa):
    with pytest.raises(DataError, match="not a folder"):
        build({"root": str(tmp_path / "nowhere")})
    with pytest.raises(DataError, match=r"split 'dev' .* train, val, minival, test"):
        build({"root": str(small_sqa), "split": "dev"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="problems.json not found"):
        build({"root": str(tmp_path / "empty")})
    with pytest.raises(AblateError, match="on_bad_sample"):
        build({"root": str(small_sqa)}, on_bad_sample="ignore")


def test_fingerprint_follows_config_format_and_files(small_sqa):
    base = build({"root": str(small_sqa)}).fingerprint
    assert build({"root": str(small_sqa)}).fingerprint == base
    assert build({"root": str(small_sqa), "answer_format": "QCM-A"}).fingerprint != base
    assert build({"root": str(small_sqa), "limit": 1}).fingerprint != base
    image = small_sqa / "images" / "train" / "10" / "image.png"
    os.utime(image, ns=(1, 1))
    assert build({"root": str(small_sqa)}).fingerprint != base


def test_recipe_blocks_validate_against_the_registry():
    model = {"encoder": {"type": "hf_clip", "name_or_path": "zoo:tiny-clip"},
             "connector": {"type": "mlp"}, "llm": {"type": "hf_causal_lm", "name_or_path": "zoo:tiny-llama"}}
    data = {"type": "scienceqa", "root": "/data/sqa", "split": "test", "answer_format": "CQM-A"}
    recipe = recipe_from_dict({"name": "r", "model": model, "answer_format": "QCM-LEA",
                               "eval": {"data": data, "evaluator": "scienceqa"}})
    assert recipe.eval.data.answer_format.type == "CQM-A"
    assert recipe.answer_format.type == "QCM-LEA"
    with pytest.raises(RecipeError, match="QCM-LAE"):
        recipe_from_dict({"name": "r", "model": model, "answer_format": "QCM-LAE"})
