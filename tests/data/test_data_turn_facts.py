"""What the pipeline reads from each record's turns: LLaVA's length estimate for the modality
sampler, and the opening gpt / closing human turns the run summary counts."""

from __future__ import annotations

import pytest

from ablate.data.pipeline import build_dataset, conversation_facts, modality_lengths, turn_edge_counts
from ablate.errors import AblateError

from data_helpers import write_json


def h(text):
    return {"from": "human", "value": text}


def g(text):
    return {"from": "gpt", "value": text}


RECORDS = [
    # words: "<image>", "What", "is", "this?" + "A", "red", "square." = 7
    {"id": "img", "image": "a.png", "conversations": [h("<image>\nWhat is this?"), g("A red square.")]},
    # 2 + 1 + 3 (tabs and newlines split words as str.split does) = 6
    {"id": "text", "conversations": [h("Name\tone."), g("Green."), h("And\n\nanother?  "), g("Blue.")]},
    # an opening reply (3 words, counted as LLaVA counts it) + 3 + 2 = 8
    {"id": "opening", "image": "sub/b.png", "conversations": [g("Hello there, friend."), h("<image>\nWhat colour?"),
                                                               g("Blue, mostly.")]},
    # a closing question: 2 + 1 + 2 = 5
    {"id": "closing", "conversations": [h("Hi there"), g("Hello."), h("Bye now")]},
]


@pytest.fixture(scope="module")
def tokenizer():
    from ablate.zoo.tokenizer import build_tokenizer

    return build_tokenizer()


def _dataset(registries, tokenizer, tmp_path, image_root, template="vicuna_v1", on_bad_sample="error"):
    path = write_json(tmp_path / "mix.json", RECORDS)
    source = registries.data_source.get("llava_json").build({"path": str(path), "image_root": str(image_root)},
                                                             on_bad_sample=on_bad_sample)
    built = registries.template.get(template).build({})
    return build_dataset(source, built, tokenizer, cache_dir=tmp_path / "cache", on_bad_sample=on_bad_sample), source


def test_conversation_facts():
    assert conversation_facts(RECORDS[2]["conversations"], has_image=True) == {
        "length": 8 + 128, "modality_length": 8, "opens_with_gpt": True, "ends_with_human": False}
    assert conversation_facts(RECORDS[3]["conversations"], has_image=False) == {
        "length": 5, "modality_length": -5, "opens_with_gpt": False, "ends_with_human": True}
    assert conversation_facts([], has_image=False) == {
        "length": 0, "modality_length": 0, "opens_with_gpt": False, "ends_with_human": False}


def test_columns_lengths_and_counts(registries, tokenizer, tmp_path, image_root):
    ds, _ = _dataset(registries, tokenizer, tmp_path, image_root)
    assert ds["id"] == ["img", "text", "opening", "closing"]
    assert ds["modality_length"] == [7, -6, 8, -5]
    assert ds["opens_with_gpt"] == [False, False, True, False]
    assert ds["ends_with_human"] == [False, False, False, True]
    assert modality_lengths(ds) == ([7, 6, 8, 5], [True, False, True, False])
    assert turn_edge_counts(ds) == {"opening_gpt_turns_dropped": 1, "closing_human_turns_masked": 1}


def test_counts_and_lengths_skip_what_the_template_rejected(registries, tokenizer, tmp_path, image_root):
    """plain takes one question and one caption: every record but the first is skipped, so
    nothing is counted, and the lengths are those of the rows left (an indices mapping)."""
    ds, source = _dataset(registries, tokenizer, tmp_path, image_root, template="plain", on_bad_sample="skip")
    assert ds["id"] == ["img"] and [sid for sid, _ in source.skipped] == ["text", "opening", "closing"]
    assert modality_lengths(ds) == ([7], [True])
    assert turn_edge_counts(ds) == {"opening_gpt_turns_dropped": 0, "closing_human_turns_masked": 0}


def test_modality_lengths_need_the_pipeline_columns():
    from datasets import Dataset

    with pytest.raises(AblateError, match=r"group_by_modality_length needs the columns \['modality_length'\]"):
        modality_lengths(Dataset.from_dict({"image": [None], "input_ids": [[1]]}))
