"""Derived data kept between runs (the feature cache, the data pipeline's Arrow rows and its
template check) after a crash, a full disk or a stray edit. Features that cannot be trusted are
named with the folder to delete, never read; the data cache is derived from the data files
alone, so a damaged copy is written again (said in a warning), never trained on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ablate.errors import AblateError
from ablate.features.store import INDEX, META, ROWS, RowStore
from ablate.registry import registries
from bad_input_helpers import write
from data_helpers import record, write_png


def stored(tmp_path) -> RowStore:
    """A store of three 3x4 rows, as a run leaves it."""
    store = RowStore(tmp_path / "cache", (3, 4), np.float32)
    rng = np.random.default_rng(0)
    store.add({(f"img{i}.png", 10, 20): rng.standard_normal((3, 4)).astype(np.float32) for i in range(3)})
    return store


def flip(path, at):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGE = {
    "meta-not-json": (META, lambda p: p.write_text("{ half"), "cannot be read"),
    "meta-not-an-object": (META, lambda p: p.write_text("[]"), "not a JSON object"),
    "index-head-garbage": (INDEX, lambda p: p.write_text("garbage\n"), "first line"),
    "index-line-garbage": (INDEX, lambda p: p.write_text(p.read_text().replace('{"key"', "{not json", 1)), "row 0"),
    "index-row-out-of-order": (INDEX, lambda p: p.write_text(p.read_text().replace('"row": 1', '"row": 7')), "row 1"),
    "rows-truncated": (ROWS, lambda p: p.write_bytes(p.read_bytes()[:50]), "has 50 bytes"),
    "rows-missing": (ROWS, lambda p: p.unlink(), "is missing"),
    "rows-byte-flipped": (ROWS, lambda p: flip(p, 3 * 4 * 4 + 5), "row 1 no longer matches"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_feature_cache_is_named_never_read(tmp_path, damage):
    store = stored(tmp_path)
    name, harm, words = DAMAGE[damage]
    harm(store.directory / name)
    with pytest.raises(AblateError) as info:
        reader = RowStore(store.directory, (3, 4), np.float32)
        reader.read(reader.rows([(f"img{i}.png", 10, 20) for i in range(3)]))
    message = str(info.value)
    for word in (str(store.directory / name), words, f"delete {store.directory}"):
        assert word in message, message


def test_feature_cache_with_a_flipped_byte_through_the_cache(tmp_path):
    """FeatureCache reads go through the same check: the flip is named, not trained on."""
    from feature_parts import PatchEncoder, write_images

    from ablate.features.cache import FeatureCache

    images = write_images(tmp_path / "images", 2)
    cache = FeatureCache(tmp_path / "features", PatchEncoder())
    cache.get_many(images)
    flip(cache.directory / ROWS, 7)
    with pytest.raises(AblateError, match=r"rows\.bin is damaged: row 0 no longer matches"):
        FeatureCache(tmp_path / "features", PatchEncoder()).get_many(images)


def llava_source(tmp_path):
    write_png(tmp_path / "a.png")
    path = write(tmp_path / "d.json", json.dumps([record(str(i), answer=f"Answer {i}.") for i in range(4)]))
    return registries().data_source.get("llava_json").build({"path": str(path)}, on_bad_sample="error")


@pytest.mark.parametrize("harm", ["truncated", "byte-flipped", "emptied"])
def test_damaged_arrow_rows_are_written_again(tmp_path, harm):
    """The stage key covers the data files, not the cached rows: rows changed on disk would be
    trained on under the key of the data. A changed copy is written again from the source."""
    from ablate.data.pipeline import raw_dataset

    source = llava_source(tmp_path)
    first = raw_dataset(source, tmp_path / "cache")
    expected = first.to_list()
    arrow = next((tmp_path / "cache").glob("raw-*.arrow"))
    del first
    size = arrow.stat().st_size
    if harm == "truncated":
        arrow.write_bytes(arrow.read_bytes()[: size // 2])
    elif harm == "byte-flipped":
        flip(arrow, arrow.read_bytes().index(b"Answer 2"))  # still a valid Arrow file, with other text
    else:
        arrow.write_bytes(b"")
    with pytest.warns(UserWarning, match=rf"data cache {arrow} does not match the sha256"):
        again = raw_dataset(source, tmp_path / "cache")
    assert again.to_list() == expected


def test_damaged_template_check_is_computed_again(tmp_path):
    """The template check's cached result is derived too: garbage there is not a traceback, and
    rows it names must be rows of the data."""
    from ablate.data.pipeline import raw_dataset
    from ablate.data.template_check import render_errors
    from ablate.registry import registries as regs

    raw = raw_dataset(llava_source(tmp_path), tmp_path / "cache")
    template = regs().template.get("plain").build({})
    assert render_errors(raw, template) == []
    check = next((tmp_path / "cache").glob("check-*.json"))
    for garbage in ("{ half", '{"a": 1}', '[[99, "made up"]]', '[["0", "x"]]'):
        check.write_text(garbage)
        assert render_errors(raw, template) == []
