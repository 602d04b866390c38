"""`plain`: LLaVA's stage-1 (feature alignment) format: the image, then its caption.

As LLaVA's preprocess_plain does, the human turn is replaced by the bare "<image>" (any
instruction text in it is dropped) and the text is "<image>{caption}\\n". Everything after the
image placeholder (the caption and the newline) is supervised; BOS and the placeholder are not.
The generation prompt is the image placeholder alone.
"""

from __future__ import annotations

from typing import Any

from ablate.components.contracts import IGNORE_INDEX, IMAGE_TOKEN, IMAGE_TOKEN_INDEX
from ablate.errors import DataError
from ablate.registry import ComponentConfig
from ablate.templates.base import GPT, HUMAN, ConversationTemplate, read_turns, tokenize_with_image, truncate, where


class PlainConfig(ComponentConfig):
    """plain has no options."""


class PlainTemplate(ConversationTemplate):
    name = "plain"
    sep = "\n"  # ends the caption

    def _caption(self, conversations: Any, at: str) -> str:
        turns = read_turns(conversations, at)
        roles = [role for role, _ in turns]
        if roles != [HUMAN, GPT]:  # LLaVA asserts exactly two turns
            raise DataError(f"{at}: needs one human turn with {IMAGE_TOKEN} and one gpt caption, got {roles}")
        if IMAGE_TOKEN not in turns[0][1]:
            raise DataError(f"{at}: the human turn has no {IMAGE_TOKEN}; plain is for image-caption pairs")
        if not turns[1][1].strip():
            raise DataError(f"{at}: the caption is empty")
        return turns[1][1]

    def render(self, conversations: Any, *, sample_id: str | None = None) -> str:
        return IMAGE_TOKEN + self._caption(conversations, where(self.name, sample_id)) + self.sep

    def render_prompt(self, conversations: Any, *, sample_id: str | None = None) -> str:
        at = where(self.name, sample_id)
        turns = read_turns(conversations, at)
        if turns[0][0] != HUMAN or IMAGE_TOKEN not in turns[0][1]:
            raise DataError(f"{at}: plain prompts need a first human turn with {IMAGE_TOKEN}")
        return IMAGE_TOKEN

    def encode(
        self, conversations: Any, tokenizer: Any, *, sample_id: str | None = None, max_length: int | None = None
    ) -> tuple[list[int], list[int]]:
        at = where(self.name, sample_id)
        ids = tokenize_with_image(self.render(conversations, sample_id=sample_id), tokenizer, at).ids
        # Labels by position: LLaVA masks exactly the tokens of "<image>" alone (BOS, placeholder).
        after_image = ids.index(IMAGE_TOKEN_INDEX) + 1
        labels = [IGNORE_INDEX] * after_image + ids[after_image:]
        return truncate(ids, labels, max_length, at)


def build_plain(config: PlainConfig) -> PlainTemplate:
    """LLaVA stage-1 format: <image> then the caption and a newline; the caption is supervised."""
    return PlainTemplate()
