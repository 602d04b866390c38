"""Exact ids and labels on the zoo tokenizer, bad input, truncation, registry wiring."""

from __future__ import annotations

import pickle

import pytest
from pydantic import ValidationError

from ablate.errors import AblateError, DataError
from ablate.registry import Registries
from ablate.templates import VICUNA_V1_SYSTEM, PlainTemplate, VicunaV1Template, register

X = -100  # IGNORE_INDEX
IMG = -200  # IMAGE_TOKEN_INDEX


def h(text):
    return {"from": "human", "value": text}


def g(text):
    return {"from": "gpt", "value": text}


TWO_ROUNDS = [h("Color?\n<image>"), g("Red"), h("Shape?"), g("2 circles")]
CAPTION = [h("<image>\nCaption it."), g("A blue circle.")]


# ---- exact values: a tokenizer or template change shows up here --------------------------------


def test_vicuna_exact_ids_and_labels(zoo_tokenizer):
    template = VicunaV1Template(system_prompt="A chat.")
    assert template.render(TWO_ROUNDS) == "A chat. USER: <image>\nColor? ASSISTANT: Red</s>USER: Shape? ASSISTANT: 2 circles</s>"
    ids, labels = template.encode(TWO_ROUNDS, zoo_tokenizer)
    # <s> ▁A ▁chat . ▁USER : ▁ <image> ▁ \n C ol or ? ▁ASSISTANT : | ▁Red </s> |
    # USE R : ▁Sha pe ? ▁ASSISTANT : | ▁ 2 ▁c ircles </s>
    assert ids == [1, 366, 453, 272, 422, 284, 353, IMG, 353, 13, 293, 493, 474, 289, 471, 284, 1094, 2,
                   410, 308, 284, 820, 392, 289, 471, 284, 353, 276, 363, 1034, 2]
    assert labels == [X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, X, 1094, 2,
                      X, X, X, X, X, X, X, X, 353, 276, 363, 1034, 2]
    assert template.prompt_ids(TWO_ROUNDS, zoo_tokenizer) == ids[:26]


def test_plain_exact_ids_and_labels(zoo_tokenizer):
    template = PlainTemplate()
    assert template.render(CAPTION) == "<image>A blue circle.\n"
    # <s> <image> ▁A ▁blue ▁circle . \n
    assert template.encode(CAPTION, zoo_tokenizer) == (
        [1, IMG, 366, 532, 523, 272, 13],
        [X, X, 366, 532, 523, 272, 13],
    )
    assert template.prompt_ids(CAPTION, zoo_tokenizer) == [1, IMG]


def test_default_system_prompt_is_llavas():
    text = VicunaV1Template().render([h("Hi"), g("Hello")])
    assert text == VICUNA_V1_SYSTEM + " USER: Hi ASSISTANT: Hello</s>"
    assert VICUNA_V1_SYSTEM.startswith("A chat between a curious user and an artificial intelligence assistant.")


def test_prompt_is_a_prefix_of_the_training_ids(zoo_tokenizer):
    """Generation continues exactly where training's supervised reply starts."""
    conversation = [h("<image>\nWhat is the colour of the circle?"), g("Green")]
    template = VicunaV1Template()
    ids, labels = template.encode(conversation, zoo_tokenizer)
    prompt = template.prompt_ids(conversation, zoo_tokenizer)
    assert ids[: len(prompt)] == prompt
    assert all(label == X for label in labels[: len(prompt)])
    assert labels[len(prompt):] == ids[len(prompt):]


def test_prompt_of_a_conversation_ending_with_a_question(zoo_tokenizer):
    template = VicunaV1Template(system_prompt="S")
    conversation = [h("<image> Q1"), g("A1"), h("Q2")]
    assert template.render_prompt(conversation) == "S USER: <image>\nQ1 ASSISTANT: A1</s>USER: Q2 ASSISTANT:"
    assert template.render_prompt(conversation + [g("A2")]) == template.render_prompt(conversation)


def test_clean_prediction():
    vicuna, plain = VicunaV1Template(), PlainTemplate()
    assert vicuna.clean_prediction(" Red</s>USER: and more ASSISTANT: x") == "Red"
    assert vicuna.clean_prediction("\n A circle. \n") == "A circle."
    assert plain.clean_prediction("A cat on a mat.\n</s>") == "A cat on a mat."


# ---- truncation -------------------------------------------------------------------------------


def test_truncation_keeps_a_prefix(zoo_tokenizer):
    template = VicunaV1Template(system_prompt="A chat.")
    ids, labels = template.encode(TWO_ROUNDS, zoo_tokenizer)
    assert template.encode(TWO_ROUNDS, zoo_tokenizer, max_length=17) == (ids[:17], labels[:17])
    assert template.encode(TWO_ROUNDS, zoo_tokenizer, max_length=100) == (ids, labels)


def test_truncation_that_leaves_nothing_to_learn_is_an_error(zoo_tokenizer):
    template = VicunaV1Template(system_prompt="A chat.")
    with pytest.raises(DataError, match=r"sample 'q7'.*no supervised token left after truncation to 16"):
        template.encode(TWO_ROUNDS, zoo_tokenizer, sample_id="q7", max_length=16)
    with pytest.raises(DataError, match="cuts off the image placeholder"):
        template.encode(TWO_ROUNDS, zoo_tokenizer, sample_id="q7", max_length=5)
    with pytest.raises(DataError, match="no supervised token left after truncation to 2 tokens"):
        PlainTemplate().encode(CAPTION, zoo_tokenizer, max_length=2)


# ---- bad conversations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "conversation, message",
    [
        ([{"from": "user", "value": "Hi"}, g("Hello")], "turn 0 is from 'user'"),
        ([h("Hi"), h("Again"), g("Hello")], "must alternate human, gpt"),
        ([h("Hi"), g("")], "gpt turn 1 is empty"),
        ([h(""), g("Hello")], "human turn 0 is empty"),
        ([h("Hi")], "no gpt turn answers a human turn"),
        ([g("Welcome."), h("Hi")], "no gpt turn answers a human turn"),
        ([h("Hi"), g("<image> Hello")], "<image> is in a gpt turn"),
        ([h("<image> and <image>"), g("Two")], "2 <image> placeholders"),
        ([h("Hi"), {"from": "gpt"}], "turn 1 must be a dict with 'from' and 'value'"),
        ([], "non-empty list of turns"),
        ("Hi", "non-empty list of turns"),
    ],
)
def test_vicuna_rejects_bad_conversations(zoo_tokenizer, conversation, message):
    with pytest.raises(DataError, match=r"template 'vicuna_v1', sample 'bad-1'") as caught:
        VicunaV1Template().encode(conversation, zoo_tokenizer, sample_id="bad-1")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "conversation, message",
    [
        ([h("<image>"), g("A cat."), h("More?"), g("No.")], "one human turn with <image> and one gpt caption"),
        ([h("A photo"), g("A cat.")], "the human turn has no <image>"),
        ([h("<image>"), g("  ")], "the caption is empty"),
    ],
)
def test_plain_rejects_bad_conversations(zoo_tokenizer, conversation, message):
    with pytest.raises(DataError, match="sample 'cap-3'") as caught:
        PlainTemplate().encode(conversation, zoo_tokenizer, sample_id="cap-3")
    assert message in str(caught.value)


def test_a_token_shared_by_prompt_and_reply_is_an_error(zoo_pieces):
    """A tokenizer that merges ": " into one token cannot be masked exactly: say so."""
    from transformers import LlamaTokenizer

    vocab, merges = zoo_pieces
    tokenizer = LlamaTokenizer(
        vocab={**vocab, ":▁": len(vocab)}, merges=[(":", "▁"), *merges], legacy=False, add_bos_token=True,
        unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<unk>",
    )
    with pytest.raises(DataError, match=r"sample 's1': token \d+ \(id \d+, characters \d+-\d+\) crosses the edge"):
        VicunaV1Template().encode([h("Hi"), g("Hello")], tokenizer, sample_id="s1")


def test_slow_tokenizers_are_refused():
    class SlowTokenizer:
        is_fast = False

    with pytest.raises(AblateError, match="needs a fast .*got SlowTokenizer"):
        VicunaV1Template().encode([h("Hi"), g("Hello")], SlowTokenizer())


# ---- registry and configs ------------------------------------------------------------------------


def test_registered_builders_and_configs():
    registries = Registries()
    register(registries)
    assert registries.template.names() == ["plain", "vicuna_v1"]
    vicuna = registries.template.get("vicuna_v1").build({"system_prompt": "Be brief."})
    assert isinstance(vicuna, VicunaV1Template)
    assert vicuna.render([h("Hi"), g("Hello")]) == "Be brief. USER: Hi ASSISTANT: Hello</s>"
    assert registries.template.get("vicuna_v1").build().system == VICUNA_V1_SYSTEM
    assert isinstance(registries.template.get("plain").build({}), PlainTemplate)
    with pytest.raises(ValidationError):
        registries.template.get("vicuna_v1").build({"system": "typo"})
    with pytest.raises(ValidationError):
        registries.template.get("plain").build({"sep": "\n"})


def test_templates_pickle_for_dataset_workers(zoo_tokenizer):
    template = pickle.loads(pickle.dumps(VicunaV1Template(system_prompt="S")))
    assert template.encode(TWO_ROUNDS, zoo_tokenizer) == VicunaV1Template(system_prompt="S").encode(TWO_ROUNDS, zoo_tokenizer)
