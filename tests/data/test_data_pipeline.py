import json
from pathlib import Path

import pytest
import torch

from ablate.components.contracts import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from ablate.data.collate import SkippedSampleWarning, VLMCollator
from ablate.data.pipeline import COLUMNS, build_dataset, default_cache_dir
from ablate.errors import DataError
from ablate.templates.plain import PlainTemplate

from data_helpers import record, write_json

ENCODED: list[str] = []  # sample ids CountingPlain has encoded (module-level: not part of its state)


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


def counted(source):
    """`source`, counting how often it is iterated."""
    passes = []
    inner = source.iter_samples
    source.iter_samples = lambda: passes.append(1) or inner()
    return source, passes


def test_columns_and_values(registries, tokenizer, tmp_path):
    template = registries.template.get("vicuna_v1").build({})
    source = easy(registries, "reasoning")
    ds = build_dataset(source, template, tokenizer, cache_dir=tmp_path)
    assert len(ds) == 6 and set(COLUMNS) <= set(ds[0])
    for row, sample in zip(ds, source.samples()):
        ids, labels = template.encode(sample["conversations"], tokenizer, sample_id=sample["id"])
        words = sum(len(turn["value"].split()) for turn in sample["conversations"])
        assert row["id"] == sample["id"] and row["image"] == sample["image"] and row["error"] is None
        assert row["input_ids"] == ids and row["labels"] == labels
        assert row["length"] == words + 128 and row["modality_length"] == words  # LLaVA's estimates
        assert row["data_type"] == "reasoning" and json.loads(row["meta"]) == sample["meta"]
        assert ids.count(IMAGE_TOKEN_INDEX) == 1 and any(label != IGNORE_INDEX for label in labels)
    assert all(Path(f["filename"]).is_relative_to(tmp_path) for f in ds.cache_files)


def test_nothing_is_tokenized_before_rows_are_read(registries, tokenizer, tmp_path):
    ENCODED.clear()
    ds = build_dataset(easy(registries), CountingPlain(), tokenizer, cache_dir=tmp_path)
    assert ds["length"] and ds["image"] and ENCODED == []  # column reads tokenize nothing
    batch = ds[2:4]
    assert ENCODED == batch["id"] == ds["id"][2:4] and len(batch["input_ids"]) == 2


def test_text_only_samples_have_negative_modality_lengths(registries, tokenizer, tmp_path, image_root):
    path = write_json(tmp_path / "d.json", [record("img"), record("text", None, question="Say hi.", answer="Hi there.")])
    source = registries.data_source.get("llava_json").build({"path": str(path), "image_root": str(image_root)})
    ds = build_dataset(source, registries.template.get("vicuna_v1").build({}), tokenizer, cache_dir=tmp_path / "c")
    # "<image>\nWhat is this?" + "A red square." is 7 words
    assert ds["modality_length"] == [7, -4] and ds["length"] == [7 + 128, 4]
    assert IMAGE_TOKEN_INDEX not in ds[1]["input_ids"]


def test_second_call_reads_the_samples_from_the_cache(registries, tokenizer, tmp_path):
    source, passes = counted(easy(registries))
    first = build_dataset(source, CountingPlain(), tokenizer, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.rglob("*.arrow"))
    again_source, again_passes = counted(easy(registries))  # a fresh source object
    again = build_dataset(again_source, CountingPlain(), tokenizer, cache_dir=tmp_path)
    assert passes == [1] and again_passes == []
    assert sorted(p.name for p in tmp_path.rglob("*.arrow")) == files and len(files) == 1
    assert again.cache_files == first.cache_files and again["id"] == first["id"]


def test_other_inputs(registries, tokenizer, tmp_path):
    plain = registries.template.get("plain").build({})
    base = build_dataset(easy(registries), plain, tokenizer, cache_dir=tmp_path)
    other_template = build_dataset(easy(registries), registries.template.get("vicuna_v1").build({}), tokenizer,
                                   cache_dir=tmp_path)
    other_source = build_dataset(easy(registries, images_limit=5), plain, tokenizer, cache_dir=tmp_path)
    shorter = build_dataset(easy(registries), plain, tokenizer, cache_dir=tmp_path, max_length=6)
    assert len({p.name for p in tmp_path.rglob("*.arrow")}) == 2  # one raw file per source
    assert len(other_source) == 5 and base[0]["input_ids"] != other_template[0]["input_ids"]
    assert max(len(row["input_ids"]) for row in shorter) == 6 < max(len(row["input_ids"]) for row in base)


def test_skipped_samples_survive_a_cache_hit(registries, tokenizer, tmp_path, image_root):
    path = write_json(tmp_path / "d.json", [record("good"), record("bad", "gone.png"), record("good2")])
    block = {"path": str(path), "image_root": str(image_root)}
    plain = registries.template.get("plain").build({})
    for _ in range(2):  # second pass: from the cache
        source = registries.data_source.get("llava_json").build(block, on_bad_sample="skip")
        ds = build_dataset(source, plain, tokenizer, cache_dir=tmp_path / "cache", on_bad_sample="skip")
        assert ds["id"] == ["good", "good2"] and [row["id"] for row in ds] == ["good", "good2"]
        assert [sid for sid, _ in source.skipped] == ["bad"] and "image file not found" in source.skipped[0][1]


def test_template_errors_found_by_tokenizing_show_when_the_sample_is_read(registries, tokenizer, tmp_path,
                                                                          image_root):
    records = [record("short", answer="ok"), record("long", question="word " * 40, answer="fine"),
               record("long2", question="word " * 50, answer="fine")]
    path = write_json(tmp_path / "d.json", records)
    template = registries.template.get("vicuna_v1").build({})
    source = registries.data_source.get("llava_json").build({"path": str(path), "image_root": str(image_root)})
    limit = len(template.encode(records[0]["conversations"], tokenizer)[0])
    ds = build_dataset(source, template, tokenizer, cache_dir=tmp_path / "c", max_length=limit, on_bad_sample="skip")
    assert ds["id"] == ["short", "long", "long2"] and ds[0]["error"] is None and source.skipped == []
    assert ds[1]["input_ids"] == [] and ds[1]["error"].startswith("tokenization: template 'vicuna_v1', sample 'long'")
    collate = VLMCollator(tokenizer, feature_lookup=lambda *_: torch.zeros(2, 3))
    with pytest.warns(SkippedSampleWarning, match="'long'"):
        assert collate(list(ds)[:2])["input_ids"].shape[0] == 1  # the batch goes on without it
    with pytest.warns(SkippedSampleWarning), pytest.raises(DataError, match="every sample of a batch was skipped"):
        collate(list(ds)[1:])
    strict = build_dataset(source, template, tokenizer, cache_dir=tmp_path / "c", max_length=limit)
    assert strict[0]["id"] == "short"
    with pytest.raises(DataError, match="sample 'long'.*no supervised token left"):
        strict[1]


def test_template_errors_found_without_tokenizing_come_before_training(registries, tokenizer, tmp_path, image_root):
    turns = [("human", "<image>\nHi?"), ("gpt", "Hi."), ("human", "And?"), ("gpt", "Bye.")]
    two_pairs = record("multi", conversations=[{"from": role, "value": text} for role, text in turns])
    path = write_json(tmp_path / "d.json", [record("one"), two_pairs, record("gone", "gone.png")])
    block = {"path": str(path), "image_root": str(image_root)}
    for _ in range(2):  # the second time from the cache
        source = registries.data_source.get("llava_json").build(block, on_bad_sample="skip")
        ds = build_dataset(source, PlainTemplate(), tokenizer, cache_dir=tmp_path / "c", on_bad_sample="skip")
        assert ds["id"] == ["one"] and [sid for sid, _ in source.skipped] == ["multi", "gone"]
        assert source.skipped[0][1].startswith("template 'plain', sample 'multi': needs one human turn")
    assert len(list((tmp_path / "c").glob("check-*.json"))) == 1
    source = registries.data_source.get("llava_json").build(block, on_bad_sample="skip")
    with pytest.raises(DataError, match="^template 'plain', sample 'multi': needs one human turn"):
        build_dataset(source, PlainTemplate(), tokenizer, cache_dir=tmp_path / "c")


def test_every_sample_skipped(registries, tokenizer, tmp_path, image_root):
    path = write_json(tmp_path / "d.json", [record("bad", "gone.png")])
    source = registries.data_source.get("llava_json").build(
        {"path": str(path), "image_root": str(image_root)}, on_bad_sample="skip")
    with pytest.raises(DataError, match="every sample was skipped"):
        build_dataset(source, PlainTemplate(), tokenizer, cache_dir=tmp_path / "c", on_bad_sample="skip")


def test_bad_on_bad_sample_value(registries, tokenizer, tmp_path):
    with pytest.raises(DataError, match="on_bad_sample must be"):
        build_dataset(easy(registries), PlainTemplate(), tokenizer, cache_dir=tmp_path, on_bad_sample="ignore")


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "datasets"
    monkeypatch.delenv("ABLATE_HOME")
    assert default_cache_dir() == Path("~/.cache/ablate/datasets").expanduser()


def test_dataloader_workers_tokenize_the_rows(registries, tokenizer, tmp_path):
    """What a stage with dataloader_workers does: the transform runs in the worker processes."""
    from torch.utils.data import DataLoader

    template = registries.template.get("vicuna_v1").build({})
    source = easy(registries, "qa")
    ds = build_dataset(source, template, tokenizer, cache_dir=tmp_path)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=lambda rows: rows)
    read = [row for batch in loader for row in batch]
    expected = [template.encode(s["conversations"], tokenizer, sample_id=s["id"]) for s in source.samples()]
    assert [(row["input_ids"], row["labels"]) for row in read] == [(list(i), list(l)) for i, l in expected]
