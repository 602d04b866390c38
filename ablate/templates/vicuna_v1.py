"""`vicuna_v1`: LLaVA-1.5's stage-2 (instruction tuning) conversation format.

Text, as LLaVA's conv_vicuna_v1 renders it (sep " ", sep2 "</s>"):

    {system} USER: <image>\\n{question} ASSISTANT: {answer}</s>USER: {question} ASSISTANT: {answer}</s>

The image placeholder is moved to the start of its turn and followed by a newline, as LLaVA's
preprocess_multimodal does (without im_start/im_end tokens). A leading gpt turn is dropped, as
LLaVA does. Supervised: each answer with the space before it and its "</s>", which is what
LLaVA's preprocess_v1 leaves unmasked when its length arithmetic lines up with the tokenizer.
A closing human turn stays in the text as LLaVA renders it ("USER: {question} "), and the whole
record is masked, as LLaVA's preprocess_v1 masks it: its round arithmetic stops at the unanswered
question, finds fewer tokens than the text has ("tokenization mismatch") and ignores every label;
unless the answered rounds alone fill max_length, where LLaVA skips that check and the labels of
the first max_length tokens stay.
The generation prompt ends with "ASSISTANT:" (no space), as LLaVA's evaluation scripts do.
"""

from __future__ import annotations

from typing import Any

from ablate.components.contracts import IGNORE_INDEX, IMAGE_TOKEN
from ablate.errors import DataError
from ablate.registry import ComponentConfig
from ablate.templates.base import (
    GPT,
    HUMAN,
    ConversationTemplate,
    Turn,
    check_alternating,
    labels_from_spans,
    read_turns,
    tokenize_with_image,
    truncate,
    where,
)

# LLaVA's conv_vicuna_v1 system prompt, word for word (it says "user", unlike v0's "human").
VICUNA_V1_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


class VicunaV1Config(ComponentConfig):
    """vicuna_v1 options."""

    system_prompt: str | None = None  # None: LLaVA's conv_vicuna_v1 system prompt


class VicunaV1Template(ConversationTemplate):
    name = "vicuna_v1"
    roles = {HUMAN: "USER", GPT: "ASSISTANT"}
    sep = " "  # after the system prompt and after each human turn
    sep2 = "</s>"  # after each assistant turn
    stop = sep2

    def __init__(self, system_prompt: str | None = None):
        self.system = VICUNA_V1_SYSTEM if system_prompt is None else system_prompt

    def __repr__(self) -> str:
        return f"VicunaV1Template(system_prompt={self.system!r})"

    # ---- turns -> text ----------------------------------------------------------------

    def _dialogue(self, conversations: Any, at: str) -> list[Turn]:
        turns = [(role, _image_first(role, text, at)) for role, text in read_turns(conversations, at)]
        if turns[0][0] == GPT:  # LLaVA skips a conversation's opening reply
            turns = turns[1:]
        check_alternating(turns, at)
        for n, (role, text) in enumerate(turns):
            if not text:  # LLaVA would render "ROLE:" with no separator and mask the sample
                raise DataError(f"{at}: {role} turn {n} is empty")
        return turns

    def _text(self, turns: list[Turn]) -> tuple[str, list[tuple[int, int]]]:
        """The conversation text and the character spans of " answer</s>" (the targets)."""
        text = self.system + self.sep
        targets = []
        for role, value in turns:
            if role == HUMAN:
                text += f"{self.roles[HUMAN]}: {value}{self.sep}"
            else:
                text += f"{self.roles[GPT]}:"
                start = len(text)  # the space after the colon is part of the target, as in LLaVA
                text += f" {value}{self.sep2}"
                targets.append((start, len(text)))
        return text, targets

    def render(self, conversations: Any, *, sample_id: str | None = None) -> str:
        return self._text(self._dialogue(conversations, where(self.name, sample_id)))[0]

    def render_prompt(self, conversations: Any, *, sample_id: str | None = None) -> str:
        at = where(self.name, sample_id)
        turns = self._dialogue(conversations, at)
        if turns and turns[-1][0] == GPT:
            turns = turns[:-1]
        if not turns:
            raise DataError(f"{at}: no human turn to prompt with")
        return self._text(turns)[0] + f"{self.roles[GPT]}:"

    # ---- text -> tokens ---------------------------------------------------------------

    def encode(
        self, conversations: Any, tokenizer: Any, *, sample_id: str | None = None, max_length: int | None = None
    ) -> tuple[list[int], list[int]]:
        at = where(self.name, sample_id)
        turns = self._dialogue(conversations, at)
        if all(role != GPT for role, _ in turns):
            raise DataError(f"{at}: no gpt turn answers a human turn; nothing to supervise")
        text, targets = self._text(turns)
        tokens = tokenize_with_image(text, tokenizer, at)
        full = labels_from_spans(tokens, targets, at)
        ids, labels = truncate(tokens.ids, full, max_length, at)
        if turns[-1][0] != GPT and _llava_masks_unanswered(full, max_length):
            labels = [IGNORE_INDEX] * len(labels)  # the record still takes its place in its batch
        return ids, labels


def _llava_masks_unanswered(labels: list[int], max_length: int | None) -> bool:
    """Whether LLaVA's preprocess_v1 masks a record that ends with an unanswered question.

    Its round count stops at that question, short of the record's length: a "tokenization
    mismatch", which masks every label. It checks for one only while the count (the tokens
    through the last reply's "</s>") is below model_max_length, so a record whose answered
    rounds fill `max_length` keeps the labels of its first `max_length` tokens.
    """
    answered = 1 + max(k for k, label in enumerate(labels) if label != IGNORE_INDEX)
    return max_length is None or answered < max_length


def _image_first(role: str, text: str, at: str) -> str:
    """LLaVA's preprocess_multimodal: "<image>" moves to the front of its turn, then a newline."""
    if IMAGE_TOKEN not in text:
        return text
    if role != HUMAN:
        raise DataError(f"{at}: {IMAGE_TOKEN} is in a gpt turn; it must be in a human turn")
    return (IMAGE_TOKEN + "\n" + text.replace(IMAGE_TOKEN, "").strip()).strip()


def build_vicuna_v1(config: VicunaV1Config) -> VicunaV1Template:
    """LLaVA-1.5 stage-2 conversation format (USER/ASSISTANT, answers end with </s>)."""
    return VicunaV1Template(system_prompt=config.system_prompt)
