"""LLaVA-Bench from its released files: the `llava_bench` source and `ablate data prepare`."""

import json

import pytest
from llava_bench_copy import ANSWERS, COCO_CONTEXT, QUESTIONS, RULES, write_coco_copy, write_wild_copy

from ablate.cli import main
from ablate.registry import registries


def _flat(text: str) -> str:
    """The text without whitespace: the console wraps long paths anywhere."""
    return "".join(text.split())


def _source(config):
    return registries().data_source.get("llava_bench").build(config)


def test_the_coco_copy_becomes_one_sample_per_question(tmp_path):
    copy = write_coco_copy(tmp_path / "bench")
    samples = _source({"path": str(copy)}).samples()
    assert [s["id"] for s in samples] == ["0", "1", "2", "3", "4"]
    first = samples[0]
    assert first == {
        "id": "0", "image": str(copy / "images" / "COCO_val2014_000000000001.jpg"),
        "conversations": [{"from": "human", "value": "<image>\nWhat colour is the bus?"},
                          {"from": "gpt", "value": "The bus is red."}],
        "data_type": "conv",
        "meta": {"category": "conv", "question_id": 0, "question": "What colour is the bus?",
                 "context": COCO_CONTEXT["000000000001.jpg"], "judge_rule": {"key": "conv", **RULES["conv"]}},
    }
    assert [s["conversations"][1]["value"] for s in samples] == [ANSWERS[q["question_id"]] for q in QUESTIONS]
    assert [s["meta"]["judge_rule"]["key"] for s in samples] == ["conv", "detail", "complex", "conv", "complex"]


def test_the_in_the_wild_copy_uses_its_caption_and_rule_keys(tmp_path):
    copy = write_wild_copy(tmp_path / "wild")
    samples = _source({"path": str(copy), "layout": "wild"}).samples()
    assert [s["image"] for s in samples] == [str(copy / "images" / "1.jpg")] * 2
    assert [s["meta"]["context"] for s in samples] == ["A red bus.\nIt waits at a stop."] * 2
    assert [s["meta"]["judge_rule"]["key"] for s in samples] == ["llava_bench_conv", "llava_bench_detail"]


def test_prepare_writes_what_llava_json_reads_back_as_the_same_samples(tmp_path):
    copy = write_coco_copy(tmp_path / "bench")
    assert main(["data", "prepare", "llava-bench-coco", str(copy)]) == 0
    out = copy / "qa90_llava.json"
    assert len(json.loads(out.read_text())) == 5
    again = registries().data_source.get("llava_json").build(
        {"path": str(out), "image_root": str(copy / "images"), "data_type_field": "category"}).samples()
    direct = _source({"path": str(copy)}).samples()
    assert again == direct
    assert main(["data", "prepare", "llava-bench-coco", str(copy)]) == 2  # no silent overwrite
    jsonl = str(tmp_path / "q.jsonl")
    assert main(["data", "prepare", "llava-bench-coco", str(copy), "--overwrite", "--out", jsonl]) == 0
    assert len((tmp_path / "q.jsonl").read_text().splitlines()) == 5


def test_the_rules_file_is_the_users_copy(tmp_path, capsys):
    copy = write_coco_copy(tmp_path / "bench", rules=False)
    assert main(["data", "prepare", "llava-bench-coco", str(copy)]) == 2
    err = _flat(capsys.readouterr().err)
    assert _flat(f"the judge's rules file {copy / 'rule.json'} not found") in err
    assert _flat("llava/eval/table/rule.json in LLaVA's repository") in err
    assert not (copy / "qa90_llava.json").exists()
    elsewhere = tmp_path / "rule.json"
    elsewhere.write_text(json.dumps(RULES))
    assert main(["data", "prepare", "llava-bench-coco", str(copy), "--rules", str(elsewhere)]) == 0


def _break_line(path, number, text):
    lines = path.read_bytes().splitlines(keepends=True)
    lines[number - 1] = text
    path.write_bytes(b"".join(lines))


@pytest.mark.parametrize("file, line, text, message", [
    ("qa90_questions.jsonl", 2, b'{"question_id": 1, "image": "000000000001.jpg", "text": "caf\xe9"}\n',
     "qa90_questions.jsonl:2: not UTF-8 text (byte 60: invalid continuation byte); save it as UTF-8"),
    ("qa90_questions.jsonl", 3, b'{"question_id": 2, "image": "000000000001.jpg", "text": "Why?"}\n',
     "qa90_questions.jsonl:3: field 'category' must be a str (it is missing)"),
    ("qa90_questions.jsonl", 4, b'{"question_id": 9, "image": "000000000002.jpg", "text": "Hm?", "category": "conv"}\n',
     "qa90_questions.jsonl:4: question_id 9 has no answer in"),
    ("qa90_questions.jsonl", 5, b'{"question_id": 4, "image": "000000000002.jpg", "text": "Hm?", "category": "ocr"}\n',
     "rule.json: no rule for category 'ocr'"),
    ("qa90_gpt4_answer.jsonl", 1, b'{"question_id": 4, "text": null}\n',
     "qa90_gpt4_answer.jsonl:1: field 'text' must be a str (got None)"),
    ("caps_boxes_coco2014_val_80.jsonl", 2,
     b'{"image": "000000000002.jpg", "captions": [], "instances": [{"bbox": []}]}\n',
     "caps_boxes_coco2014_val_80.jsonl:2: instance 0: field 'category' must be a str (it is missing)"),
    ("caps_boxes_coco2014_val_80.jsonl", 1, b'{"image": "000000000001.jpg", "captions": ["a"]\n',
     "caps_boxes_coco2014_val_80.jsonl:1: not valid JSON"),
])
def test_a_bad_file_is_one_error_naming_file_and_line(tmp_path, capsys, file, line, text, message):
    copy = write_coco_copy(tmp_path / "bench")
    _break_line(copy / file, line, text)
    assert main(["data", "prepare", "llava-bench-coco", str(copy)]) == 2
    err = _flat(capsys.readouterr().err)
    assert err.startswith("error:") and _flat(message) in err and err.count("error:") == 1
    assert "Traceback" not in err and not (copy / "qa90_llava.json").exists()


def test_a_missing_image_names_both_names_tried(tmp_path, capsys):
    copy = write_coco_copy(tmp_path / "bench")
    (copy / "images" / "COCO_val2014_000000000002.jpg").unlink()
    assert main(["data", "prepare", "llava-bench-coco", str(copy)]) == 2
    err = _flat(capsys.readouterr().err)
    assert _flat(f"qa90_questions.jsonl:4: image not found: {copy / 'images' / '000000000002.jpg'} or "
                 f"{copy / 'images' / 'COCO_val2014_000000000002.jpg'}") in err


def test_an_unknown_benchmark_name_suggests_the_close_one(tmp_path, capsys):
    assert main(["data", "prepare", "llava-bench-cocoo", str(tmp_path)]) == 2
    assert "Did you mean 'llava-bench-coco'?" in capsys.readouterr().err
