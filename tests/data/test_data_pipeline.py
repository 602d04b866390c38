import json
from pathlib import Path

import pytest

from ablate.components.contracts import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from ablate.data.pipeline import COLUMNS, build_dataset, default_cache_dir
from ablate.errors import DataError
from ablate.templates.plain import PlainTemplate

from data_helpers import record, write_json

ENCODED: list[str] = []  # sample ids CountingPlain has encoded (module-level: not part of its hash)


class CountingPlain(PlainTemplate):
    def encode(self, conversations, tokenizer, *, sample_id=None, max_length=None):
        ENCODED.append(sample_id)
        return super().encode(conversations, tokenizer, sample_id=sample_id, max_length=max_length)


@pytest.fixture(scope="module")
def tokenizer():
    from ablate.zoo.tokenizer import build_tokenizer

    return build_tokenizer()


def easy(registries, style="caption", **cfg):
    return registries.data_source.get("easy_vqa").build({"style": style, "images_limit": 6, **cfg})


def test_columns_and_values(registries, tokenizer, tmp_path):
    template = registries.template.get("vicuna_v1").build({})
    source = easy(registries, "reasoning")
    ds = build_dataset(source, template, tokenizer, cache_dir=tmp_path)
    assert ds.column_names == list(COLUMNS) and len(ds) == 6
    for row, sample in zip(ds, source.samples()):
        ids, labels = template.encode(sample["conversations"], tokenizer, sample_id=sample["id"])
        assert row["id"] == sample["id"] and row["image"] == sample["image"]
        assert row["input_ids"] == ids and row["labels"] == labels and row["length"] == len(ids)
        assert row["data_type"] == "reasoning" and json.loads(row["meta"]) == sample["meta"]
        assert ids.count(IMAGE_TOKEN_INDEX) == 1 and any(label != IGNORE_INDEX for label in labels)
    assert all(Path(f["filename"]).is_relative_to(tmp_path) for f in ds.cache_files)


def test_second_call_hits_the_cache(registries, tokenizer, tmp_path):
    ENCODED.clear()
    first = build_dataset(easy(registries), CountingPlain(), tokenizer, cache_dir=tmp_path)
    assert len(ENCODED) == 6
    files = sorted(p.name for p in tmp_path.rglob("*.arrow"))
    again = build_dataset(easy(registries), CountingPlain(), tokenizer, cache_dir=tmp_path)  # fresh source object
    assert len(ENCODED) == 6  # nothing re-tokenized
    assert sorted(p.name for p in tmp_path.rglob("*.arrow")) == files
    assert again.cache_files == first.cache_files and again["input_ids"] == first["input_ids"]


def test_other_inputs_miss_the_cache(registries, tokenizer, tmp_path):
    plain = registries.template.get("plain").build({})
    base = build_dataset(easy(registries), plain, tokenizer, cache_dir=tmp_path)
    other_template = build_dataset(easy(registries), registries.template.get("vicuna_v1").build({}), tokenizer,
                                   cache_dir=tmp_path)
    other_source = build_dataset(easy(registries, images_limit=5), plain, tokenizer, cache_dir=tmp_path)
    shorter = build_dataset(easy(registries), plain, tokenizer, cache_dir=tmp_path, max_length=6)
    files = {ds.cache_files[0]["filename"] for ds in (base, other_template, other_source, shorter)}
    assert len(files) == 4 and len(other_source) == 5
    assert max(shorter["length"]) == 6 < max(base["length"])


def test_skipped_samples_survive_a_cache_hit(registries, tokenizer, tmp_path, image_root):
    path = write_json(tmp_path / "d.json", [record("good"), record("bad", "gone.png"), record("good2")])
    block = {"path": str(path), "image_root": str(image_root)}
    plain = registries.template.get("plain").build({})
    for _ in range(2):  # second pass: from the cache
        source = registries.data_source.get("llava_json").build(block, on_bad_sample="skip")
        ds = build_dataset(source, plain, tokenizer, cache_dir=tmp_path / "cache", on_bad_sample="skip")
        assert ds["id"] == ["good", "good2"]
        assert [sid for sid, _ in source.skipped] == ["bad"] and "image file not found" in source.skipped[0][1]


def test_template_errors_skip_or_raise(registries, tokenizer, tmp_path, image_root):
    records = [record("short", answer="ok"), record("long", question="word " * 40, answer="fine")]
    path = write_json(tmp_path / "d.json", records)
    template = registries.template.get("vicuna_v1").build({})
    source = registries.data_source.get("llava_json").build({"path": str(path), "image_root": str(image_root)})
    limit = len(template.encode(records[0]["conversations"], tokenizer)[0])
    ds = build_dataset(source, template, tokenizer, cache_dir=tmp_path / "c", max_length=limit, on_bad_sample="skip")
    assert ds["id"] == ["short"]
    assert [sid for sid, _ in source.skipped] == ["long"] and source.skipped[0][1].startswith("tokenization: ")
    with pytest.raises(DataError, match="'long'"):
        build_dataset(source, template, tokenizer, cache_dir=tmp_path / "c2", max_length=limit)


def test_every_sample_skipped(registries, tokenizer, tmp_path, image_root):
    path = write_json(tmp_path / "d.json", [record("bad", "gone.png")])
    source = registries.data_source.get("llava_json").build(
        {"path": str(path), "image_root": str(image_root)}, on_bad_sample="skip")
    with pytest.raises(DataError, match="every sample was skipped"):
        build_dataset(source, PlainTemplate(), tokenizer, cache_dir=tmp_path / "c", on_bad_sample="skip")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "datasets"
    monkeypatch.delenv("ABLATE_HOME")
    assert default_cache_dir() == Path("~/.cache/ablate/datasets").expanduser()


def test_sharded_tokenization_gives_the_rows_of_one_process(registries, tokenizer, tmp_path):
    """What torchrun ranks do: each tokenizes its own shard, then all read every shard from the
    cache; the rows equal one process tokenizing everything, and nothing is encoded twice."""
    from ablate.data.pipeline import raw_dataset, tokenize_shard

    whole = build_dataset(easy(registries, "qa"), CountingPlain(), tokenizer, cache_dir=tmp_path / "one")
    source = easy(registries, "qa")
    raw = raw_dataset(source, tmp_path / "sharded")
    ENCODED.clear()
    for rank in range(3):  # three "ranks", one after the other here
        tokenize_shard(raw, CountingPlain(), tokenizer, index=rank, shards=3)
    encoded_by_ranks = sorted(ENCODED)
    read = build_dataset(source, CountingPlain(), tokenizer, cache_dir=tmp_path / "sharded", shards=3)
    assert sorted(ENCODED) == encoded_by_ranks == sorted(whole["id"])  # the last call encoded nothing
    assert read["id"] == whole["id"] and read["input_ids"] == whole["input_ids"] and read["labels"] == whole["labels"]
