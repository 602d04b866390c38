"""Rows tokenized when read equal what tokenizing every sample before training gave (the
pipeline before lazy tokenization: `template.encode` on each sample in order, samples it
rejects dropped), on mix665k-shaped records: text-only, multi-turn, truncated at max_length.
For `plain` (LLaVA-1.5 stage 1) and `vicuna_v1` (stage 2), with the zoo's tokenizer and with
Vicuna-layout SentencePiece checkpoints (`tokenizer.model` only, both legacy settings)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ablate.components.contracts import IMAGE_TOKEN_INDEX
from ablate.data.pipeline import build_dataset
from ablate.errors import DataError

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "templates"), str(TESTS.parent / "benchmarks")]
from mix665k_shape import write_mix665k_like  # noqa: E402
from vicuna_folders import load_tokenizer, vicuna_corpus, vicuna_folder  # noqa: E402

RECORDS, MAX_LENGTH = 300, 192


@pytest.fixture(scope="module")
def mix665k_like(tmp_path_factory):
    path, root = write_mix665k_like(tmp_path_factory.mktemp("mix"), RECORDS, seed=3)
    return {"type": "llava_v1_5_mix665k", "path": str(path), "image_root": str(root)}


@pytest.fixture(scope="module", params=["zoo", "vicuna-v1.5", "vicuna-v1.3"])
def tokenizer(request, tmp_path_factory):
    if request.param == "zoo":
        from ablate.zoo.tokenizer import build_tokenizer

        return build_tokenizer()
    legacy = None if request.param == "vicuna-v1.3" else False  # v1.3 has no "legacy": the slow tokenizer's True
    root = tmp_path_factory.mktemp("vicuna")
    return load_tokenizer(vicuna_folder(root, request.param, vicuna_corpus(user_after_space=False), legacy))


def eager(source, template, tokenizer) -> tuple[list[tuple[str, list[int], list[int]]], list[tuple[str, str]]]:
    """(id, input_ids, labels) of every sample encoded up front, and (id, reason) of those it rejects."""
    kept, rejected = [], []
    for sample in source.samples():
        try:
            ids, labels = template.encode(sample["conversations"], tokenizer, sample_id=sample["id"],
                                          max_length=MAX_LENGTH)
        except DataError as exc:
            rejected.append((sample["id"], str(exc)))
            continue
        kept.append((sample["id"], ids, labels))
    return kept, rejected


@pytest.mark.parametrize("template_name", ["plain", "vicuna_v1"])
def test_rows_equal_up_front_tokenization(registries, mix665k_like, tokenizer, template_name, tmp_path):
    template = registries.template.get(template_name).build({})
    source = registries.mixture.get(mix665k_like["type"]).build(mix665k_like, on_bad_sample="skip")
    expected, rejected = eager(source, template, tokenizer)
    order = {sample["id"]: n for n, sample in enumerate(source.samples())}
    dataset = build_dataset(source, template, tokenizer, cache_dir=tmp_path, max_length=MAX_LENGTH,
                            on_bad_sample="skip")
    rows = [row for start in range(0, len(dataset), 64)  # what a DataLoader asks for: batches of indices
            for row in dataset.__getitems__(list(range(start, min(start + 64, len(dataset)))))]
    assert [(r["id"], r["input_ids"], r["labels"]) for r in rows if r["error"] is None] == expected
    # rejected before training (no tokenizer needed) or when read (found by tokenizing), same reasons
    when_read = [(r["id"], r["error"].removeprefix("tokenization: ")) for r in rows if r["error"] is not None]
    assert sorted(source.skipped + when_read, key=lambda item: order[item[0]]) == rejected
    assert [dataset[i]["input_ids"] for i in (0, len(dataset) - 1)] == [rows[0]["input_ids"], rows[-1]["input_ids"]]
    kept = [ids for _, ids, _ in expected]
    assert sum(len(ids) == MAX_LENGTH for ids in kept) >= 10  # truncated samples are covered
    if template_name == "vicuna_v1":
        assert sum(IMAGE_TOKEN_INDEX not in ids for ids in kept) >= 5  # text-only
        assert sum(ids.count(tokenizer.eos_token_id) > 1 for ids in kept) >= 20  # multi-turn
        assert when_read  # prompts longer than MAX_LENGTH
    else:
        assert len(source.skipped) >= 100  # plain takes one image and one caption: not multi-turn records
