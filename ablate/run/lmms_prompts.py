"""lmms-eval's chat messages as ablate prompts: LLaVA turns rendered by the recipe's template.

A message's parts are joined with newlines in their order, an image standing as "<image>"
(so [image, question] reads "<image>\\nquestion", as LLaVA's evaluation scripts write it);
user turns are `human`, assistant turns `gpt`, consecutive turns of one role are joined by a
newline, and a system message's text opens the first user turn (the template keeps its own
system prompt). The template then renders and tokenizes the turns exactly as ablate's own
evaluation does (`ConversationTemplate.prompt_ids`). ablate's models read one image per sample
and no video or audio: anything else is a DataError naming the task and document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ablate.components.contracts import IMAGE_TOKEN
from ablate.errors import DataError

ROLES = {"user": "human", "assistant": "gpt"}


@dataclass
class Prompt:
    turns: list[dict[str, str]]  # LLaVA turns: [{"from": "human"|"gpt", "value": ...}]
    image: Any  # a PIL image or an image file path, or None

    def row(self, template, tokenizer, sample_id: str) -> dict[str, Any]:
        """The EvalCollator row of this prompt: {"id", "image", "input_ids"}."""
        return {"id": sample_id, "image": self.image,
                "input_ids": template.prompt_ids(self.turns, tokenizer, sample_id=sample_id)}


def prompt_from_messages(raw_messages: Any, at: str) -> Prompt:
    """The turns and the image of lmms-eval chat messages (validated by lmms-eval's own protocol)."""
    from lmms_eval.protocol import ChatMessages

    messages = ChatMessages(messages=raw_messages).messages
    system, images, turns = [], [], []
    for message in messages:
        text = _text(message.content, images, at)
        if message.role == "system":
            system.append(text)
            continue
        role = ROLES[message.role]
        if turns and turns[-1]["from"] == role:
            turns[-1]["value"] += "\n" + text
        else:
            turns.append({"from": role, "value": text})
    if len(images) > 1:
        raise DataError(f"{at}: {len(images)} images in one request; ablate's models read one image per sample")
    if not turns or turns[0]["from"] != "human":
        raise DataError(f"{at}: the messages hold no user turn to answer")
    if system:
        turns[0]["value"] = "\n".join([*system, turns[0]["value"]])
    return Prompt(turns, images[0] if images else None)


def _text(content: list[Any], images: list[Any], at: str) -> str:
    parts = []
    for part in content:
        if part.type == "text":
            parts.append(part.text)
        elif part.type == "image":
            images.append(part.url)
            parts.append(IMAGE_TOKEN)
        else:
            raise DataError(f"{at}: a {part.type} input; ablate's models read images and text only")
    return "\n".join(parts)


def user_messages(visuals: list[Any] | None, text: str) -> list[dict[str, Any]]:
    """One user turn of `visuals` (PIL images or paths) then `text`, in lmms-eval's message form
    (what its chat tasks build from doc_to_visual and doc_to_text)."""
    content = [{"type": "image", "url": visual} for visual in visuals or []]
    return [{"role": "user", "content": [*content, {"type": "text", "text": text}]}]


def cut_at(text: str, stops: list[str] | str | None) -> str:
    """`text` up to the first of the stop strings (lmms-eval's `until`, as `task_stops` reads it)."""
    stops = task_stops(stops)
    ends = [text.find(stop) for stop in stops if stop]
    found = [end for end in ends if end >= 0]
    return text[: min(found)] if found else text


def task_stops(until: list[str] | str | None) -> list[str]:
    """A task's `until` as stop strings, without the one lmms-eval gives a task that names none.

    lmms-eval (as lm-evaluation-harness) fills a missing `until` with its few-shot delimiter,
    "\\n\\n", a stop for base models continuing few-shot prompts. LLaVA's evaluation scripts and
    lmms-eval's own `llava` and `llava_hf` models stop only where the answer ends, so a long answer
    (MM-Vet's, whose YAML names no `until`) keeps its paragraphs: that default alone stops nothing.
    """
    stops = [until] if isinstance(until, str) else list(until or [])
    return [] if stops == [lmms_default_until()] else stops


def lmms_default_until() -> str:
    """The stop string lmms-eval adds to a task whose generation_kwargs name no `until`."""
    from lmms_eval.api.task import TaskConfig

    return TaskConfig.fewshot_delimiter
