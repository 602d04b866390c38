"""Data files a source cannot use: encodings, shapes, folders for files, files for folders, and
sources whose every sample is bad. Sources are built through the registry as a run builds them
(fast); one case goes through `ablate run` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablate.errors import DataError
from ablate.registry import registries
from bad_input_helpers import assert_rejected, cli, good_recipe, tiny_run, write
from data_helpers import record, write_png  # tests/data and tests/scienceqa, put on sys.path by bad_input_helpers
from sqa_helpers import problem, write_scienceqa


def llava(path, on_bad_sample="error", **config):
    source = registries().data_source.get("llava_json").build({"path": str(path), **config}, on_bad_sample=on_bad_sample)
    return source.samples()


def good_records(n=3):
    return [record(str(i)) for i in range(n)]


def json_bytes(records) -> bytes:
    return json.dumps(records).encode()


# (file name, content, on_bad_sample, words besides the file name)
LLAVA_FILES = [
    ("d.json", json_bytes(good_records()).replace(b"red", b"r\xe9d", 1), "error", ["not UTF-8", "d.json:1"]),
    ("d.json", json.dumps(good_records()).encode("utf-16"), "error", ["not UTF-8"]),
    ("d.json", b"\xff\xfe[]", "error", ["not UTF-8"]),
    ("d.json", json.dumps(good_records())[:-1] + ', {"id": "3", "conv', "error", ["not a valid JSON file", "d.json:1"]),
    ("d.json", "", "error", ["not a valid JSON file"]),
    ("d.json", json.dumps(good_records())[:-1] + ",\n]", "error", ["d.json:2", "Illegal trailing comma"]),
    ("d.json", '{"id": 1}', "error", ["expected a JSON list"]),
    ("d.json", "[" * 100_000 + "]" * 100_000, "error", ["nested too deeply"]),
    ("d.json", "[]", "error", ["has no samples"]),
    ("d.json", "[]", "skip", ["has no samples"]),
    ("d.jsonl", "", "error", ["has no samples"]),
    ("d.jsonl", json_bytes(record("a")) + b"\n\xff\xfe\n", "error", ["line 2", "not UTF-8"]),
    ("d.jsonl", b"\xc3\x28\n", "skip", ["every sample was skipped", "line 1", "not UTF-8"]),
    ("d.jsonl", "not json\n{also not\n", "skip", ["every sample was skipped (2 of 2", "not valid JSON"]),
    ("d.json", json.dumps([record("0", "gone.png"), record("1", "gone.png")]), "skip",
     ["every sample was skipped (2 of 2", "'0'", "gone.png"]),
    ("d.json", json.dumps([record("0", "../outside.png")]), "error", ["'0'", "escapes the image root"]),
    ("d.json", json.dumps([record("0", "folder")]), "error", ["'0'", "image file not found"]),
    ("d.json", json.dumps([record("0", "")]), "error", ["'0'", "non-empty string path"]),
    ("d.json", json.dumps([{"id": "0", "conversations": "hi"}]), "error", ["'0'", "non-empty list"]),
    ("d.json", json.dumps(["just a string"]), "error", ["record 0 is a str"]),
    ("d.json", json.dumps([{"id": True, "conversations": []}]), "error", ["no usable 'id'"]),
    ("d.json", '[{"id": "0", "conversations": [{"from": "human", "value": "q \\ud800"}, {"from": "gpt", "value": "a"}]}]',
     "error", ["'0'", "turn 0 holds a lone surrogate"]),
    ("d.jsonl", '{"id": "\\udfff", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}\n',
     "error", ["no usable 'id'"]),
]


@pytest.mark.parametrize("name, content, policy, words",
                         [pytest.param(*case, id=f"{case[0]}-{i}") for i, case in enumerate(LLAVA_FILES)])
def test_bad_llava_file(tmp_path, name, content, policy, words):
    write_png(tmp_path / "a.png")
    (tmp_path / "folder").mkdir()
    path = write(tmp_path / name, content)
    with pytest.raises(DataError) as info:
        llava(path, policy)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message


def test_llava_paths_that_are_the_wrong_kind(tmp_path):
    write_png(tmp_path / "a.png")
    good = write(tmp_path / "d.json", json.dumps(good_records()))
    with pytest.raises(DataError, match="is a folder"):
        llava(tmp_path)
    with pytest.raises(DataError, match="not found"):
        llava(tmp_path / "missing.json")
    with pytest.raises(DataError, match=r"image_root .*a\.png' is not a folder"):
        llava(good, image_root=str(tmp_path / "a.png"))


def test_mixture_whose_only_source_is_all_bad_names_the_file(tmp_path):
    path = write(tmp_path / "d.json", json.dumps([record("0", "gone.png")]))
    mixture = registries().mixture.get("inline").build(
        {"sources": [{"source": {"type": "llava_json", "path": str(path)}}]}, on_bad_sample="skip")
    with pytest.raises(DataError, match=r"d\.json: every sample was skipped \(1 of 1"):
        mixture.samples()


def sqa(root, on_bad_sample="error"):
    return registries().data_source.get("scienceqa").build({"root": str(root)}, on_bad_sample=on_bad_sample)


@pytest.mark.parametrize("file", ["problems.json", "pid_splits.json"])
def test_scienceqa_file_that_is_not_utf8(tmp_path, file):
    root = write_scienceqa(tmp_path / "sqa", {"1": problem("q?", ["a", "b"], 0)}, {"train": ["1"]})
    (root / file).write_bytes((root / file).read_bytes().replace(b'"', b'"\xff', 1))
    with pytest.raises(DataError, match=rf"{file} is not UTF-8 text"):
        sqa(root)


def test_scienceqa_problems_that_is_a_folder(tmp_path):
    root = write_scienceqa(tmp_path / "sqa", {"1": problem("q?", ["a", "b"], 0)}, {"train": ["1"]})
    (root / "problems.json").unlink()
    (root / "problems.json").mkdir()
    with pytest.raises(DataError, match="problems.json is a folder"):
        sqa(root)


def test_scienceqa_every_problem_skipped(tmp_path):
    root = write_scienceqa(tmp_path / "sqa", {"1": problem("q?", ["a", "b"], 0, image="image.png")},
                           {"train": ["1", "2"]}, skip_images={"1"})
    with pytest.raises(DataError, match=r"problems.json \(split train\): every sample was skipped \(2 of 2"):
        sqa(root, "skip")


def test_run_whose_eval_samples_are_all_skipped(tmp_path, capsys):
    """End to end: `ablate run` stops with the source's message, before any evaluation."""
    data_file = write(tmp_path / "eval.json", json.dumps([record("q0", "gone.png"), record("q1", "gone.png")]))
    recipe = good_recipe(tmp_path)
    del recipe["stages"]
    recipe["eval"] = {"data": {"type": "llava_json", "path": str(data_file)}, "template": "plain"}
    recipe["data"] = {"on_bad_sample": "skip"}
    path = write(tmp_path / "recipe.yaml", recipe)
    tiny_run.prepare_store(tmp_path)
    code, out = cli(capsys, "run", path)
    assert_rejected(code, out, data_file, "every sample was skipped (2 of 2", "'q0'", "gone.png")
    assert not list((tmp_path / "out").rglob("predictions.jsonl"))


@pytest.mark.parametrize("name, content", [
    ("eval.json", json_bytes([record("q0")]).replace(b"red", b"r\xe9d", 1)),
    ("eval.jsonl", json_bytes(record("q0")) + b"\n\xff\xfe\n"),
])
def test_run_on_a_data_file_that_is_not_utf8(tmp_path, capsys, name, content):
    """End to end: a latin-1 byte in a JSON or JSONL data file is exit 2 naming the file, with
    nothing written."""
    data_file = write(tmp_path / name, content)
    write_png(tmp_path / "a.png")  # the records' image is there: only the bytes are bad
    recipe = good_recipe(tmp_path)
    del recipe["stages"]
    recipe["eval"] = {"data": {"type": "llava_json", "path": str(data_file)}, "template": "plain"}
    path = write(tmp_path / "recipe.yaml", recipe)
    tiny_run.prepare_store(tmp_path)
    code, out = cli(capsys, "run", path)
    assert_rejected(code, out, data_file, "not UTF-8")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("predictions.jsonl"))


def _eval_only(tmp_path, data: dict) -> Path:
    recipe = good_recipe(tmp_path)
    del recipe["stages"]
    recipe["eval"] = {"data": data, "template": "plain", "max_new_tokens": 2}
    tiny_run.prepare_store(tmp_path)
    return write(tmp_path / "recipe.yaml", recipe)


def test_eval_data_with_a_repeated_sample_id(tmp_path, capsys):
    """Evaluated samples are matched by id (predictions, a study's paired bootstrap): two with one
    id would count as one item in the report, another number than the logged accuracy."""
    write_png(tmp_path / "a.png")
    data_file = write(tmp_path / "eval.json", json.dumps([record("q0"), record("q1"), record("q0", answer="Blue.")]))
    recipe = _eval_only(tmp_path, {"type": "llava_json", "path": str(data_file)})
    code, out = cli(capsys, "run", recipe)
    assert_rejected(code, out, data_file, "sample id 'q0'", "samples 0 and 2")
    assert not list((tmp_path / "out").rglob("predictions.jsonl"))
    assert_rejected(*cli(capsys, "validate", recipe, "--plan"), data_file, "sample id 'q0'")  # before any run


def test_scienceqa_split_that_lists_a_pid_twice(tmp_path, capsys):
    root = write_scienceqa(tmp_path / "sqa", {"1": problem("q?", ["a", "b"], 0), "2": problem("r?", ["a", "b"], 1)},
                           {"test": ["1", "2", "1"]})
    recipe = _eval_only(tmp_path, {"type": "scienceqa", "root": str(root), "split": "test"})
    code, out = cli(capsys, "run", recipe)
    assert_rejected(code, out, root / "problems.json", "sample id '1'", "samples 0 and 2")


def test_scienceqa_split_that_lists_a_pid_problems_json_lacks_stops_validate_plan(tmp_path, capsys):
    """`validate --plan` reads the eval data as the run does before it trains."""
    root = write_scienceqa(tmp_path / "sqa", {"1": problem("q?", ["a", "b"], 0)}, {"test": ["1", "7"]})
    recipe = _eval_only(tmp_path, {"type": "scienceqa", "root": str(root), "split": "test"})
    assert_rejected(*cli(capsys, "validate", recipe, "--plan"), "pid 7 (split test)", "not in problems.json")
    good = write_scienceqa(tmp_path / "good", {"1": problem("q?", ["a", "b"], 0)}, {"test": ["1"]})
    code, out = cli(capsys, "validate", _eval_only(tmp_path, {"type": "scienceqa", "root": str(good), "split": "test"}),
                    "--plan")
    assert code == 0 and "eval: 1 items of scienceqa, scored by" in " ".join(out.split()), out


@pytest.mark.parametrize("file", ["problems.json", "pid_splits.json"])
def test_scienceqa_file_nested_too_deeply(tmp_path, file):
    root = write_scienceqa(tmp_path / "sqa", {"1": problem("q?", ["a", "b"], 0)}, {"train": ["1"]})
    (root / file).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match=rf"{file} is not valid JSON: nested too deeply"):
        sqa(root)


def test_scienceqa_split_that_lists_no_pids(tmp_path):
    root = write_scienceqa(tmp_path / "sqa", {"1": problem("q?", ["a", "b"], 0)}, {"train": ["1"], "test": []})
    with pytest.raises(DataError, match=r"split 'test' in .*pid_splits.json lists no pids"):
        registries().data_source.get("scienceqa").build({"root": str(root), "split": "test"})


@pytest.mark.parametrize("field, value, words", [
    ("split", "../../../outside", "'split' must be a split name"),
    ("split", 7, "'split' must be a split name"),
    ("pid", "..", "pid '..' is not a folder name"),
    ("image", "..", "'image' must be a file name"),
])
def test_scienceqa_image_path_that_leaves_the_root(tmp_path, field, value, words):
    """A problem's image is images/<split>/<pid>/<image>: each part comes from the data files and
    must stay one name, or the source reads an image from outside the ScienceQA folder."""
    outside = write_png(tmp_path / "outside" / "1" / "image.png")
    assert outside.is_file()
    record = problem("q?", ["a", "b"], 0)
    root = write_scienceqa(tmp_path / "sqa" / "data", {"1": record}, {"train": ["1"]})
    pid = value if field == "pid" else "1"
    record = {**record, "image": "image.png", **({field: value} if field != "pid" else {})}
    (root / "problems.json").write_text(json.dumps({pid: record}))
    (root / "pid_splits.json").write_text(json.dumps({"train": [pid]}))
    with pytest.raises(DataError) as info:
        sqa(root)
    assert str(root / "problems.json") in str(info.value) and words in str(info.value), str(info.value)


def test_sixteen_bit_grayscale_image_is_scaled_not_clipped(tmp_path):
    """PIL's convert("RGB") clips 16-bit values at 255: a 16-bit scan would come out white."""
    import numpy as np
    from PIL import Image

    from ablate.data.images import load_image

    path = tmp_path / "scan.png"
    Image.fromarray(np.array([[0, 1000, 30000, 65535]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode == "I;16"
    pixels = np.asarray(load_image(str(path), "scan"))
    assert pixels[0, :, 0].tolist() == [0, 3, 117, 255] and (pixels[..., 0] == pixels[..., 2]).all()
