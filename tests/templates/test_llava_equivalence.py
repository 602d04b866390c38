"""The templates give the same text, input_ids and labels as LLaVA's own preprocessing.

The checkpoints are laid out like lmsys' Vicuna repos (`tokenizer.model` only, see conftest.py)
and loaded through ablate's LLM loader; the reference is LLaVA's algorithm on the slow
SentencePiece tokenizer LLaVA uses, built on the same `tokenizer.model` (llava_reference.py).
"""

from __future__ import annotations

import pytest

from llava_reference import (
    IGNORE,
    llava_image_tokens,
    llava_multimodal,
    llava_preprocess_plain,
    llava_preprocess_v1,
    llava_v1_prompt,
)
from vicuna_folders import VICUNA_VARIANTS

from ablate.templates import PlainTemplate, VicunaV1Template

MAX_LENGTH = 2048  # LLaVA's model_max_length in every script


def h(text):
    return {"from": "human", "value": text}


def g(text):
    return {"from": "gpt", "value": text}


LONG = (
    "The image shows a large blue circle in the middle of a white background. Next to it there are "
    "two small red squares and a green triangle; the triangle points up.\nIn short: 3 shapes, 2 colours, "
    "and nothing else — 100% simple. Émile's café serves crème brûlée 🍰."
)
# 30 rounds of about 300 tokens: cut at 2048 inside round 7.
MANY_ROUNDS = [turn for k in range(30) for turn in (h(f"Question {k}: what else? {LONG}"), g(LONG))]
CONVERSATIONS = {
    "image_single": [h("<image>\nWhat shape is in the image?"), g("A circle.")],
    "image_space_after": [h("<image> What is this?"), g("A circle.")],
    "image_after_question": [h("What color is the shape?\n<image>"), g("Blue")],
    "image_only_turn": [h("<image>"), g("A green triangle.")],
    "image_only_turn_multi": [h("<image>"), g("A green triangle."), h("Is it big?"), g("No."), h("Sure?"), g("Yes.")],
    "image_multi_turn": [
        h("<image>\nWhat shape is in the image?"), g("A circle."),
        h("What color is it?"), g("It is red."),
        h("How many are there?"), g("3"),
    ],
    "image_second_turn": [h("Hello!"), g("Hi, how can I help?"), h("Describe this. <image>"), g(LONG)],
    "text_only_single": [h("What is 2 + 2?"), g("4")],
    "text_only_multi": [h("Name a colour."), g("Green."), h("Another one?"), g("Yellow, or maybe purple."),
                        h("And one more?"), g("Red.")],
    "long_answer": [h("<image>\nDescribe the image in detail."), g(LONG)],
    "leading_gpt_turn": [g("Welcome."), h("<image>\nIs there a square?"), g("Yes, there are two squares.")],
    "answer_starts_with_digit": [h("<image>\nHow many circles?"), g("1 circle, 2 squares")],
    "answer_starts_with_space": [h("<image>\nHow many circles?"), g(" One.")],
    "newlines_in_answer": [h("List the shapes.\n<image>"), g("- circle\n- square\n\n- triangle")],
    "truncated_image": [h("<image>\n" + MANY_ROUNDS[0]["value"]), *MANY_ROUNDS[1:]],
    "truncated_text_only": MANY_ROUNDS,
}
CAPTIONS = {
    "caption": [h("<image>\nDescribe the image briefly."), g("A red square on a white background.")],
    "caption_image_last": [h("Render a caption: <image>"), g("two blue circles")],
    "caption_digits": [h("<image>"), g("3 green triangles and 1 yellow star")],
    "caption_leading_space": [h("<image>"), g(" A red square.")],
    "caption_long": [h("<image>\n"), g(LONG)],
    "caption_truncated": [h("<image>"), g(" ".join([LONG] * 12))],
}


# ---- the slow tokenizer, pinned down -----------------------------------------------------------


def test_slow_tokenizer_reference(vicuna):
    """What the slow tokenizer does that transformers 5's Llama tokenizer did not: a word-start
    "▁" of its own before text that starts with a space, and (legacy) after "</s>"."""
    _, new = vicuna["v1.5"]
    _, legacy = vicuna["v1.3"]
    assert (new.legacy, legacy.legacy) == (False, True)
    for slow in (new, legacy):
        assert slow.tokenize(" ASSISTANT: A") == ["▁", "▁ASSISTANT", ":", "▁A"]
        assert slow.tokenize("USER") == ["▁", "USER"]
    assert new.tokenize("a.</s>USER") == ["▁a", ".", "</s>", "USER"]
    assert legacy.tokenize("a.</s>USER") == ["▁a", ".", "</s>", "▁", "USER"]


@pytest.mark.parametrize("variant", sorted(VICUNA_VARIANTS))
def test_loaded_tokenizer_reports_the_slow_legacy_flag(vicuna, variant):
    tok, slow = vicuna[variant]
    assert tok.legacy is slow.legacy is VICUNA_VARIANTS[variant][1]


# ---- vicuna_v1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_vicuna_text_equals_llava(name):
    conversation = CONVERSATIONS[name]
    expected = llava_v1_prompt(llava_multimodal(conversation))
    assert VicunaV1Template().render(conversation) == expected


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
@pytest.mark.parametrize("variant", sorted(VICUNA_VARIANTS))
def test_vicuna_ids_and_labels_equal_llava(vicuna, variant, name):
    tok, slow = vicuna[variant]
    conversation = CONVERSATIONS[name]
    ids, labels, mismatch = llava_preprocess_v1(conversation, slow, max_length=MAX_LENGTH)
    assert not mismatch, "LLaVA's own arithmetic must line up here for the comparison to mean anything"
    assert any(label != IGNORE for label in labels)
    got = VicunaV1Template().encode(conversation, tok, sample_id=name, max_length=MAX_LENGTH)
    assert got == (ids, labels)


@pytest.mark.parametrize("name, full_length", [("truncated_image", 8064), ("truncated_text_only", 8061)])
def test_long_conversations_are_cut_at_2048(vicuna, name, full_length):
    """LLaVA cuts image samples in its collator and text-only ones in the tokenizer; either way
    they are the first 2048 ids and labels of the whole sample, here cut inside the 8th reply."""
    tok, _ = vicuna["v1.5"]
    template = VicunaV1Template()
    full_ids, full_labels = template.encode(CONVERSATIONS[name], tok)
    ids, labels = template.encode(CONVERSATIONS[name], tok, max_length=MAX_LENGTH)
    assert len(full_ids) == full_length
    assert (ids, labels) == (full_ids[:MAX_LENGTH], full_labels[:MAX_LENGTH])
    assert ids.count(tok.eos_token_id) == 7 and labels[-1] == ids[-1]


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
@pytest.mark.parametrize("variant", sorted(VICUNA_VARIANTS))
def test_vicuna_prompt_equals_llava_eval_prompt(vicuna, variant, name):
    """LLaVA's eval: every turn before the last reply, an empty assistant turn, tokenizer_image_token."""
    tok, slow = vicuna[variant]
    conversation = CONVERSATIONS[name]
    before_last_reply = llava_multimodal(conversation[:-1])
    expected_text = llava_v1_prompt(before_last_reply, generation=True)
    template = VicunaV1Template()
    assert template.render_prompt(conversation) == expected_text
    assert template.prompt_ids(conversation, tok) == llava_image_tokens(expected_text, slow)


def test_llava_arithmetic_breaks_but_not_the_template(vicuna_mismatch):
    """With "▁USER" a piece, non-legacy "USER" alone is no longer one token longer than after
    "</s>", LLaVA's "-1" is wrong and it masks the whole sample. The template still has
    LLaVA's ids and supervises exactly the replies."""
    tok, slow = vicuna_mismatch
    conversation = CONVERSATIONS["image_multi_turn"]
    ids, labels, mismatch = llava_preprocess_v1(conversation, slow)
    assert mismatch and all(label == IGNORE for label in labels)
    got_ids, got_labels = VicunaV1Template().encode(conversation, tok)
    assert got_ids == ids
    supervised = [label for label in got_labels if label != IGNORE]
    assert tok.decode(supervised) == "A circle.</s> It is red.</s> 3</s>"


def test_reference_detects_a_broken_mask(vicuna):
    """Guard for the reference itself: applying the non-legacy adjustment to a legacy
    tokenizer must be reported as a mismatch, as LLaVA reports it."""
    _, slow = vicuna["v1.3"]
    _, _, mismatch = llava_preprocess_v1(CONVERSATIONS["text_only_multi"], slow, legacy=False)
    assert mismatch


# ---- plain -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CAPTIONS))
@pytest.mark.parametrize("variant", sorted(VICUNA_VARIANTS))
def test_plain_equals_llava(vicuna, variant, name):
    tok, slow = vicuna[variant]
    conversation = CAPTIONS[name]
    template = PlainTemplate()
    assert template.render(conversation) == "<image>" + conversation[1]["value"] + "\n"
    expected = llava_preprocess_plain(conversation, slow, max_length=MAX_LENGTH)
    assert template.encode(conversation, tok, max_length=MAX_LENGTH) == expected
    assert template.prompt_ids(conversation, tok) == llava_image_tokens("<image>", slow)


# ---- a closing question and model_max_length -----------------------------------------------------

CLOSING = {  # name -> (conversation ending in an unanswered question, does LLaVA mask it whole?)
    # the answered rounds run past 2048 tokens: LLaVA's count reaches model_max_length, it skips its
    # mismatch check and keeps the labels of the first 2048 tokens
    "answers_fill_max_length_image": (CONVERSATIONS["truncated_image"] + [h("And what else?")], False),
    "answers_fill_max_length_text_only": (CONVERSATIONS["truncated_text_only"] + [h("And what else?")], False),
    # the answered rounds end before the cut, inside the long closing question: masked whole
    "question_crosses_max_length": ([h("<image>\nWhat is it?"), g("A circle."), h(" ".join([LONG] * 40))], True),
}


@pytest.mark.parametrize("name", sorted(CLOSING))
@pytest.mark.parametrize("variant", sorted(VICUNA_VARIANTS))
def test_closing_question_is_masked_as_llava_masks_it(vicuna, variant, name):
    """preprocess_v1 masks a record ending in an unanswered question through its "tokenization
    mismatch", which it checks only while its count (the tokens through the last reply) is below
    model_max_length."""
    tok, slow = vicuna[variant]
    conversation, masked = CLOSING[name]
    ids, labels, mismatch = llava_preprocess_v1(conversation, slow, max_length=MAX_LENGTH)
    assert mismatch is masked and len(ids) == MAX_LENGTH
    assert all(label == IGNORE for label in labels) is masked
    assert VicunaV1Template().encode(conversation, tok, sample_id=name, max_length=MAX_LENGTH) == (ids, labels)
