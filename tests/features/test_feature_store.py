"""RowStore: rows written by one instance are read back exactly by another; crash leftovers are ignored."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ablate.errors import AblateError
from ablate.features.store import INDEX, ROWS, RowStore


def rows_of(seed: int, count: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, 3, 4)).astype(np.float32)


def test_added_rows_read_back_exactly_in_another_instance(tmp_path):
    data = rows_of(0, 3)
    writer = RowStore(tmp_path, (3, 4), np.float32)
    assert writer.add({("a", 1, 2): data[0], ("b", 1, 2): data[1]}) == {("a", 1, 2): 0, ("b", 1, 2): 1}
    assert writer.add({("b", 1, 2): data[2], ("c", 1, 2): data[2]}) == {("b", 1, 2): 1, ("c", 1, 2): 2}

    reader = RowStore(tmp_path, (3, 4), np.float32)
    assert len(reader) == 3
    assert reader.rows([("c", 1, 2), ("a", 1, 2), ("z", 1, 2)]) == [2, 0, None]
    got = reader.read([2, 0, 1])
    np.testing.assert_array_equal(got, np.stack([data[2], data[0], data[1]]))  # "b" kept its first value
    assert (tmp_path / ROWS).stat().st_size == 3 * 3 * 4 * 4


def test_reader_sees_rows_added_after_it_mapped_the_file(tmp_path):
    data = rows_of(1, 2)
    reader = RowStore(tmp_path, (3, 4), np.float32)
    writer = RowStore(tmp_path, (3, 4), np.float32)
    writer.add({"x": data[0]})
    np.testing.assert_array_equal(reader.read(reader.rows(["x"])), data[:1])
    writer.add({"y": data[1]})
    np.testing.assert_array_equal(reader.read(reader.rows(["y", "x"])), data[[1, 0]])


def test_half_written_index_line_is_ignored_then_cut(tmp_path):
    data = rows_of(2, 2)
    store = RowStore(tmp_path, (3, 4), np.float32)
    store.add({"x": data[0]})
    with (tmp_path / INDEX).open("a") as fh:
        fh.write('{"key": ["dead"], "ro')  # a writer killed mid-line
    reader = RowStore(tmp_path, (3, 4), np.float32)
    assert reader.rows(["x", "dead"]) == [0, None]
    reader.add({"y": data[1]})
    header, *lines = (tmp_path / INDEX).read_text().splitlines()
    assert list(json.loads(header)) == ["generation"]
    assert [json.loads(line)["row"] for line in lines] == [0, 1]
    np.testing.assert_array_equal(RowStore(tmp_path, (3, 4), np.float32).read([0, 1]), data)


def test_deleted_cache_is_rebuilt_not_mixed_up(tmp_path):
    import shutil

    data = rows_of(3, 2)
    store = RowStore(tmp_path / "c", (3, 4), np.float32)
    store.add({"x": data[0]})
    shutil.rmtree(tmp_path / "c")
    other = RowStore(tmp_path / "c", (3, 4), np.float32)
    other.add({"y": data[1]})  # row 0 of the new files
    assert store.rows(["y", "x"]) == [0, None]
    np.testing.assert_array_equal(store.read([0]), data[1:])


def test_float16_rows(tmp_path):
    data = rows_of(4, 1)
    store = RowStore(tmp_path, (3, 4), np.float16)
    store.add({"x": data[0]})
    np.testing.assert_array_equal(RowStore(tmp_path, (3, 4), np.float16).read([0])[0], data[0].astype(np.float16))


def test_opening_with_another_shape_is_an_error(tmp_path):
    RowStore(tmp_path, (3, 4), np.float32, meta={"cache_key": "k"})
    with pytest.raises(AblateError, match=r"row_shape: stored \[3, 4\], expected \[3, 5\].*delete that folder"):
        RowStore(tmp_path, (3, 5), np.float32, meta={"cache_key": "k"})
