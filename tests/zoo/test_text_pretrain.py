"""The language-pretrained zoo Llama, built here with a few steps instead of the real 1,000."""

import dataclasses
import itertools
import json
import re

import pytest
import torch

from ablate import zoo
from ablate.zoo.text_pretrain import LETTERS, PackedText, documents, image_facts

SHORT = {"steps": 3, "lr": 1e-3, "batch_size": 2, "block_size": 32}
FACTS = [("circle", "blue", [("is there a red shape?", "no"), ("what color is the shape?", "blue")]),
         ("triangle", "teal", [("is there not a triangle?", "no")])]


@pytest.fixture
def short_spec(monkeypatch):
    spec = dataclasses.replace(zoo.ZOO["tiny-llama-easyvqa"], pretrain=SHORT)
    monkeypatch.setitem(zoo.ZOO, "tiny-llama-easyvqa", spec)
    return spec


def _parse(doc: str):
    description, question, answer = doc.split("\n")
    assert question.startswith("Q: ") and answer.startswith("A: ")
    return description, question[3:], answer[3:]


def test_documents_state_true_facts_and_repeat_for_a_seed():
    docs = list(itertools.islice(documents(FACTS, seed=5), 400))
    assert docs == list(itertools.islice(documents(FACTS, seed=5), 400))
    assert docs != list(itertools.islice(documents(FACTS, seed=6), 400))
    kinds = set()
    for doc in docs:
        description, question, answer = _parse(doc)
        shape, color, qas = next(f for f in FACTS if f"{f[1]} {f[0]}." in description)
        options = re.findall(r"\(([A-E])\) (\w+)", question)
        if options:  # multiple choice: the answer letter names the option that matches the description
            kinds.add("choice")
            assert 2 <= len(options) <= 5 and [letter for letter, _ in options] == list(LETTERS[: len(options)])
            assert dict(options)[answer] in (shape, color)
            assert len({word for _, word in options}) == len(options)
        else:  # one of the package's own questions about that image, with its own answer
            kinds.add("question")
            assert (question, answer) in qas
    assert kinds == {"choice", "question"}


def test_facts_come_from_the_train_split_only():
    facts = image_facts("train")
    assert len(facts) == 4000
    import easy_vqa

    test_questions = set(easy_vqa.get_test_questions()[0]) - set(easy_vqa.get_train_questions()[0])
    for _, _, qas in facts:
        assert not any(question in test_questions for question, _ in qas)


def test_packed_rows_are_the_documents_with_bos_and_eos_cut_into_blocks():
    from ablate.zoo.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    docs = ["A blue circle.\nQ: is there a red shape?\nA: no", "This is a teal triangle.\nQ: x\nA: y"] * 5
    rows = list(PackedText(iter(docs), tokenizer, block_size=16))
    stream = [t for doc in docs for t in tokenizer(doc).input_ids + [tokenizer.eos_token_id]]
    assert len(rows) == len(stream) // 16
    assert torch.cat([row["input_ids"] for row in rows]).tolist() == stream[: 16 * len(rows)]
    assert all(torch.equal(row["input_ids"], row["labels"]) for row in rows)


def test_pretrained_entry_is_a_llama_checkpoint_that_differs_from_the_seeded_one(tmp_path, short_spec):
    from transformers import LlamaForCausalLM

    a = zoo.build("tiny-llama-easyvqa", dest=tmp_path / "a")
    b = zoo.build("tiny-llama-easyvqa", dest=tmp_path / "b")
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").exists() and not (a / ".trainer").exists()
    assert json.loads((a / zoo.SPEC_FILE).read_text())["pretrain"] == SHORT
    seeded = zoo.build("tiny-llama", dest=tmp_path / "seeded")
    trained, untrained = LlamaForCausalLM.from_pretrained(a), LlamaForCausalLM.from_pretrained(seeded)
    assert trained.config.hidden_size == zoo.TINY_LLAMA["hidden_size"]
    assert not torch.equal(trained.model.embed_tokens.weight, untrained.model.embed_tokens.weight)
