import json
import os

import pytest

from ablate.errors import DataError

from data_helpers import record, write_json


def build(registries, path, image_root=None, on_bad_sample="error", **cfg):
    block = {"path": str(path), "image_root": str(image_root) if image_root else None, **cfg}
    return registries.data_source.get("llava_json").build(block, on_bad_sample=on_bad_sample)


def test_happy_path(registries, tmp_path, image_root):
    path = write_json(tmp_path / "chat.json", [
        record("000001", "a.png", extra_field="kept"),
        record(2, "sub/b.png", question="Colour?", answer="Blue."),
        record("text-only", None, question="Hi", answer="Hello"),
    ])
    source = build(registries, path, image_root, data_type="conversation")
    samples = source.samples()
    assert source.name == "chat"
    assert [s["id"] for s in samples] == ["000001", "2", "text-only"]
    assert samples[0] == {
        "id": "000001",
        "image": str(image_root / "a.png"),
        "conversations": [{"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": "A red square."}],
        "data_type": "conversation",
        "meta": {"extra_field": "kept"},
    }
    assert samples[1]["image"] == str(image_root / "sub" / "b.png")
    assert samples[2]["image"] is None
    assert source.skipped == []
    json.dumps(samples)  # Sample dicts are JSON-serialisable


def test_limit_data_type_field_and_default_root(registries, tmp_path):
    from data_helpers import write_png

    write_png(tmp_path / "a.png")
    path = write_json(tmp_path / "d.json", [
        record("x", type="detail"), record("y", type="reasoning"), record("z", type="detail"),
    ])
    source = build(registries, path, data_type_field="type", limit=2)  # image_root: the file's folder
    samples = source.samples()
    assert [(s["id"], s["data_type"]) for s in samples] == [("x", "detail"), ("y", "reasoning")]
    assert samples[0]["image"] == str(tmp_path / "a.png")


def test_jsonl(registries, tmp_path, image_root):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [record("a"), record("b")]) + "\n")
    assert [s["id"] for s in build(registries, path, image_root)] == ["a", "b"]


def test_fingerprint_follows_file_and_config(registries, tmp_path, image_root):
    path = write_json(tmp_path / "d.json", [record("a")])
    first = build(registries, path, image_root).fingerprint
    assert build(registries, path, image_root).fingerprint == first
    assert build(registries, path, image_root, limit=1).fingerprint != first
    assert build(registries, path, image_root, on_bad_sample="skip").fingerprint != first
    write_json(path, [record("a"), record("b")])
    os.utime(path, ns=(1, 1))
    assert build(registries, path, image_root).fingerprint != first


def test_missing_data_file_says_download(registries, tmp_path, image_root):
    with pytest.raises(DataError) as err:
        build(registries, tmp_path / "llava_instruct_150k.json", image_root)
    assert str(tmp_path / "llava_instruct_150k.json") in str(err.value) and "Download" in str(err.value)


def test_home_is_expanded(registries, tmp_path, image_root, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_json(tmp_path / "d.json", [record("a")])
    assert len(build(registries, "~/d.json", image_root).samples()) == 1


def _turns(*pairs):
    return [{"from": who, "value": text} for who, text in pairs]


BAD = {
    "missing image": (record("s1", "gone.png"), "s1", "image file not found"),
    "not an object": (["a", "list"], "#1", "not an object"),
    "no id": ({"conversations": _turns(("human", "hi"), ("gpt", "yo"))}, "#1", "no usable 'id'"),
    "no conversations": ({"id": "s2", "image": "a.png"}, "s2", "non-empty list"),
    "turn without value": ({"id": "s3", "conversations": [{"from": "human"}]}, "s3", "turn 0"),
    "two opening gpt turns": ({"id": "s4", "image": "a.png", "conversations": _turns(
        ("gpt", "hello"), ("gpt", "hi"), ("human", "<image>\nx"), ("gpt", "y"))}, "s4", "alternate"),
    "nothing answered": ({"id": "s4b", "image": "a.png", "conversations": _turns(
        ("gpt", "hello"), ("human", "<image>\nx"))}, "s4b", "no gpt turn answers a human turn"),
    "a question only": ({"id": "s4c", "conversations": _turns(("human", "x"))}, "s4c", "no gpt turn answers"),
    "two human turns": ({"id": "s5", "image": "a.png",
                         "conversations": _turns(("human", "<image>\nhi"), ("human", "x"))}, "s5", "alternate"),
    "unknown role": ({"id": "s6", "conversations": _turns(("user", "hi"), ("gpt", "x"))}, "s6", "alternate"),
    "placeholder in the opening gpt turn": ({"id": "s7", "image": "a.png", "conversations": _turns(
        ("gpt", "<image>\nhello"), ("human", "hi"), ("gpt", "x"))}, "s7", "in a gpt turn"),
    "image without placeholder": (record("s8", "a.png", question="no placeholder") | {
        "conversations": _turns(("human", "no placeholder"), ("gpt", "x"))}, "s8", "<image> is missing"),
    "placeholder without image": (record("s9", None) | {
        "conversations": _turns(("human", "<image>\nhi"), ("gpt", "x"))}, "s9", "has no image"),
    "two placeholders": (record("s10") | {
        "conversations": _turns(("human", "<image>\n<image>"), ("gpt", "x"))}, "s10", "appears 2 times"),
    "placeholder in gpt": (record("s11") | {
        "conversations": _turns(("human", "<image>\nhi"), ("gpt", "<image>"))}, "s11", "in a gpt turn"),
    "escaping path": (record("s12", "../outside.png"), "s12", "escapes the image root"),
    "absolute path": (record("s13", "/etc/hostname"), "s13", "escapes the image root"),
    "nested escape": (record("s14", "sub/../../outside.png"), "s14", "escapes the image root"),
    "image not a string": (record("s15", 5), "s15", "non-empty string path"),
}


def test_opening_gpt_and_closing_human_turns_are_kept_as_given(registries, tmp_path, image_root):
    """LLaVA's preprocessing drops an opening gpt turn and leaves a closing question unanswered;
    the source keeps every turn (the template decides, the run counts them)."""
    opening = _turns(("gpt", "Hello!"), ("human", "<image>\nWhat is this?"), ("gpt", "A red square."))
    closing = _turns(("human", "Hi"), ("gpt", "Hello"), ("human", "Bye?"))
    path = write_json(tmp_path / "mix.json", [{"id": "g", "image": "a.png", "conversations": opening},
                                              {"id": "h", "conversations": closing}])
    source = build(registries, path, image_root)
    assert [s["conversations"] for s in source.samples()] == [opening, closing]
    assert source.skipped == []


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sample_raises_naming_file_and_id(registries, tmp_path, image_root, case):
    from data_helpers import write_png

    write_png(tmp_path / "outside.png")  # exists, but outside the root
    bad, sample_id, reason = BAD[case]
    path = write_json(tmp_path / "data.json", [record("good"), bad])
    source = build(registries, path, image_root)
    with pytest.raises(DataError) as err:
        source.samples()
    message = str(err.value)
    assert message.startswith(f"{path}: sample {sample_id!r}: "), message
    assert reason in message


def test_invalid_json_file(registries, tmp_path, image_root):
    path = tmp_path / "broken.json"
    path.write_text("[{")
    with pytest.raises(DataError, match="broken.json:1: not a valid JSON file"):
        build(registries, path, image_root).samples()
    write_json(path, {"not": "a list"})
    with pytest.raises(DataError, match="expected a JSON list"):
        build(registries, path, image_root).samples()


def test_invalid_jsonl_line(registries, tmp_path, image_root):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(record("a")) + "\n{oops\n")
    with pytest.raises(DataError, match=r"d.jsonl: sample 'line 2': not valid JSON"):
        build(registries, path, image_root).samples()


def test_skip_mode_records_every_skip(registries, tmp_path, image_root):
    bads = [BAD[k][0] for k in ("missing image", "two opening gpt turns", "escaping path", "no id")]
    path = write_json(tmp_path / "data.json", [record("g1"), *bads, record("g2", "sub/b.png")])
    source = build(registries, path, image_root, on_bad_sample="skip")
    assert [s["id"] for s in source.samples()] == ["g1", "g2"]
    assert [sid for sid, _ in source.skipped] == ["s1", "s4", "s12", "#4"]
    assert "image file not found" in source.skipped[0][1]
    source.samples()  # a second pass reports the same skips, not twice as many
    assert len(source.skipped) == 4


def test_limit_counts_good_samples_in_skip_mode(registries, tmp_path, image_root):
    path = write_json(tmp_path / "data.json", [record("g1"), BAD["missing image"][0], record("g2"), record("g3")])
    source = build(registries, path, image_root, on_bad_sample="skip", limit=2)
    assert [s["id"] for s in source.samples()] == ["g1", "g2"]
    assert [sid for sid, _ in source.skipped] == ["s1"]


def test_bad_on_bad_sample_value(registries, tmp_path, image_root):
    path = write_json(tmp_path / "data.json", [record("a")])
    with pytest.raises(DataError, match="on_bad_sample"):
        build(registries, path, image_root, on_bad_sample="ignore")


def test_unknown_config_key_is_rejected(registries, tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="image_folder"):
        registries.data_source.get("llava_json").make_config({"path": "x.json", "image_folder": "y"})
