"""The language-pretrained zoo Llama, built here with a few steps instead of the real 1,000."""

import dataclasses
import collections
import itertools
import random
import json
import re

import pytest
import torch

from ablate import zoo
from ablate.zoo.text_pretrain import LETTERS, DocumentRows, documents, image_facts

SHORT = {"steps": 3, "lr": 1e-3, "batch_size": 2}
FACTS = [("circle", "blue", [("is there a red shape?", "no"), ("what color is the shape?", "blue"),
                              ("is there a circle?", "yes")]),
         ("triangle", "teal", [("is there not a triangle?", "no")])]


@pytest.fixture
def short_spec(monkeypatch):
    spec = dataclasses.replace(zoo.ZOO["tiny-llama-easyvqa"], pretrain=SHORT)
    monkeypatch.setitem(zoo.ZOO, "tiny-llama-easyvqa", spec)
    return spec


def _parse(doc: str):
    description, *lines = doc.split("\n")
    assert len(lines) % 2 == 0 and all(q.startswith("Q: ") and a.startswith("A: ") for q, a in zip(lines[::2], lines[1::2]))
    return description, [(q[3:], a[3:]) for q, a in zip(lines[::2], lines[1::2])]


def _kind(question: str, answer: str, shape: str, color: str, qas) -> str:
    from ablate.data.sources.easyvqa_facts import COLORS, SHAPES, names_present

    options = re.findall(r"\(([A-E])\) (\w+)", question)
    if options:  # multiple choice: the answer letter names the option that matches the description
        assert 2 <= len(options) <= 5 and [letter for letter, _ in options] == list(LETTERS[: len(options)])
        assert dict(options)[answer] in (shape, color) and len({word for _, word in options}) == len(options)
        return "choice"
    if (question, answer) in qas:
        return "own"
    named = [w for w in re.findall(r"\w+", question) if w in SHAPES or w in COLORS]
    assert len(named) == 1 and answer in ("yes", "no")  # a balanced yes/no question, answered from the facts
    assert names_present(question, answer) == (named[0] in (shape, color))
    return "color" if named[0] in COLORS else "shape"


def test_documents_state_true_facts_and_repeat_for_a_seed():
    docs = list(itertools.islice(documents(FACTS, seed=5), 600))
    assert docs == list(itertools.islice(documents(FACTS, seed=5), 600))
    assert docs != list(itertools.islice(documents(FACTS, seed=6), 600))
    kinds = collections.Counter()
    for doc in docs:
        description, pairs = _parse(doc)
        shape, color, qas = next(f for f in FACTS if f"{f[1]} {f[0]}." in description)
        kinds.update(_kind(q, a, shape, color, qas) for q, a in pairs)
    assert set(kinds) == {"choice", "own", "color", "shape"}


def test_recall_documents_put_a_passage_between_the_description_and_its_questions():
    from ablate.data.sources.easyvqa_facts import COLORS, SHAPES
    from ablate.zoo.text_pretrain import PASSAGE_LENGTH, PASSAGE_SENTENCES

    plain = list(itertools.islice(documents(FACTS, seed=5), 300))
    assert list(itertools.islice(documents(FACTS, seed=5, recall_share=0.0), 300)) == plain  # same stream as before
    docs = list(itertools.islice(documents(FACTS, seed=5, recall_share=0.5), 2000))
    passages = [doc.split("\n")[1] for doc in docs if not doc.split("\n")[1].startswith("Q: ")]
    assert 0.45 < len(passages) / len(docs) < 0.55
    pattern = re.compile("|".join(re.escape(s) for s in PASSAGE_SENTENCES))
    for passage in passages:
        sentences = pattern.findall(passage)
        assert " ".join(sentences) == passage and len(set(sentences)) == len(sentences)
        assert PASSAGE_LENGTH[0] <= len(sentences) <= PASSAGE_LENGTH[1]
    words = {w.lower().strip(".,") for s in PASSAGE_SENTENCES for w in s.split()}
    assert not words & (set(COLORS) | set(SHAPES))  # the passage never answers the question
    for doc in docs:  # without the passage, a document is one the plain stream could hold
        lines = doc.split("\n")
        description, pairs = _parse("\n".join(lines[:1] + lines[2:] if lines[1] in passages else lines))
        shape, color, qas = next(f for f in FACTS if f"{f[1]} {f[0]}." in description)
        for question, answer in pairs:
            _kind(question, answer, shape, color, qas)


def test_recall_entry_continues_the_pretrained_tiny_llama_with_recall_documents():
    plain, recall = zoo.ZOO["tiny-llama-easyvqa"], zoo.ZOO["tiny-llama-easyvqa-recall"]
    assert recall.start_from == plain.name and recall.config == plain.config
    assert recall.pretrain["recall_share"] == 0.5
    assert recall.fingerprint()["start_from"] == plain.fingerprint()  # rebuilt when the entry it continues changes


def test_a_passage_is_read_but_not_scored():
    from ablate.zoo.text_pretrain import passage_span
    from ablate.zoo.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    doc = "A blue circle.\nRain falls from clouds. Wind is air that moves.\nQ: is there a red shape?\nA: no"
    assert doc[slice(*passage_span(doc))] == "\nRain falls from clouds. Wind is air that moves."
    assert passage_span("A blue circle.\nQ: is there a circle?\nA: yes") == (0, 0)
    row = next(iter(DocumentRows(iter([doc]), tokenizer)))
    assert row["input_ids"] == tokenizer(doc).input_ids + [tokenizer.eos_token_id]
    scored = tokenizer.decode([i for i, label in zip(row["input_ids"], row["labels"]) if label != -100])
    assert scored == "<s> A blue circle.\nQ: is there a red shape?\nA: no</s>"
    assert [label for label in row["labels"] if label != -100] == [
        i for i, label in zip(row["input_ids"], row["labels"]) if label != -100]


def test_continued_entry_starts_from_the_built_weights_of_the_one_it_continues(tmp_path, monkeypatch):
    from transformers import LlamaForCausalLM

    steps = {"tiny-llama-easyvqa": 12, "tiny-llama-easyvqa-recall": 1}
    for name, n in steps.items():
        monkeypatch.setitem(zoo.ZOO, name, dataclasses.replace(zoo.ZOO[name], pretrain={**SHORT, "steps": n}))
    monkeypatch.setenv("ABLATE_HOME", str(tmp_path))
    later = LlamaForCausalLM.from_pretrained(zoo.build("tiny-llama-easyvqa-recall"))  # builds its start first
    start = LlamaForCausalLM.from_pretrained(zoo.zoo_dir() / "tiny-llama-easyvqa")
    seeded = LlamaForCausalLM.from_pretrained(zoo.build("tiny-llama"))

    def distance(a, b) -> float:
        return sum((p - q).abs().sum().item() for p, q in zip(a.parameters(), b.parameters()))

    # one step from the start's weights (which are twelve from the seeded ones)
    assert 0 < distance(later, start) < distance(later, seeded) / 3


def test_presence_questions_are_plain_and_name_the_images_colour_half_the_time():
    from ablate.data.sources.easyvqa_facts import is_negated
    from ablate.zoo.text_pretrain import presence_question, presence_templates

    templates = presence_templates(image_facts("train"))
    assert len(templates["color"]) == len(templates["shape"]) == 4
    assert all("{color} shape" in t for t in templates["color"]) and all("{shape}" in t for t in templates["shape"])
    rng = random.Random(0)
    asked = [presence_question("circle", "teal", templates, rng) for _ in range(4000)]
    assert not any(is_negated(q) for q, _ in asked)  # no XOR with negation: "yes" means named and there
    colour = [(q, a) for q, a in asked if "shape" in q.split()]
    assert all((a == "yes") == ("teal" in q) for q, a in colour)
    assert 0.45 < sum(a == "yes" for _, a in colour) / len(colour) < 0.55  # easy-VQA's own: 1 in 8


def test_facts_come_from_the_train_split_only():
    facts = image_facts("train")
    assert len(facts) == 4000
    import easy_vqa

    test_questions = set(easy_vqa.get_test_questions()[0]) - set(easy_vqa.get_train_questions()[0])
    for _, _, qas in facts:
        assert not any(question in test_questions for question, _ in qas)


def test_every_document_is_its_own_row_from_bos_to_eos_and_padding_is_not_scored():
    from transformers import DataCollatorForSeq2Seq

    from ablate.zoo.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    docs = ["A blue circle.\nQ: is there a red shape?\nA: no", "This is a teal triangle.\nQ: x\nA: y"]
    rows = list(DocumentRows(iter(docs), tokenizer))
    assert [row["input_ids"] for row in rows] == [tokenizer(d).input_ids + [tokenizer.eos_token_id] for d in docs]
    assert all(row["input_ids"][0] == tokenizer.bos_token_id and row["labels"] == row["input_ids"] for row in rows)
    batch = DataCollatorForSeq2Seq(tokenizer, padding=True, return_tensors="pt")(rows)
    short, long = sorted(range(2), key=lambda i: len(rows[i]["input_ids"]))
    n = len(rows[short]["input_ids"])
    assert batch["labels"][short, n:].eq(-100).all() and batch["attention_mask"][short, n:].eq(0).all()
    assert batch["labels"][long].tolist() == rows[long]["input_ids"]


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


def test_a_copy_document_asks_for_a_name_number_or_word_it_stated():
    import random
    import re

    from ablate.zoo.text_pretrain import copy_document, copy_words, passage_span

    words = copy_words()
    assert {"rabbit", "jacket", "kettle"} <= set(words) and all(w.islower() and len(w) >= 3 for w in words)
    rng = random.Random(0)
    docs = [copy_document(rng, words) for _ in range(200)]
    assert docs == [copy_document(r, words) for r in [random.Random(0)] for _ in range(200)]  # seeded
    assert copy_document(random.Random(0), words) == (
        "Lena has 17 small. Maria picked market. Priya has 16 opposite.\nA thermometer measures temperature. Ice "
        "melts when it gets warm. Water boils when it is heated enough. Most plants make their food from "
        "sunlight.\nQ: Who has 17 small?\nA: Lena")
    with_passage = 0
    for doc in docs:
        facts, answer = doc.split("\n")[0], doc.rsplit("\nA: ", 1)[1]
        assert re.search(rf"\b{re.escape(answer)}\b", facts)  # copied from the facts
        with_passage += passage_span(doc) != (0, 0)
    assert 120 <= with_passage <= 180  # COPY_PASSAGE_SHARE = 0.75


def test_copy_share_mixes_copy_documents_into_the_stream_and_zero_keeps_it_as_before():
    from itertools import islice

    from ablate.zoo.text_pretrain import documents

    plain = list(islice(documents(FACTS, seed=5), 50))
    assert list(islice(documents(FACTS, seed=5, copy_share=0.0), 50)) == plain
    mixed = list(islice(documents(FACTS, seed=5, copy_share=0.5), 400))
    copies = sum(doc.startswith(tuple(__import__("ablate.scienceqa.families", fromlist=["NAMES"]).NAMES))
                 for doc in mixed)
    assert 160 <= copies <= 240


def test_a_continued_entry_has_the_vocabulary_of_the_one_it_continues():
    for spec in zoo.ZOO.values():
        if spec.start_from is not None:  # its embeddings are the start's: the tokenizer must match
            assert spec.vocabulary == zoo.ZOO[spec.start_from].vocabulary, spec.name
    copy = zoo.ZOO["tiny-llama-easyvqa-copy"]
    assert copy.start_from == "tiny-llama-easyvqa-sqa" and copy.pretrain["copy_share"] == 0.5
