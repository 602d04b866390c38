"""The templates give the same text, input_ids and labels as LLaVA's own preprocessing.

`llava_*` below re-implement LLaVA's algorithm (llava/train/train.py: preprocess_multimodal,
preprocess_v1, preprocess_plain; llava/mm_utils.py: tokenizer_image_token) independently of
ablate's code: LLaVA measures lengths of separately tokenized pieces of text and masks by
position, while the templates tokenize once and map character spans to tokens.
"""

from __future__ import annotations

import copy

import pytest

from ablate.templates import PlainTemplate, VicunaV1Template

IGNORE, IMAGE = -100, -200
SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


# ---- the reference: LLaVA's algorithm, step by step ------------------------------------------


def llava_image_tokens(prompt, tok):
    """tokenizer_image_token: tokenize the text between placeholders separately; keep BOS once."""
    chunks = [tok(chunk).input_ids for chunk in prompt.split("<image>")]
    starts_with_bos = len(chunks[0]) > 0 and chunks[0][0] == tok.bos_token_id
    out, cut = ([chunks[0][0]], 1) if starts_with_bos else ([], 0)
    for n, chunk in enumerate(chunks):
        if n > 0:
            out.append(IMAGE)
        out.extend(chunk[cut:])
    return out


def llava_multimodal(conversation):
    """preprocess_multimodal (no im_start/im_end): the placeholder goes first, then a newline."""
    conversation = copy.deepcopy(conversation)
    for turn in conversation:
        if "<image>" in turn["value"]:
            rest = turn["value"].replace("<image>", "").strip()
            turn["value"] = ("<image>" + "\n" + rest).strip()
    return conversation


def llava_v1_prompt(conversation, system=SYSTEM, generation=False):
    """conv_vicuna_v1.get_prompt() (SeparatorStyle.TWO); `generation` appends an empty reply."""
    role = {"human": "USER", "gpt": "ASSISTANT"}
    if conversation[0]["from"] != "human":
        conversation = conversation[1:]
    messages = [(role[t["from"]], t["value"]) for t in conversation]
    if generation:
        messages.append(("ASSISTANT", None))
    text = system + " "
    for i, (who, message) in enumerate(messages):
        text += f"{who}: {message}" + (" ", "</s>")[i % 2] if message else f"{who}:"
    return text


def llava_preprocess_v1(conversation, tok, legacy):
    """preprocess_v1 for one sample: (input_ids, labels, mismatch).

    Per round (text between "</s>"): the round's token count, and the instruction's count
    ("... ASSISTANT: ") minus 2 (its BOS, and the "▁" of its trailing space, which in the full
    text starts the answer). Rounds after the first lose one more of each when
    the tokenizer is non-legacy. A total that disagrees with the non-pad token count is LLaVA's
    "tokenization mismatch": the whole sample is masked.
    """
    has_image = any("<image>" in t["value"] for t in conversation)
    if has_image:
        conversation = llava_multimodal(conversation)
    text = llava_v1_prompt(conversation)
    count = (lambda s: len(llava_image_tokens(s, tok))) if has_image else (lambda s: len(tok(s).input_ids))
    ids = llava_image_tokens(text, tok) if has_image else tok(text).input_ids
    labels = list(ids)
    total = sum(1 for i in ids if i != tok.pad_token_id)

    def mask(lo, hi):
        for k in range(lo, min(hi, len(labels))):
            labels[k] = IGNORE

    position = 1
    mask(0, 1)
    reply_marker = " ASSISTANT: "
    for i, round_text in enumerate(text.split("</s>")):
        if round_text == "":
            break
        halves = round_text.split(reply_marker)
        if len(halves) != 2:
            break
        round_len = count(round_text)
        instruction_len = count(halves[0] + reply_marker) - 2
        if i != 0 and not legacy:
            round_len -= 1
            instruction_len -= 1
        mask(position, position + instruction_len)
        position += round_len
    mask(position, len(labels))
    mismatch = position != total
    if mismatch:
        labels = [IGNORE] * len(labels)
    return ids, labels, mismatch


def llava_preprocess_plain(conversation, tok):
    """preprocess_plain: "<image>" + caption + "\\n"; mask what "<image>" alone tokenizes to."""
    assert len(conversation) == 2 and "<image>" in conversation[0]["value"]
    ids = llava_image_tokens("<image>" + conversation[1]["value"] + "\n", tok)
    masked = len(llava_image_tokens("<image>", tok))
    return ids, [IGNORE] * masked + ids[masked:]


# ---- conversations ---------------------------------------------------------------------------


def h(text):
    return {"from": "human", "value": text}


def g(text):
    return {"from": "gpt", "value": text}


LONG = (
    "The image shows a large blue circle in the middle of a white background. Next to it there are "
    "two small red squares and a green triangle; the triangle points up.\nIn short: 3 shapes, 2 colours, "
    "and nothing else — 100% simple. Émile's café serves crème brûlée 🍰."
)
CONVERSATIONS = {
    "image_single": [h("<image>\nWhat shape is in the image?"), g("A circle.")],
    "image_after_question": [h("What color is the shape?\n<image>"), g("Blue")],
    "image_only_turn": [h("<image>"), g("A green triangle.")],
    "image_multi_turn": [
        h("<image>\nWhat shape is in the image?"), g("A circle."),
        h("What color is it?"), g("It is red."),
        h("How many are there?"), g("3"),
    ],
    "image_second_turn": [h("Hello!"), g("Hi, how can I help?"), h("Describe this. <image>"), g(LONG)],
    "text_only_single": [h("What is 2 + 2?"), g("4")],
    "text_only_multi": [h("Name a colour."), g("Green."), h("Another one?"), g("Yellow, or maybe purple.")],
    "long_answer": [h("<image>\nDescribe the image in detail."), g(LONG)],
    "long_multi_turn": [h("<image>\nDescribe the image."), g(LONG), h("And in one word?"), g("Shapes.")],
    "leading_gpt_turn": [g("Welcome."), h("<image>\nIs there a square?"), g("Yes, there are two squares.")],
    "answer_starts_with_digit": [h("<image>\nHow many circles?"), g("1 circle, 2 squares")],
    "newlines_in_answer": [h("List the shapes.\n<image>"), g("- circle\n- square\n\n- triangle")],
}
CAPTIONS = {
    "caption": [h("<image>\nDescribe the image briefly."), g("A red square on a white background.")],
    "caption_image_last": [h("Render a caption: <image>"), g("two blue circles")],
    "caption_digits": [h("<image>"), g("3 green triangles and 1 yellow star")],
    "caption_long": [h("<image>\n"), g(LONG)],
}
# Tokenizers for which LLaVA's length arithmetic lines up on every conversation above.
ALIGNED = ("legacy", "vicuna_like")


# ---- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
def test_vicuna_text_equals_llava(name):
    conversation = CONVERSATIONS[name]
    expected = llava_v1_prompt(llava_multimodal(conversation))
    assert VicunaV1Template().render(conversation) == expected


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
@pytest.mark.parametrize("tokenizer_name", ALIGNED)
def test_vicuna_ids_and_labels_equal_llava(tokenizers, tokenizer_name, name):
    tok = tokenizers[tokenizer_name]
    conversation = CONVERSATIONS[name]
    ids, labels, mismatch = llava_preprocess_v1(conversation, tok, legacy=tok.legacy)
    assert not mismatch, "LLaVA's own arithmetic must line up here for the comparison to mean anything"
    assert any(label != IGNORE for label in labels)
    assert VicunaV1Template().encode(conversation, tok, sample_id=name) == (ids, labels)


@pytest.mark.parametrize("name", sorted(n for n, c in CONVERSATIONS.items() if sum(t["from"] == "gpt" for t in c) == 1))
def test_vicuna_single_round_equals_llava_on_zoo_tokenizer(zoo_tokenizer, name):
    ids, labels, mismatch = llava_preprocess_v1(CONVERSATIONS[name], zoo_tokenizer, legacy=zoo_tokenizer.legacy)
    assert not mismatch
    assert VicunaV1Template().encode(CONVERSATIONS[name], zoo_tokenizer) == (ids, labels)


def test_zoo_tokenizer_breaks_llava_arithmetic_but_not_the_template(zoo_tokenizer):
    """The zoo tokenizer spells "USER" after "</s>" with one token more than alone, which
    LLaVA's non-legacy adjustment does not expect: LLaVA masks the whole sample. The template
    still supervises exactly the replies, with ids equal to LLaVA's."""
    conversation = CONVERSATIONS["image_multi_turn"]
    ids, labels, mismatch = llava_preprocess_v1(conversation, zoo_tokenizer, legacy=False)
    assert mismatch and all(label == IGNORE for label in labels)
    got_ids, got_labels = VicunaV1Template().encode(conversation, zoo_tokenizer)
    assert got_ids == ids
    supervised = [label for label in got_labels if label != IGNORE]
    assert zoo_tokenizer.decode(supervised) == "A circle.</s> It is red.</s> 3</s>"


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
@pytest.mark.parametrize("tokenizer_name", ("zoo", *ALIGNED))
def test_vicuna_prompt_equals_llava_eval_prompt(tokenizers, tokenizer_name, name):
    """LLaVA's eval: every turn before the last reply, an empty assistant turn, tokenizer_image_token."""
    tok = tokenizers[tokenizer_name]
    conversation = CONVERSATIONS[name]
    before_last_reply = llava_multimodal(conversation[:-1])
    expected_text = llava_v1_prompt(before_last_reply, generation=True)
    template = VicunaV1Template()
    assert template.render_prompt(conversation) == expected_text
    assert template.prompt_ids(conversation, tok) == llava_image_tokens(expected_text, tok)


@pytest.mark.parametrize("name", sorted(CAPTIONS))
@pytest.mark.parametrize("tokenizer_name", ("zoo", *ALIGNED))
def test_plain_equals_llava(tokenizers, tokenizer_name, name):
    tok = tokenizers[tokenizer_name]
    conversation = CAPTIONS[name]
    template = PlainTemplate()
    assert template.render(conversation) == "<image>" + conversation[1]["value"] + "\n"
    assert template.encode(conversation, tok) == llava_preprocess_plain(conversation, tok)
    assert template.prompt_ids(conversation, tok) == llava_image_tokens("<image>", tok)


def test_reference_detects_a_broken_mask(legacy_tokenizer):
    """Guard for the reference itself: applying the non-legacy adjustment to a legacy
    tokenizer must be reported as a mismatch, as LLaVA reports it."""
    _, _, mismatch = llava_preprocess_v1(CONVERSATIONS["text_only_multi"], legacy_tokenizer, legacy=False)
    assert mismatch
