"""`iter_json_list`: a JSON list read item by item gives json.load's items and read_json_file's errors."""

from __future__ import annotations

import json
import random

import pytest

from ablate.data.sources.base import iter_json_list, read_json_file
from ablate.errors import DataError


def records(n: int) -> list:
    rng = random.Random(0)
    words = ["plain", "naïve", "日本語", "emoji 🙂", 'quote "x"', "back\\slash", "tab\there", "line\nbreak"]
    return [{"id": i, "n": rng.random() * 10 ** rng.randint(0, 12), "big": 10 ** 20 + i, "ok": i % 2 == 0,
             "none": None, "text": " ".join(rng.choices(words, k=rng.randint(0, 30)))} for i in range(n)]


@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 22])  # items, numbers and UTF-8 characters cut by chunks
def test_items_equal_json_load(tmp_path, indent, chunk):
    data = records(60)
    path = tmp_path / "d.json"
    path.write_text(json.dumps(data, indent=indent, ensure_ascii=False), encoding="utf-8")
    assert list(iter_json_list(path, chunk=chunk)) == data == json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("text", ["[]", " \n[ ]\n ", "[1]", "[[1, [2]], {}]", '["]", ","]'])
def test_small_lists(tmp_path, text):
    path = tmp_path / "d.json"
    path.write_text(text)
    assert list(iter_json_list(path, chunk=2)) == json.loads(text)


def message(call) -> str:
    with pytest.raises(DataError) as info:
        call()
    return str(info.value)


def dumped(n: int, indent: int | None = 1) -> bytes:
    return json.dumps(records(n), indent=indent, ensure_ascii=False).encode()


@pytest.mark.parametrize("content", [
    dumped(40).replace("naïve".encode(), b"na\xefve", 1),  # a bad byte, late
    dumped(40).replace("日本語".encode(), "日本語".encode()[:4], 1),  # a character cut short
    dumped(40)[:-40],  # cut short
    dumped(40).replace(b'"ok"', b'"ok" 1', 1),  # missing colon
    dumped(3, None) + b" x",  # extra data
    dumped(3, None).replace(b"}, {", b"} {", 1),  # missing comma
    b"[1, 2,", b"[" * 100_000 + b"]" * 100_000, "\ufeff[1]".encode(), "[1]".encode("utf-16"), b"\xff\xfe[]", b"",
])
def test_errors_match_read_json_file(tmp_path, content):
    """The same message as reading the whole file: its line, byte and reason."""
    path = tmp_path / "d.json"
    path.write_bytes(content)
    expected = message(lambda: read_json_file(path))
    for chunk in (5, 1 << 22):
        assert message(lambda: list(iter_json_list(path, chunk=chunk))) == expected


def test_a_file_that_is_not_a_list(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{"id": 1}')
    assert message(lambda: list(iter_json_list(path, of=" of records"))) == \
        f"{path}: expected a JSON list of records, got dict"
