"""Records that open with a gpt turn or close with a human turn, as mix665k has them.

LLaVA's preprocessing drops an opening gpt turn and trains on the rest. A closing human turn
stays in the text ("USER: {question} ") with nothing to answer it, and LLaVA masks the whole
record ("tokenization mismatch"): vicuna_v1 does exactly that.
"""

from __future__ import annotations

import pytest
from llava_reference import IGNORE, llava_preprocess_v1, llava_v1_prompt

from ablate.templates import VicunaV1Template

X, IMG = -100, -200


def h(text):
    return {"from": "human", "value": text}


def g(text):
    return {"from": "gpt", "value": text}


ONE_ROUND = [h("Color?\n<image>"), g("Red")]
CLOSING_QUESTION = [*ONE_ROUND, h("Shape?")]


def test_an_opening_gpt_turn_is_dropped(zoo_tokenizer):
    template = VicunaV1Template(system_prompt="A chat.")
    with_opening = [g("Hi, what would you like to know?"), *ONE_ROUND, h("Shape?"), g("2 circles")]
    assert template.encode(with_opening, zoo_tokenizer) == template.encode(with_opening[1:], zoo_tokenizer)
    assert template.render(with_opening) == template.render(with_opening[1:])
    assert template.prompt_ids(with_opening, zoo_tokenizer) == template.prompt_ids(with_opening[1:], zoo_tokenizer)


def test_a_closing_human_turn_is_rendered_and_masked(zoo_tokenizer):
    template = VicunaV1Template(system_prompt="A chat.")
    assert template.render(CLOSING_QUESTION) == "A chat. USER: <image>\nColor? ASSISTANT: Red</s>USER: Shape? "
    ids, labels = template.encode(CLOSING_QUESTION, zoo_tokenizer)
    # <s> ▁A ▁chat . ▁USER : ▁ <image> ▁ \n C ol or ? ▁ASSISTANT : | ▁Red </s> | USE R : ▁Sha pe ? ▁
    assert ids == [1, 366, 453, 272, 422, 284, 353, IMG, 353, 13, 293, 493, 474, 289, 471, 284, 1094, 2,
                   410, 308, 284, 820, 392, 289, 353]
    assert labels == [X] * 25  # the whole record, as LLaVA masks it
    # the same ids as the record without its closing turn, then the question
    short_ids, short_labels = template.encode(ONE_ROUND, zoo_tokenizer)
    assert ids[:18] == short_ids and short_labels == [X] * 16 + [1094, 2]
    # generation prompts the closing question
    assert template.prompt_ids(CLOSING_QUESTION, zoo_tokenizer) == ids[:24] + [471, 284]  # ▁ASSISTANT :


def test_an_opening_gpt_turn_and_a_closing_question_together(zoo_tokenizer):
    template = VicunaV1Template(system_prompt="A chat.")
    both = [g("Welcome."), *CLOSING_QUESTION]
    assert template.encode(both, zoo_tokenizer) == template.encode(CLOSING_QUESTION, zoo_tokenizer)


@pytest.mark.parametrize("variant", ["v1.3", "v1.5"])
def test_closing_question_ids_equal_llavas(vicuna, variant):
    """The ids and labels are LLaVA's: its round arithmetic stops at the unanswered question,
    finds fewer tokens than the text has ("tokenization mismatch") and masks the whole record."""
    tok, slow = vicuna[variant]
    conversation = [h("<image>\nWhat shape is it?"), g("A circle."), h("What colour is it?"), g("Red."), h("Big?")]
    ids, labels, mismatch = llava_preprocess_v1(conversation, slow, max_length=2048)
    got_ids, got_labels = VicunaV1Template().encode(conversation, tok)
    assert got_ids == ids and mismatch and got_labels == labels == [IGNORE] * len(ids)
    assert llava_v1_prompt(conversation).endswith("USER: Big? ")
