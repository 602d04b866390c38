"""The stand-in models a study's recipes name from the tiny zoo, and what each was trained on,
for the report's header: a tiny Llama pretrained on easy-VQA text is no neutral stand-in for
Vicuna when the eval is easy-VQA, and the reader must see that next to the numbers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable


@dataclass
class StandIn:
    checkpoint: str  # e.g. zoo:tiny-llama-easyvqa
    used_at: list[str]  # recipe paths that name it, e.g. model.llm.name_or_path
    description: str  # the zoo entry's description
    pretrained: bool  # False: seeded random weights


def stand_ins(recipes: Iterable[Any]) -> list[StandIn]:
    """One StandIn per `zoo:` checkpoint the recipes name, in first-seen order."""
    from ablate.zoo import ZOO, ZOO_PREFIX

    out: dict[str, StandIn] = {}
    for recipe in recipes:
        for path, value in _strings(recipe.model_dump(mode="json"), ()):
            if not value.startswith(ZOO_PREFIX) or value[len(ZOO_PREFIX):] not in ZOO:
                continue
            spec = ZOO[value[len(ZOO_PREFIX):]]
            entry = out.setdefault(value, StandIn(value, [], spec.description, spec.pretrain is not None))
            if path not in entry.used_at:
                entry.used_at.append(path)
    return list(out.values())


def describe(entry: StandIn) -> str:
    training = "" if entry.pretrained else " (seeded random weights, not pretrained)"
    return f"`{entry.checkpoint}` ({', '.join(entry.used_at)}): {entry.description}{training}"


def _strings(node: Any, path: tuple) -> Iterable[tuple[str, str]]:
    if isinstance(node, str):
        yield ".".join(map(str, path)), node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, path + (i,))
